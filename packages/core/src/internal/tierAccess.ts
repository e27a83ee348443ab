/**
 * Every call to a tier goes through here: the breaker and timeout of each lower tier, error
 * recording (counted, logged), L1 access chosen once (MemoryTier's synchronous fast path or
 * any Tier), and the one-step writes and removals of the usual one-lower-tier shape; its direct
 * read comes from singleRead.ts, operations on every tier at once from everyTier.ts. Each lower
 * tier gets its `tiercache.tier.*` spans here, once, when spans are on (spans.ts). Tier indices:
 * 0 is L1, i >= 1 the i-th tier below it (`lower[i - 1]`).
 */
import { Cause, Effect, Option } from "effect"
import { TierError } from "../CacheError.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import * as Entry from "../Entry.js"
import { isMemoryTier } from "../MemoryTier.js"
import type { Tier } from "../Tier.js"
import * as Breaker from "./breaker.js"
import type { Counters } from "./counters.js"
import { describe } from "./describe.js"
import * as EveryTier from "./everyTier.js"
import { type FastPath, FastPathTypeId, type Slot } from "./fastPath.js"
import * as SingleRead from "./singleRead.js"
import { type Spans, traceTier } from "./spans.js"

/** What tierAccess needs. */
export interface Deps {
  readonly l1: Tier.Service
  /** The tiers below L1, in order (unguarded). */
  readonly lower: ReadonlyArray<Tier.Service>
  readonly breaker: CircuitBreaker.Options | false
  readonly counters: Counters
  readonly cacheName: string
  readonly l1Scale: number
  readonly now: () => number
  /** The cache's spans (undefined: the `spans: false` option, no tracing code at all). */
  readonly spans: Spans | undefined
  /**
   * The changes kept during an outage (recovery.ts), when on: `gate` wraps a lower tier so that
   * this instance's reads see them first; `keeps()` says whether any is kept now.
   */
  readonly recovery?:
    | {
        readonly gate: (tier: Tier.Service) => Tier.Service
        readonly keeps: () => boolean
      }
    | undefined
}

