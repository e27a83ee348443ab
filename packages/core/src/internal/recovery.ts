/**
 * Auto-recovery, the record: the changes (set, update, invalidate*, clear) that did not reach a
 * lower tier or the bus, kept until they are replayed (replay.ts, replayPasses.ts). One change
 * per key (the last wins), patterns and clears in between, in the order they were made; past
 * `maxChanges`, one namespace-wide clear replaces the whole record. While a change waits, this
 * instance's reads of the lower tiers see what the replay will leave (the `gate`): an
 * invalidated key is a miss, an updated key answers its new entry, so that a Redis that comes
 * back with older data cannot undo the change here before it is replayed; but an entry the tier
 * holds created after a key's change (another instance's later write), which the replay will not
 * replace (ifNewer.ts), answers instead. So a read of a key whose change is kept asks the tier
 * (and waits for its answer, or its failure: a failing tier fails the read as it would any other,
 * a hung one makes it wait out the tier's timeout), unless a kept pattern or clear covers the
 * key: replayed first, that removes the later entry too, and the key's change answers at once.
 */
import { Effect, FiberRef, Option } from "effect"
import * as Entry from "../Entry.js"
import * as Glob from "../Glob.js"
import { isReservedKey, type Tier } from "../Tier.js"
import { TAG_PREFIX } from "./tags.js"

/** A kept change of one key: a write (`entry`) or a removal; a tag's time is a write of its record. */
export interface KeyChange {
  readonly _tag: "Key"
  readonly key: string
  readonly entry: Entry.Entry | undefined
  readonly at: number
  /** A write broadcast with its value (update), rather than as a removal (set). */
  readonly update: boolean
  /** The tag, for a tag's invalidation time (`key` is then its reserved key). */
  readonly tag: string | undefined
  /** Still to be applied to the lower tiers. */
  tiers: boolean
  /** Still to be told over the bus. */
  bus: boolean
}

/** A kept pattern invalidation or clear (`glob` undefined). */
export interface Barrier {
  readonly _tag: "Barrier"
  readonly glob: string | undefined
  readonly at: number
  tiers: boolean
  bus: boolean
}

/** A kept change. */
export type Change = KeyChange | Barrier

