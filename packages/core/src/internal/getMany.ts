/**
 * getMany: the same decisions as get (lookup.ts), key by key, with the tiers read in batches.
 * A key listed more than once is read once per tier and decided once: its answer is given at
 * every position it was listed, and counted once per listing (as the tier that answered it).
 */
import { Effect, Option } from "effect"
import { CacheInputError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import type { AnySchema } from "./codec.js"
import type { Slot } from "./fastPath.js"
import { keyList } from "./input.js"
import { FRESH, NEEDS_TAGS } from "./lookup.js"
import type { Deps as ReadsDeps } from "./reads.js"
import { checkSchema } from "./validate.js"

/** What getMany needs: the same as the other reads below L1. */
export type Deps = ReadsDeps

/**
 * The keys of one call, each once, in the order of their first listing: `of[p]` is the index in
 * `keys` of the key listed at position `p`, and `times[i]` how many positions list `keys[i]`;
 * both undefined when no key is listed twice (then `keys` is the call's own list).
 */
interface Distinct {
  readonly keys: ReadonlyArray<string>
  readonly of: ReadonlyArray<number> | undefined
  readonly times: ReadonlyArray<number> | undefined
}

const distinct = (list: ReadonlyArray<string>): Distinct => {
  if (list.length < 2) return { keys: list, of: undefined, times: undefined }
  const index = new Map<string, number>()
  for (const key of list) if (!index.has(key)) index.set(key, index.size)
  if (index.size === list.length) return { keys: list, of: undefined, times: undefined }
  const of = list.map((key) => index.get(key)!)
  const times = new Array<number>(index.size).fill(0)
  for (const i of of) times[i]!++
  return { keys: [...index.keys()], of, times }
}

/**
 * A key still unanswered (at index `i` of the call's distinct keys, as the call read them: the
 * caller's array may change while the tiers are read), and its L1 slot when that waits for its
 * tags.
 */
interface Pending {
  readonly i: number
  readonly key: string
  readonly slot: Slot | undefined
}

/** Builds getMany. */
export const make = (deps: Deps) => {
  const { access, lookup, tags, promotion, versions, counters, now } = deps
  const fast = access.fast
  const l1Answer = (slot: Slot, schema: AnySchema | undefined) =>
    Option.some(schema !== undefined ? slot.typedValue : slot.value)

  /**
   * The tags not met yet of the usable entries a tier answered, read once for the batch (as
   * the L1 slots' are): an entry is then judged with its tags read, so a tag whose time cannot
   * be read costs the batch one tier timeout, not one per entry carrying it.
   */
  const readTags = (found: ReadonlyArray<Option.Option<Entry.Entry>>): Effect.Effect<void> => {
    const t = now()
    let unmet: Set<string> | undefined
    for (const option of found) {
      if (option?._tag !== "Some") continue
      const entry = option.value
      if (entry.tags.length === 0 || Entry.isGone(entry, t) || tags.valid(entry) !== undefined) continue
      unmet ??= new Set()
      for (const tag of entry.tags) unmet.add(tag)
    }
    return unmet === undefined ? Effect.void : tags.load([...unmet])
  }

  /** The answers of the call's distinct keys, at the positions that listed them. */
  const spread = (
    results: ReadonlyArray<Option.Option<unknown>>,
    of: ReadonlyArray<number> | undefined
  ): ReadonlyArray<Option.Option<unknown>> => (of === undefined ? results : of.map((i) => results[i]!))

  const below = (
    schema: AnySchema | undefined,
    results: Array<Option.Option<unknown>>,
    pending: ReadonlyArray<Pending>,
    times: ReadonlyArray<number> | undefined
  ): Effect.Effect<Array<Option.Option<unknown>>> =>
    Effect.gen(function* () {
      const since = versions.seq()
      let remaining: ReadonlyArray<Pending> = pending
      const waiting = remaining.filter((p) => p.slot !== undefined)
      if (waiting.length > 0) {
        yield* tags.load([...new Set(waiting.flatMap((p) => p.slot!.tags))])
        const t = now()
        remaining = remaining.filter(({ i, key, slot }) => {
          if (slot === undefined || lookup.judgeSlot(key, slot, t, schema, true) !== FRESH) return true
          counters.l1Hits += times?.[i] ?? 1
          results[i] = l1Answer(slot, schema)
          return false
        })
      }
      if (fast === undefined) {
        const found = yield* access.readManyL1(remaining.map(({ key }) => key))
        yield* readTags(found)
        const still: Array<Pending> = []
        const at = now()
        for (let j = 0; j < remaining.length; j++) {
          const entry = found[j]
          if (entry?._tag !== "Some" || lookup.judge(entry.value, at, schema, true) !== FRESH) {
            still.push(remaining[j]!)
            continue
          }
          const { i } = remaining[j]!
          counters.l1Hits += times?.[i] ?? 1
          results[i] = Option.some(lookup.decoded())
        }
        remaining = still
      }
      for (let t = 1; t <= access.lower.length && remaining.length > 0; t++) {
        const found = yield* access.readMany(
          t,
          remaining.map(({ key }) => key)
        )
        yield* readTags(found)
        const still: Array<Pending> = []
        for (let j = 0; j < remaining.length; j++) {
          const { i, key } = remaining[j]!
          const entry = found[j]
          if (entry?._tag !== "Some") {
            still.push(remaining[j]!)
            continue
          }
          // Judged synchronously, its tags read; on the clock of this moment, as get judges: an
          // earlier key's promotion may have taken time.
          const at = now()
          if (lookup.judge(entry.value, at, schema, true) !== FRESH) {
            still.push(remaining[j]!)
            continue
          }
          const value = lookup.decoded()
          counters.lowerHits[t - 1]! += times?.[i] ?? 1
          results[i] = Option.some(value)
          // Into MemoryTier's L1 from the one lower tier: synchronously.
          if (fast !== undefined && t === 1) {
            const slot = promotion.promoteNow(key, entry.value, at, since)
            if (slot !== undefined && schema !== undefined) slot.memoizeTyped(schema, value)
          } else yield* promotion.promote(key, entry.value, t, since, schema, value)
        }
        remaining = still
      }
      for (const { i } of remaining) {
        counters.misses += times?.[i] ?? 1
        results[i] = Option.none()
      }
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
      // Each key once: read once per tier, decided once, counted once per listing.
      const { keys: unique, of, times } = distinct(list)
      const results: Array<Option.Option<unknown>> = new Array(unique.length)
      const pending: Array<Pending> = []
      const t = now()
      for (let i = 0; i < unique.length; i++) {
        const key = unique[i]!
        const slot = fast?.lookup(key, t)
        const verdict = slot === undefined ? undefined : lookup.judgeSlot(key, slot, t, schema, false)
        if (verdict === FRESH) {
          counters.l1Hits += times?.[i] ?? 1
          results[i] = l1Answer(slot!, schema)
        } else pending.push({ i, key, slot: verdict === NEEDS_TAGS ? slot : undefined })
      }
      if (pending.length === 0) return Effect.succeed(spread(results, of))
      const answered = below(schema, results, pending, times)
      return of === undefined ? answered : Effect.map(answered, (answers) => spread(answers, of))
    })
}
