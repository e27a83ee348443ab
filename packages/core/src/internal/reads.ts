/**
 * Reads past the L1 fast path: the lower tiers in order (or the one lower tier, read with a
 * single Effect step: `readSingle` for get, `lookupSingle` for the flights of getOrCompute),
 * each entry judged by lookup.ts, a fresh hit promoted, stale entries answered only where the
 * caller allowed them.
 */
import { Cause, Effect, Option } from "effect"
import type * as Entry from "../Entry.js"
import type { AnySchema } from "./codec.js"
import { type Counters, countHit } from "./counters.js"
import { type Lookup, MISS, NEEDS_TAGS, STALE, type Verdict } from "./lookup.js"
import type { Promotion } from "./promotion.js"
import type { Tags } from "./tags.js"
import type { TierAccess } from "./tierAccess.js"
import type { Versions } from "./versions.js"

/** A usable value found in the tier at `index` (0: L1). */
export interface Found {
  readonly index: number
  readonly entry: Entry.Entry
  readonly value: unknown
}

/** What the lower tiers offer: a fresh hit, and the first stale entry seen. */
export interface Outcome {
  readonly hit: Found | undefined
  readonly stale: Found | undefined
}

/** Nothing found. */
export const nothing: Outcome = { hit: undefined, stale: undefined }

/** The reads of one cache. */
export interface Reads {
  /**
   * Looks `key` up below L1, tier by tier, for a read that began at `since`; a fresh hit is
   * promoted into every tier above it. Also answers the first stale entry seen.
   */
  readonly lookupLower: (key: string, schema: AnySchema | undefined, since: number) => Effect.Effect<Outcome>
  /** A read past the L1 fast path; `l1Stale` is L1's stale entry, if any. Counts the request. */
  readonly readSlow: (
    key: string,
    schema: AnySchema | undefined,
    allowStale: boolean,
    l1Stale: Found | undefined
  ) => Effect.Effect<Option.Option<unknown>>
  /** An L1 entry through the generic Tier interface (an L1 that is not a MemoryTier), judged. */
  readonly genericL1: (key: string, schema: AnySchema | undefined) => Effect.Effect<Outcome>
}

/** What the reads need. */
export interface Deps {
  readonly access: TierAccess
  readonly lookup: Lookup
  readonly tags: Tags
  readonly promotion: Promotion
  readonly versions: Versions
  readonly counters: Counters
  readonly now: () => number
}