/** Access to the tiers (operations on every tier at once: everyTier.ts). */
export interface TierAccess extends EveryTier.EveryTier {
  /** L1's synchronous fast path when L1 is a MemoryTier. */
  readonly fast: FastPath | undefined
  /** The generic L1. */
  readonly l1: Tier.Service
  /** The tiers below L1 (guarded when the breaker is on). */
  readonly lower: ReadonlyArray<Tier.Service>
  /** Each lower tier's breaker (index i - 1 for tier i), when on. */
  readonly guards: ReadonlyArray<CircuitBreaker.GuardedTier> | undefined
  /** Each tier's label (index 0: L1). */
  readonly labels: ReadonlyArray<string>
  /** Counts and logs a tier's failure (a breaker's refusal is only counted). */
  readonly recordError: (index: number, error: TierError) => Effect.Effect<void>
  /** An entry of tier `index` >= 1; a failure is recorded and answers undefined. */
  readonly tryRead: (index: number, key: string) => Effect.Effect<Option.Option<Entry.Entry> | undefined>
  /** An entry of tier `index` >= 1; a failure is recorded and answers none. */
  readonly read: (index: number, key: string) => Effect.Effect<Option.Option<Entry.Entry>>
  /** Entries of tier `index` >= 1; a failure is recorded and answers undefined. */
  readonly tryReadMany: (
    index: number,
    keys: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<Option.Option<Entry.Entry>> | undefined>
  /** Entries of tier `index` >= 1; a failure is recorded and answers none for each. */
  readonly readMany: (
    index: number,
    keys: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<Option.Option<Entry.Entry>>>
  /** Writes tier `index` >= 1. */
  readonly write: (index: number, key: string, entry: Entry.Entry) => Effect.Effect<void, TierError>
  /** Removes keys from tier `index` >= 1 (failures recorded). */
  readonly removeFrom: (index: number, keys: ReadonlyArray<string>) => Effect.Effect<void>
  /** An L1 entry through the generic Tier interface; a failure is recorded and answers none. */
  readonly readL1: (key: string) => Effect.Effect<Option.Option<Entry.Entry>>
  /** L1 entries through the generic Tier interface. */
  readonly readManyL1: (
    keys: ReadonlyArray<string>
  ) => Effect.Effect<ReadonlyArray<Option.Option<Entry.Entry>>>
  /** Stores into L1 (scaled by l1TtlScale); answers the slot with the fast path. */
  readonly storeL1: (key: string, entry: Entry.Entry) => Effect.Effect<Slot | undefined, TierError>
  /** `storeL1` done at once, with the fast path (undefined without one). */
  readonly storeL1Now: ((key: string, entry: Entry.Entry) => Slot | undefined) | undefined
  /** Stores into L1 as given, not scaled: for lifetimes that are durations of their own. */
  readonly storeL1Exact: (key: string, entry: Entry.Entry) => Effect.Effect<Slot | undefined, TierError>
  /** The entry as L1 keeps it (scaled by l1TtlScale). */
  readonly l1Entry: (entry: Entry.Entry, at: number) => Entry.Entry
  /** Removes keys from L1. */
  readonly removeL1: (keys: ReadonlyArray<string>) => Effect.Effect<void, TierError>
  /** Removes from L1 the keys matching `matches` (`glob` for a generic L1). */
  readonly removeL1Matching: (
    glob: string,
    matches: (key: string) => boolean
  ) => Effect.Effect<void, TierError>
  /** Removes from L1 the entries carrying `tag` (with the fast path; a generic L1 checks tags on read). */
  readonly removeL1Tagged: (tag: string) => Effect.Effect<void, TierError>
  /** Empties L1. */
  readonly clearL1: Effect.Effect<void, TierError>
  /**
   * The one lower tier of a MemoryTier L1, written at once (its `setNow`, oneStepWrite.ts) when
   * it has one: `ready()` says whether it may be now (its breaker closed over a tier that bounds
   * its own calls, or no breaker; no span to open in the running fiber); `start` is the tier's
   * `setNow` (a throw is the write's failure); `ended` records a started write's outcome as the
   * guarded call would have (the breaker's count; a failure counted and logged).
   */
  readonly writeNow:
    | {
        readonly ready: () => boolean
        readonly start: (
          key: string,
          entry: Entry.Entry,
          done: (error: TierError | undefined) => void
        ) => boolean
        readonly ended: (error: TierError | undefined) => Effect.Effect<void>
      }
    | undefined
  /** As `writeNow`, for a removal (the tier's `removeNow`, with `removeThen`). */
  readonly removeNow:
    | {
        readonly ready: () => boolean
        readonly start: (keys: ReadonlyArray<string>, done: (error: TierError | undefined) => void) => boolean
        readonly ended: (error: TierError | undefined) => Effect.Effect<void>
      }
    | undefined
  /** The direct read of the one lower tier of a MemoryTier L1 (singleRead.ts); else undefined. */
  readonly single: SingleRead.SingleRead | undefined
}

const labelTiers = (tiers: ReadonlyArray<Tier.Service>): ReadonlyArray<string> => {
  const counts = new Map<string, number>()
  for (const t of tiers) counts.set(t.name, (counts.get(t.name) ?? 0) + 1)
  return tiers.map((t, i) => ((counts.get(t.name) ?? 0) > 1 ? `${t.name}#${i + 1}` : t.name))
}

/** Builds the tier access (guarding the lower tiers when the breaker is on). */
export const make = (deps: Deps): Effect.Effect<TierAccess> =>
  Effect.gen(function* () {
    const { l1, counters, cacheName, l1Scale, now } = deps
    const options = deps.breaker
    const guards =
      options === false
        ? undefined
        : yield* Effect.forEach(deps.lower, (tier) => Breaker.guard(tier, options))
    const guarded: ReadonlyArray<Tier.Service> = guards ?? deps.lower
    const labels = labelTiers([l1, ...guarded])
    const spans = deps.spans
    const traced =
      spans === undefined
        ? guarded
        : guarded.map((tier, i) => traceTier(tier, spans, cacheName, labels[i + 1]!, deps.lower[i]!.system))
    // The recovery's gate outside the breaker (and the spans): a read it answers from a kept
    // clear or pattern, without calling the tier, is no answer of the tier's. Inside, it was one
    // to the breaker: an open breaker's probe "succeeded" and closed it with the tier still down,
    // and a closed breaker's count of failures was reset by every such read, so that a hung tier
    // made every write wait out its timeout, its breaker never opening.
    const gate = deps.recovery?.gate
    const lower = gate === undefined ? traced : traced.map(gate)
    const fast = isMemoryTier(l1) ? l1[FastPathTypeId] : undefined

    const recordError = (index: number, error: TierError): Effect.Effect<void> => {
      if (Breaker.isRejection(error)) {
        counters.breakerRejections++
        return Effect.void
      }
      const label = labels[index]!
      counters.tierErrors.set(label, (counters.tierErrors.get(label) ?? 0) + 1)
      // A tier's defect (tierDefects.ts) is logged with its cause: the stack of the bug.
      const logged =
        error.cause === undefined
          ? Effect.logWarning(`tiercache: ${error.message}`)
          : Effect.logWarning(`tiercache: ${error.message}`, Cause.die(error.cause))
      return logged.pipe(Effect.annotateLogs({ tier: label, operation: error.operation, cache: cacheName }))
    }
    const none = Option.none<Entry.Entry>()
    const read = (index: number, key: string) =>
      lower[index - 1]!.get(key).pipe(Effect.catchAll((error) => Effect.as(recordError(index, error), none)))
    const tryRead = (index: number, key: string) =>
      lower[index - 1]!.get(key).pipe(
        Effect.catchAll((error) => Effect.as(recordError(index, error), undefined))
      )
    const tryReadMany = (index: number, keys: ReadonlyArray<string>) =>
      lower[index - 1]!.getMany(keys).pipe(
        Effect.catchAll((error) => Effect.as(recordError(index, error), undefined))
      )
    const readMany = (index: number, keys: ReadonlyArray<string>) =>
      lower[index - 1]!.getMany(keys).pipe(
        Effect.catchAll((error) =>
          Effect.as(
            recordError(index, error),
            keys.map(() => none)
          )
        )
      )
    const l1Entry = (entry: Entry.Entry, at: number) =>
      l1Scale === 1 ? entry : Entry.scale(entry, at, l1Scale)

    const storeL1Now =
      fast === undefined
        ? undefined
        : (key: string, entry: Entry.Entry) => fast.store(key, l1Entry(entry, now()))

    const { onEveryTier, storeThen, removeThen } = EveryTier.make(lower, recordError)

    const singleGuard = guards?.[0] as Breaker.GuardedTier | undefined
    const single =
      fast !== undefined && lower.length === 1
        ? SingleRead.make({
            tier: lower[0]!,
            guard: singleGuard,
            label: labels[1]!,
            system: deps.lower[0]!.system,
            cacheName,
            spans,
            gate,
            keeps: deps.recovery?.keeps,
            recordError
          })
        : undefined

    const only = deps.lower.length === 1 ? deps.lower[0]! : undefined
    const oneStep = fast !== undefined && only?.sequence !== undefined
    const setNow = oneStep && only!.setThen !== undefined ? only!.setNow : undefined
    const dropNow = oneStep && only!.removeThen !== undefined ? only!.removeNow : undefined
    // Started at once only over a tier that bounds its own calls (or with no breaker).
    const nowAllowed = singleGuard === undefined || singleGuard.selfBounded
    const readyNow = () =>
      (singleGuard === undefined || singleGuard.state() === "closed") &&
      (spans === undefined || spans.untraced())
    /**
     * Runs `start` (a call of the tier's `setNow` or `removeNow`, named `method`): a throw is the
     * call's failure, told to `done` after this returns.
     */
    const startNow = (
      operation: string,
      method: string,
      start: () => boolean,
      done: (error: TierError | undefined) => void
    ): boolean => {
      try {
        return start()
      } catch (cause) {
        const error = new TierError({
          tier: only!.name,
          operation,
          reason: `${method} threw: ${cause instanceof Error ? cause.message : describe(cause)}`
        })
        void Promise.resolve().then(() => done(error))
        return true
      }
    }
    const endedNow = (error: TierError | undefined): Effect.Effect<void> =>
      error === undefined
        ? singleGuard === undefined
          ? Effect.void
          : singleGuard.record(true)
        : singleGuard === undefined
          ? recordError(1, error)
          : Effect.zipRight(singleGuard.record(false), recordError(1, error))
    const writeNow: TierAccess["writeNow"] =
      setNow === undefined || !nowAllowed
        ? undefined
        : {
            ready: readyNow,
            start: (key, entry, done) => startNow("set", "setNow", () => setNow(key, entry, done), done),
            ended: endedNow
          }
    const removeNow: TierAccess["removeNow"] =
      dropNow === undefined || !nowAllowed
        ? undefined
        : {
            ready: readyNow,
            start: (keys, done) => startNow("remove", "removeNow", () => dropNow(keys, done), done),
            ended: endedNow
          }

    const access: TierAccess = {
      fast,
      l1,
      lower,
      guards,
      labels,
      recordError,
      tryRead,
      tryReadMany,
      read,
      readMany,
      write: (index, key, entry) => lower[index - 1]!.set(key, entry),
      removeFrom: (index, keys) =>
        lower[index - 1]!.remove(keys).pipe(Effect.catchAll((error) => recordError(index, error))),
      readL1: (key) => l1.get(key).pipe(Effect.catchAll((error) => Effect.as(recordError(0, error), none))),
      readManyL1: (keys) =>
        l1.getMany(keys).pipe(
          Effect.catchAll((error) =>
            Effect.as(
              recordError(0, error),
              keys.map(() => none)
            )
          )
        ),
      storeL1: (key, entry) =>
        storeL1Now !== undefined
          ? Effect.sync(() => storeL1Now(key, entry))
          : Effect.as(l1.set(key, l1Entry(entry, now())), undefined),
      storeL1Exact: (key, entry) =>
        fast !== undefined
          ? Effect.sync(() => fast.store(key, entry))
          : Effect.as(l1.set(key, entry), undefined),
      storeL1Now,
      l1Entry,
      removeL1: (keys) =>
        fast !== undefined
          ? Effect.sync(() => {
              for (const key of keys) fast.remove(key)
            })
          : l1.remove(keys),
      removeL1Matching: (glob, matches) =>
        fast !== undefined
          ? Effect.sync(() => void fast.removeWhere((key) => matches(key)))
          : Effect.asVoid(l1.removeMatching(glob)),
      removeL1Tagged: (tag) =>
        fast !== undefined
          ? Effect.sync(() => void fast.removeWhere((_, slot) => slot.tags.includes(tag)))
          : Effect.void,
      clearL1: fast !== undefined ? Effect.sync(() => fast.clear()) : l1.clear,
      onEveryTier,
      storeThen,
      removeThen,
      writeNow,
      removeNow,
      single
    }
    return access
  })
