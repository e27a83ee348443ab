/**
 * getMany: the same decisions as get (lookup.ts), key by key, with the tiers read in batches.
 * A key listed more than once is read once from each tier below L1 and decided once: its answer
 * is given at every position it was listed, and counted once per listing (as the tier that
 * answered it).
 */
import { Effect, Option } from "effect"
import { CacheInputError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import { allAtOnce } from "./allAtOnce.js"
import type { AnySchema } from "./codec.js"
import type { Slot } from "./fastPath.js"
import { keyList } from "./input.js"
import { FRESH, NEEDS_TAGS } from "./lookup.js"
import type { Deps as ReadsDeps } from "./reads.js"
import { HALF } from "./tags.js"
import { checkSchema } from "./validate.js"

/** What getMany needs: the same as the other reads below L1. */
export type Deps = ReadsDeps

/**
 * At most this many promotions of one batch are under way at once: a hung tier above then costs
 * the batch one timeout while its breaker opens on the first of them (a tier that stays closed
 * one per slice), and a batch of 100,000 keys does not fork a fiber and send a write per key at
 * once.
 */
const PROMOTIONS_AT_ONCE = 1024

/** Tags read at once, then the entries carrying them judged (see tagGroups). */
interface TagGroup {
  /** The index after the group's last entry. */
  readonly end: number
  /** The tags not met yet of its entries. */
  readonly tags: ReadonlyArray<string>
}

/**
 * At most this many tags not met yet are read at once: half of the fewest an instance keeps
 * (tags.ts), so that none read for a group is forgotten before the group's entries are judged.
 */
const TAGS_AT_ONCE = HALF / 2

/**
 * The entries `0 .. n - 1` of a batch in groups, in order, each carrying at most TAGS_AT_ONCE tags
 * not met yet (`unmetOf(j)`: the tags of entry j that may need reading, or undefined); one group
 * when the batch carries fewer. Reading every tag of a larger batch at once would forget the first
 * read before their entries were judged, and fresh entries would answer as misses.
 */
const tagGroups = (
  n: number,
  unmetOf: (j: number) => ReadonlyArray<string> | undefined
): ReadonlyArray<TagGroup> => {
  const groups: Array<TagGroup> = []
  let unmet: Set<string> | undefined
  for (let j = 0; j < n; j++) {
    const more = unmetOf(j)
    if (more === undefined || more.length === 0) continue
    if (unmet === undefined) unmet = new Set()
    else if (unmet.size + more.length > TAGS_AT_ONCE) {
      groups.push({ end: j, tags: [...unmet] })
      unmet = new Set()
    }
    for (const tag of more) unmet.add(tag)
  }
  groups.push({ end: n, tags: unmet === undefined ? [] : [...unmet] })
  return groups
}

/**
 * A key still unanswered, as the call read it (the caller's array may change while the tiers are
 * read): at position `i`, and at the positions `also` when listed again; its L1 slot when that
 * waits for its tags.
 */
interface Pending {
  readonly i: number
  readonly key: string
  readonly slot: Slot | undefined
  also: Array<number> | undefined
}

/** How many requests a key's answer counts: one per position that listed it. */
const listings = (p: Pending): number => (p.also === undefined ? 1 : 1 + p.also.length)

/** Builds getMany. */
export const make = (deps: Deps) => {
  const { access, lookup, tags, promotion, versions, counters, now } = deps
  const fast = access.fast
  const l1Answer = (slot: Slot, schema: AnySchema | undefined) =>
    Option.some(schema !== undefined ? slot.typedValue : slot.value)

  /**
   * The tags not met yet of the usable entries a tier answered, grouped (tagGroups): an entry is
   * judged with its tags read, so a tag whose time cannot be read costs a group one tier timeout,
   * not one per entry carrying it.
   */
  const entryGroups = (
    found: ReadonlyArray<Option.Option<Entry.Entry>>,
    n: number
  ): ReadonlyArray<TagGroup> => {
    const t = now()
    // `n` keys asked (a tier of someone else's may answer fewer: a miss each).
    return tagGroups(n, (j) => {
      const option = found[j]
      if (option?._tag !== "Some") return undefined
      const entry = option.value
      return entry.tags.length === 0 || Entry.isGone(entry, t) || tags.valid(entry) !== undefined
        ? undefined
        : entry.tags
    })
  }
  const readGroup = (group: TagGroup): Effect.Effect<void> =>
    group.tags.length === 0 ? Effect.void : tags.load(group.tags)

  /**
   * Decides `remaining` group by group, each group's tags read first: `decide(j, t)` answers
   * entry j (true) or leaves it for the next tier (false); `t` is the clock once the group's tags
   * are read. Answers the entries left.
   */
  const decideInGroups = (
    remaining: ReadonlyArray<Pending>,
    groups: ReadonlyArray<TagGroup>,
    decide: (j: number, t: number) => boolean
  ): Effect.Effect<ReadonlyArray<Pending>> =>
    Effect.gen(function* () {
      const still: Array<Pending> = []
      let j = 0
      for (const group of groups) {
        yield* readGroup(group)
        const t = now()
        for (; j < group.end; j++) if (!decide(j, t)) still.push(remaining[j]!)
      }
      return still
    })

  /**
   * The keys past L1's first look. Its requests are counted in one step once every key is
   * answered, with the `l1Hits` of that first look: a call interrupted meanwhile counts none, as
   * an interrupted get (events, such as promotions and decode errors, count as they happen).
   */
  const below = (
    schema: AnySchema | undefined,
    results: Array<Option.Option<unknown>>,
    pending: ReadonlyArray<Pending>,
    l1Hits: number
  ): Effect.Effect<Array<Option.Option<unknown>>> =>
    Effect.gen(function* () {
      const since = versions.seq()
      const lowerHits = access.lower.map(() => 0)
      let remaining: ReadonlyArray<Pending> = pending
      if (remaining.some((p) => p.slot !== undefined)) {
        const waiting = remaining
        remaining = yield* decideInGroups(
          waiting,
          tagGroups(waiting.length, (j) => waiting[j]!.slot?.tags),
          (j, t) => {
            const { i, key, slot } = waiting[j]!
            if (slot === undefined || lookup.judgeSlot(key, slot, t, schema, true) !== FRESH) return false
            l1Hits += listings(waiting[j]!)
            results[i] = l1Answer(slot, schema)
            return true
          }
        )
      }
      if (fast === undefined) {
        const asked = remaining
        const found = yield* access.readManyL1(asked.map(({ key }) => key))
        remaining = yield* decideInGroups(asked, entryGroups(found, asked.length), (j, at) => {
          const entry = found[j]
          if (entry?._tag !== "Some" || lookup.judge(entry.value, at, schema, true) !== FRESH) return false
          l1Hits += listings(asked[j]!)
          results[asked[j]!.i] = Option.some(lookup.decoded())
          return true
        })
      }
      for (let t = 1; t <= access.lower.length && remaining.length > 0; t++) {
        const asked = remaining
        const found = yield* access.readMany(
          t,
          asked.map(({ key }) => key)
        )
        const promotions: Array<Effect.Effect<void>> = []
        remaining = yield* decideInGroups(asked, entryGroups(found, asked.length), (j) => {
          const { i, key } = asked[j]!
          const entry = found[j]
          if (entry?._tag !== "Some") return false
          // Judged synchronously, its tags read; on the clock of this moment, as get judges.
          const at = now()
          if (lookup.judge(entry.value, at, schema, true) !== FRESH) return false
          const value = lookup.decoded()
          lowerHits[t - 1]! += listings(asked[j]!)
          results[i] = Option.some(value)
          // Into MemoryTier's L1 from the one lower tier: synchronously.
          if (fast !== undefined && t === 1) {
            const slot = promotion.promoteNow(key, entry.value, at, since)
            if (slot !== undefined && schema !== undefined) slot.memoizeTyped(schema, value)
            return true
          }
          promotions.push(promotion.promote(key, entry.value, t, since, schema, value))
          return true
        })
        // The tier's promotions made at once (PROMOTIONS_AT_ONCE at a time), before the next tier
        // is read: a slow or hung tier above costs the batch one write's time (its timeout), as it
        // costs a get, not one per key.
        if (promotions.length === 1) yield* promotions[0]!
        else {
          for (let from = 0; from < promotions.length; from += PROMOTIONS_AT_ONCE) {
            yield* allAtOnce(promotions.slice(from, from + PROMOTIONS_AT_ONCE), (promote) => promote)
          }
        }
      }
      let misses = 0
      for (const p of remaining) {
        misses += listings(p)
        results[p.i] = Option.none()
      }
      // A key listed again: the same answer at each of its positions.
      for (const { i, also } of pending) {
        if (also !== undefined) for (const at of also) results[at] = results[i]!
      }
      counters.l1Hits += l1Hits
      for (let t = 0; t < lowerHits.length; t++) counters.lowerHits[t]! += lowerHits[t]!
      counters.misses += misses
      return results
    })

  return (
    keys: ReadonlyArray<string>,
    schema?: AnySchema
  ): Effect.Effect<ReadonlyArray<Option.Option<unknown>>, CacheInputError> =>
    Effect.suspend(() => {
      // The keys as checked: read once from the caller's list (plain JS may hand an array whose
      // iterator or getters answer other keys on another read).
      const list = keyList(keys)
      if (list instanceof CacheInputError) return Effect.fail(list)
      const bad = schema === undefined ? undefined : checkSchema(schema)
      if (bad) return Effect.fail(bad)
      // A key listed again is looked up in MemoryTier's L1 again (the same slot at the same
      // instant: the same answer, no map on the hit path); once it is unanswered there, it is
      // pending once, read once from each tier below and decided once.
      const results: Array<Option.Option<unknown>> = new Array(list.length)
      let pending: Array<Pending> | undefined
      let pendingOf: Map<string, Pending> | undefined
      let l1Hits = 0
      const t = now()
      for (let i = 0; i < list.length; i++) {
        const key = list[i]!
        const again = pendingOf?.get(key)
        if (again !== undefined) {
          if (again.also === undefined) again.also = [i]
          else again.also.push(i)
          continue
        }
        const slot = fast?.lookup(key, t)
        const verdict = slot === undefined ? undefined : lookup.judgeSlot(key, slot, t, schema, false)
        if (verdict === FRESH) {
          l1Hits++
          results[i] = l1Answer(slot!, schema)
          continue
        }
        const p: Pending = { i, key, slot: verdict === NEEDS_TAGS ? slot : undefined, also: undefined }
        if (pending === undefined || pendingOf === undefined) {
          pending = [p]
          pendingOf = new Map([[key, p]])
        } else {
          pending.push(p)
          pendingOf.set(key, p)
        }
      }
      if (pending === undefined) {
        counters.l1Hits += l1Hits
        return Effect.succeed(results)
      }
      return below(schema, results, pending, l1Hits)
    })
}