/** Builds the reads. */
export const make = (deps: Deps): Reads => {
  const { access, lookup, promotion, versions, counters, now } = deps

  /** The answer of a read that went below L1: counts it and applies `allowStale`. */
  const answer = (
    found: Outcome,
    l1Stale: Found | undefined,
    allowStale: boolean
  ): Option.Option<unknown> => {
    if (found.hit !== undefined) {
      countHit(counters, found.hit.index)
      return Option.some(found.hit.value)
    }
    const stale = l1Stale ?? found.stale
    if (allowStale && stale !== undefined) {
      countHit(counters, stale.index)
      counters.staleServed++
      return Option.some(stale.value)
    }
    counters.misses++
    return Option.none()
  }

  /** Any lower tiers, one after the other (the one-lower-tier shape: `lookupSingle`). */
  const lookupLower: Reads["lookupLower"] = (key, schema, since) =>
    Effect.gen(function* () {
      let stale: Found | undefined
      for (let i = 1; i <= access.lower.length; i++) {
        const found = yield* access.read(i, key)
        if (found._tag === "None") continue
        const accepted = yield* lookup.accept(found.value, schema)
        if (accepted === undefined) continue
        const result: Found = { index: i, entry: found.value, value: accepted.value }
        if (!accepted.fresh) {
          stale ??= result
          continue
        }
        yield* promotion.promote(key, found.value, i, since, schema, accepted.value)
        return { hit: result, stale }
      }
      return { hit: undefined, stale }
    })

  const genericL1: Reads["genericL1"] = (key, schema) =>
    Effect.flatMap(access.readL1(key), (found) =>
      found._tag === "None"
        ? Effect.succeed(nothing)
        : Effect.map(lookup.accept(found.value, schema), (accepted): Outcome => {
            if (accepted === undefined) return nothing
            const result: Found = { index: 0, entry: found.value, value: accepted.value }
            return accepted.fresh ? { hit: result, stale: undefined } : { hit: undefined, stale: result }
          })
    )

  const readGeneral = (
    key: string,
    schema: AnySchema | undefined,
    allowStale: boolean,
    l1Stale: Found | undefined
  ): Effect.Effect<Option.Option<unknown>> =>
    Effect.suspend(() => {
      const since = versions.seq()
      const fromL1 = access.fast !== undefined ? Effect.succeed(nothing) : genericL1(key, schema)
      return Effect.flatMap(fromL1, (l1Found) => {
        if (l1Found.hit !== undefined) {
          counters.l1Hits++
          return Effect.succeed(Option.some(l1Found.hit.value))
        }
        return Effect.map(lookupLower(key, schema, since), (found) =>
          answer(found, l1Stale ?? l1Found.stale, allowStale)
        )
      })
    })

  // The usual shape, a MemoryTier L1 over one lower tier, read with a single Effect step: the
  // tier's answer is judged, decoded and promoted synchronously.
  const single = access.single
  const settleSingle = (
    key: string,
    entry: Entry.Entry,
    verdict: Verdict,
    t: number,
    since: number,
    schema: AnySchema | undefined,
    allowStale: boolean,
    l1Stale: Found | undefined
  ): Effect.Effect<Option.Option<unknown>> => {
    if (verdict === MISS || verdict === NEEDS_TAGS)
      return Effect.succeed(answer(nothing, l1Stale, allowStale))
    const value = lookup.decoded()
    if (verdict === STALE) {
      return Effect.succeed(
        answer({ hit: undefined, stale: { index: 1, entry, value } }, l1Stale, allowStale)
      )
    }
    counters.lowerHits[0]!++
    const slot = promotion.promoteNow(key, entry, t, since)
    if (slot === undefined) return Effect.succeed(Option.some(value))
    // The answer the slot holds for hits is this caller's answer too.
    if (schema === undefined) return slot.some
    slot.memoizeTyped(schema, value)
    return slot.typedSome!
  }
  /**
   * The one lower tier's entry for `key`, judged (its tags read first when this instance has not
   * met them): `settle` answers from the entry and its verdict; `none()` answers a failure of the
   * tier (recorded) or no entry. Both one-lower-tier reads take it: get's and the flights'.
   */
  const readOne = <X>(
    key: string,
    schema: AnySchema | undefined,
    none: () => X,
    settle: (entry: Entry.Entry, verdict: Verdict, t: number) => Effect.Effect<X>
  ): Effect.Effect<X> => {
    const direct = single!.direct()
    const settleFound = (found: Option.Option<Entry.Entry>): Effect.Effect<X> => {
      if (found._tag === "None") return Effect.succeed(none())
      const entry = found.value
      const t = now()
      const verdict = lookup.judge(entry, t, schema, false)
      if (verdict !== NEEDS_TAGS) return settle(entry, verdict, t)
      return Effect.zipRight(
        deps.tags.load(entry.tags),
        Effect.suspend(() => {
          const t2 = now()
          return settle(entry, lookup.judge(entry, t2, schema, true), t2)
        })
      )
    }
    return Effect.matchCauseEffect(single!.get(direct, key), {
      onFailure: (cause) => {
        // An interruption is the caller's, and reaches it. Anything else is the tier's failure:
        // its defects are made TierErrors where the cache calls it (tierDefects.ts).
        const failure = Cause.isInterrupted(cause) ? Option.none() : Cause.failureOption(cause)
        return failure._tag === "Some"
          ? Effect.as(single!.failed(direct, failure.value), none())
          : Effect.failCause(cause as Cause.Cause<never>)
      },
      onSuccess: (found) => {
        // Effect.void unless the breaker changes state (a read that began before it opened).
        const recorded = single!.succeeded(direct)
        return recorded === Effect.void ? settleFound(found) : Effect.zipRight(recorded, settleFound(found))
      }
    })
  }
  const readSingle = (
    key: string,
    schema: AnySchema | undefined,
    allowStale: boolean,
    l1Stale: Found | undefined
  ): Effect.Effect<Option.Option<unknown>> => {
    const since = versions.seq()
    return readOne(
      key,
      schema,
      () => answer(nothing, l1Stale, allowStale),
      (entry, verdict, t) => settleSingle(key, entry, verdict, t, since, schema, allowStale, l1Stale)
    )
  }

  /** `lookupLower` over the one lower tier: its answer judged and promoted synchronously. */
  const settleLower = (
    key: string,
    entry: Entry.Entry,
    verdict: Verdict,
    t: number,
    since: number,
    schema: AnySchema | undefined
  ): Outcome => {
    if (verdict === MISS || verdict === NEEDS_TAGS) return nothing
    const found: Found = { index: 1, entry, value: lookup.decoded() }
    if (verdict === STALE) return { hit: undefined, stale: found }
    const slot = promotion.promoteNow(key, entry, t, since)
    if (slot !== undefined && schema !== undefined) slot.memoizeTyped(schema, found.value)
    return { hit: found, stale: undefined }
  }
  const lookupSingle: Reads["lookupLower"] = (key, schema, since) =>
    readOne(
      key,
      schema,
      () => nothing,
      (entry, verdict, t) => Effect.succeed(settleLower(key, entry, verdict, t, since, schema))
    )

  return {
    lookupLower: single !== undefined ? lookupSingle : lookupLower,
    genericL1,
    readSlow: single !== undefined ? readSingle : readGeneral
  }
}