/** The record of one cache. */
export interface Record {
  /** Changes kept now. */
  readonly size: () => number
  /** The changes, oldest first. */
  readonly snapshot: () => ReadonlyArray<Change>
  /** Drops a change once replayed (unless a later change of its key replaced it). */
  readonly done: (change: Change) => void
  /** Keeps a change of one key (nothing failed: forgets the key's earlier change instead). */
  readonly key: (change: KeyChange) => void
  /** Keeps a pattern invalidation or a clear (nothing failed: forgets what it covers instead). */
  readonly barrier: (change: Barrier) => void
  /** Whether a kept pattern or clear, still to reach the tiers, covers `key`. */
  readonly covered: (key: string) => boolean
  /** Wraps a lower tier so that this instance's reads see the kept changes first. */
  readonly gate: (tier: Tier.Service) => Tier.Service
  /**
   * Runs the replay `effect`: its reads go past the gate, and a change of a key whose earlier
   * change is kept meanwhile is kept too (replayed after it, or the earlier one, landing last,
   * could bring back what the later one removed).
   */
  readonly replaying: <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

const CLEAR_ID = "c"
const keyId = (key: string) => `k${key}`
const barrierId = (glob: string | undefined) => (glob === undefined ? CLEAR_ID : `p${glob}`)

const passing = FiberRef.unsafeMake(false)

/** A record of at most `maxChanges` changes (`onOverflow` runs when a clear replaces it). */
export const makeRecord = (
  maxChanges: number,
  now: () => number,
  onOverflow: (dropped: number) => void
): Record => {
  const changes = new Map<string, Change>()
  /** Patterns and clears still to reach the tiers: later changes of keys they cover are kept. */
  let barriers = 0
  /** A replay is under way. */
  let replaying = false

  const put = (id: string, change: Change) => {
    const previous = changes.get(id)
    if (previous !== undefined) forget(id, previous)
    changes.set(id, change)
    if (change._tag === "Barrier" && change.tiers) barriers++
    if (changes.size > maxChanges) {
      const dropped = changes.size
      changes.clear()
      barriers = 0
      put(CLEAR_ID, { _tag: "Barrier", glob: undefined, at: now(), tiers: true, bus: true })
      onOverflow(dropped)
    }
  }
  const forget = (id: string, change: Change) => {
    changes.delete(id)
    if (change._tag === "Barrier" && change.tiers) barriers--
  }
  const forgetMatching = (glob: string | undefined) => {
    if (glob === undefined) {
      changes.clear()
      barriers = 0
      return
    }
    // A pattern leaves the cache's own keys (a tag's time) in every tier: their changes stay.
    const matches = Glob.matcher(glob)
    for (const [id, change] of changes) {
      if (change._tag === "Key" && !isReservedKey(change.key) && matches(change.key)) forget(id, change)
    }
  }
  /** Each kept pattern's matcher, built once (the gate asks on every read while one is kept). */
  const matchers = new WeakMap<Barrier, (key: string) => boolean>()
  const matcherOf = (barrier: Barrier, glob: string): ((key: string) => boolean) => {
    let matches = matchers.get(barrier)
    if (matches === undefined) {
      matches = Glob.matcher(glob)
      matchers.set(barrier, matches)
    }
    return matches
  }
  const covered = (key: string): boolean => {
    if (barriers === 0) return false
    for (const change of changes.values()) {
      if (
        change._tag === "Barrier" &&
        change.tiers &&
        (change.glob === undefined || (!isReservedKey(key) && matcherOf(change, change.glob)(key)))
      )
        return true
    }
    return false
  }

  /** What a kept change of a key answers: its entry, or a miss (a removal, or an entry gone). */
  const answerOf = (change: KeyChange): Option.Option<Entry.Entry> => {
    const entry = change.entry
    return entry === undefined || Entry.isGone(entry, now()) ? Option.none() : Option.some(entry)
  }

  /**
   * The kept change of `key`, for the tier's answer to be weighed against, or the answer itself
   * (a kept change under a kept pattern or clear, or a key only such a barrier covers), or
   * undefined to answer what the tier holds.
   */
  const seen = (key: string): KeyChange | Option.Option<Entry.Entry> | undefined => {
    const change = changes.get(keyId(key))
    if (change !== undefined && change._tag === "Key" && change.tiers)
      return covered(key) ? answerOf(change) : change
    return covered(key) ? Option.none() : undefined
  }

  /**
   * What a read answers, for a key whose `change` is kept, of the tier's answer `held`: the
   * tier's entry when it was created after the change (the replay leaves it in place, as
   * ifNewer.ts compares), else the change.
   */
  const decide = (change: KeyChange, held: Option.Option<Entry.Entry>): Option.Option<Entry.Entry> =>
    held._tag === "Some" && held.value.createdAt > change.at ? held : answerOf(change)

  const gate = (tier: Tier.Service): Tier.Service => {
    const get = (key: string) =>
      changes.size === 0
        ? tier.get(key)
        : Effect.flatMap(FiberRef.get(passing), (pass) => {
            const answer = pass ? undefined : seen(key)
            if (answer === undefined) return tier.get(key)
            if (Option.isOption(answer)) return Effect.succeed(answer)
            return Effect.map(tier.get(key), (held) => decide(answer, held))
          })
    const getMany = (keys: ReadonlyArray<string>) =>
      changes.size === 0
        ? tier.getMany(keys)
        : Effect.flatMap(FiberRef.get(passing), (pass) => {
            if (pass) return tier.getMany(keys)
            const answers = keys.map(seen)
            const asked = keys.filter((_, i) => !Option.isOption(answers[i]))
            if (asked.length === 0)
              return Effect.succeed(answers as ReadonlyArray<Option.Option<Entry.Entry>>)
            return Effect.map(tier.getMany(asked), (found) => {
              let next = 0
              return answers.map((answer) => {
                if (Option.isOption(answer)) return answer
                const held = found[next++]!
                return answer === undefined ? held : decide(answer, held)
              })
            })
          })
    return { ...tier, get, getMany }
  }

  return {
    size: () => changes.size,
    snapshot: () => [...changes.values()],
    done: (change) => {
      const id = change._tag === "Key" ? keyId(change.key) : barrierId(change.glob)
      if (changes.get(id) === change) forget(id, change)
    },
    key: (change) => {
      // A pattern or clear still to be replayed would remove it: it must be replayed after.
      const id = keyId(change.key)
      if (!change.tiers && (covered(change.key) || (replaying && changes.has(id)))) change.tiers = true
      if (change.tiers || change.bus) put(id, change)
      else {
        const previous = changes.get(id)
        if (previous !== undefined) forget(id, previous)
      }
    },
    barrier: (change) => {
      if (!change.tiers && (barriers > 0 || replaying)) change.tiers = true
      // It removes the keys it covers: their earlier changes are replaced by it.
      forgetMatching(change.glob)
      const id = barrierId(change.glob)
      if (change.tiers || change.bus) put(id, change)
      else {
        const previous = changes.get(id)
        if (previous !== undefined) forget(id, previous)
      }
    },
    covered,
    gate,
    replaying: (effect) =>
      Effect.locally(
        Effect.acquireUseRelease(
          Effect.sync(() => {
            replaying = true
          }),
          () => effect,
          () =>
            Effect.sync(() => {
              replaying = false
            })
        ),
        passing,
        true
      )
  }
}

/** The reserved key under which a tag's invalidation time is stored. */
export const tagKey = (tag: string) => TAG_PREFIX + tag
