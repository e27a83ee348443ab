/**
 * What a flight does when its computation is slow or fails and a stale value exists: grace
 * (stale-while-revalidate answers at once), the soft timeout (a caller gets the stale value while
 * the computation goes on: softTimeout.ts), the hard timeout (a stale value or a
 * CacheTimeoutError), and the fail-safe (a failed computation answers the stale value, kept in L1
 * for the throttle).
 */
import { Cause, type Clock, Effect, Exit } from "effect"
import { CacheTimeoutError, type TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import { bracketSync } from "./bracket.js"
import type { Counters } from "./counters.js"
import type { Slot } from "./fastPath.js"
import type { Flight, FlightResult } from "./flight.js"
import type { Lookup } from "./lookup.js"
import type { PendingStores } from "./pendingStores.js"
import * as Signal from "./signal.js"
import * as Soft from "./softTimeout.js"
import { keyAnnotations } from "./spans.js"
import type { TierAccess } from "./tierAccess.js"
import { timerStandsIn } from "./timeout.js"

/** The resilience policies of one cache. */
export interface Resilience {
  /** Answers a flight's waiters now, once (while it is Running); answers whether this call did. */
  readonly answer: (flight: Flight, result: FlightResult) => boolean
  /** Answers a flight's waiters now with its stale value, if any (the computation goes on). */
  readonly answerStale: (flight: Flight) => void
  /** Whether the flight's stale value may still answer (its grace window has not ended). */
  readonly staleUsable: (flight: Flight) => boolean
  /**
   * Waits for a flight's result; past `hardMs`, its stale value answers, or a CacheTimeoutError.
   * `count` false: a stale answer is not counted (the caller counts it with
   * `countTimedOutStale` once it has decoded it for its own schema). `onTimeout` runs when the
   * hard timeout passes, before the answer. `soft`: the caller's soft timeout (`softTimeout`),
   * whose signal it waits for in place of the flight's; it ends with the wait.
   */
  readonly await: (
    key: string,
    flight: Flight,
    hardMs: number | undefined,
    count?: boolean,
    onTimeout?: () => void,
    soft?: Soft.SoftWait
  ) => Effect.Effect<unknown, unknown>
  /** Counts a hard timeout answered with the flight's stale value (once per flight). */
  readonly countTimedOutStale: (flight: Flight) => void
  /**
   * Starts a caller's soft timeout: `softMs` from now (the cache's clock), that caller alone is
   * answered with the flight's stale value (`pick` gives its answer from it), if one may still
   * answer and the flight has not answered yet (softTimeout.ts). Pass it to `await`.
   */
  readonly softTimeout: Soft.Start
  /** Whether a failed computation falls back on the flight's stale value. */
  readonly failSafeApplies: (flight: Flight, cause: Cause.Cause<unknown>) => boolean
  /**
   * The computation failed and a stale value exists: answer with it, and keep it in L1 as
   * fresh for the fail-safe throttle (unless the key changed since `since`).
   */
  readonly failSafe: (
    key: string,
    flight: Flight,
    stale: FlightResult,
    since: number,
    cause: Cause.Cause<unknown>
  ) => Effect.Effect<FlightResult>
}

/** What the policies need. */
export interface Deps {
  readonly access: TierAccess
  readonly lookup: Lookup
  readonly counters: Counters
  /** The stores an invalidation waits for (a fail-safe copy written to an L1 that takes time). */
  readonly pending: PendingStores
  readonly failSafeThrottle: number
  readonly cacheName: string
  /** Whether log lines may name keys (the `keysInSpans` option: logs reach spans as events). */
  readonly keysInSpans: boolean
  readonly now: () => number
  /** The clock of the fiber that built the cache: the hard timeout's. */
  readonly clock: Clock.Clock
}

/** Builds the policies. */
export const make = (deps: Deps): Resilience => {
  const { access, lookup, counters, pending, failSafeThrottle, cacheName, now, clock } = deps

  const answer: Resilience["answer"] = (flight, result) => {
    if (flight.state._tag !== "Running") return false
    Signal.done(flight.result, Exit.succeed(result))
    return true
  }
  /**
   * The flight's stale value while it may still answer: until its grace window ends (past
   * `staleUntil` an entry is gone, however long ago the flight found it).
   */
  const usableStale = (flight: Flight): FlightResult | undefined => {
    const stale = flight.stale
    return stale !== undefined && now() < stale.entry.staleUntil ? stale : undefined
  }
  /** Counts the flight's computation as answered stale, once however many waiters. */
  const countStale = (flight: Flight) => {
    if (flight.staleCounted) return
    flight.staleCounted = true
    counters.staleServed++
  }
  /** Counts the flight's computation as failed or timed out and answered stale, once. */
  const countFailSafe = (flight: Flight) => {
    if (flight.failSafeCounted) return
    flight.failSafeCounted = true
    counters.failSafeHits++
  }
  const answerStale: Resilience["answerStale"] = (flight) => {
    const stale = usableStale(flight)
    if (stale !== undefined && answer(flight, stale)) {
      flight.state = { _tag: "ServedStale" }
      countStale(flight)
    }
  }

  /** Counts a hard timeout answered with the flight's stale value. */
  const countTimedOutStale = (flight: Flight) => {
    countStale(flight)
    countFailSafe(flight)
  }
  /** A wait past the hard timeout: the flight's stale value, or a CacheTimeoutError. */
  const timedOut = (
    key: string,
    flight: Flight,
    hardMs: number,
    count: boolean,
    onTimeout: (() => void) | undefined
  ): Effect.Effect<unknown, CacheTimeoutError> => {
    counters.timeouts++
    onTimeout?.()
    const stale = usableStale(flight)
    if (stale === undefined) return Effect.fail(new CacheTimeoutError({ key, timeoutMs: hardMs }))
    if (count) countTimedOutStale(flight)
    return Effect.succeed(stale.value)
  }

  const awaitFlight: Resilience["await"] = (key, flight, hardMs, count = true, onTimeout, soft) =>
    soft === undefined
      ? awaitSignal(key, flight, flight.result, hardMs, count, onTimeout)
      : Effect.ensuring(
          awaitSignal(key, flight, soft.signal, hardMs, count, onTimeout),
          Effect.sync(soft.end)
        )

  /** `await`, for the flight's result or a caller's own signal (its soft timeout's). */
  const awaitSignal = (
    key: string,
    flight: Flight,
    signal: Signal.Signal<FlightResult, unknown>,
    hardMs: number | undefined,
    count: boolean,
    onTimeout: (() => void) | undefined
  ): Effect.Effect<unknown, unknown> => {
    if (hardMs === undefined) return Signal.wait(signal, (r) => r.value)
    // Every waiter of a stampede has its own timeout: with a timer in place of the clock, no
    // fiber per waiter (Effect.timeoutFail forks two).
    if (timerStandsIn(clock, hardMs)) {
      return Signal.waitWithin(
        signal,
        (r) => r.value,
        hardMs,
        () => timedOut(key, flight, hardMs, count, onTimeout)
      )
    }
    const expired = new CacheTimeoutError({ key, timeoutMs: hardMs })
    // On the cache's clock, not the caller's (a caller may run under another: a test's
    // TestClock beside a cache built live, or the other way round).
    return Effect.withClock(
      Effect.timeoutFail(
        Signal.wait(signal, (r) => r.value),
        {
          duration: hardMs,
          onTimeout: () => expired
        }
      ),
      clock
    ).pipe(
      Effect.catchIf(
        (e) => e === expired,
        () => Effect.suspend(() => timedOut(key, flight, hardMs, count, onTimeout))
      )
    )
  }

  const failSafe: Resilience["failSafe"] = (key, flight, stale, since, cause) =>
    Effect.gen(function* () {
      countFailSafe(flight)
      answerStale(flight)
      yield* Effect.logWarning("tiercache: computation failed; serving the stale value", cause).pipe(
        Effect.annotateLogs(keyAnnotations(deps.keysInSpans, cacheName, key))
      )
      const slot = yield* keepInL1(key, stale.entry, since)
      if (slot !== undefined && flight.schema !== undefined) slot.memoizeTyped(flight.schema, stale.value)
      return stale
    })

  /**
   * Keeps a stale entry in L1 as fresh for the throttle period (a duration of its own: not
   * scaled by l1TtlScale), never past the end of its grace window, unless `key` changed since
   * `since`. The check and the write are one step with MemoryTier's L1. Another L1 may take
   * time to write: the write is then a pending store (pendingStores.ts), which an invalidation
   * of the key waits for before removing, and it takes back what it wrote if the key changed
   * meanwhile, as a promotion does: once an invalidation has returned, L1 does not hold it.
   */
  const keepInL1 = (key: string, entry: Entry.Entry, since: number): Effect.Effect<Slot | undefined> => {
    const kept = (): Entry.Entry => ({
      value: entry.value,
      expiresAt: Math.min(now() + failSafeThrottle, entry.staleUntil),
      staleUntil: entry.staleUntil,
      tags: entry.tags,
      createdAt: entry.createdAt
    })
    const fast = access.fast
    if (fast !== undefined)
      return Effect.sync(() => (lookup.current(key, since) ? fast.store(key, kept()) : undefined))
    const recorded = (error: TierError) => Effect.as(access.recordError(0, error), undefined)
    // Uninterruptible, as a promotion's: interrupted half-way, the pending store would end while
    // its write may still land, after an invalidation that waited for it.
    return Effect.uninterruptible(
      bracketSync(
        () => (lookup.current(key, since) ? pending.begin(key, entry.tags) : undefined),
        (store) =>
          store === undefined
            ? Effect.succeed(undefined)
            : Effect.flatMap(access.storeL1Exact(key, kept()).pipe(Effect.catchAll(recorded)), (slot) =>
                lookup.current(key, since) && !store.invalidated
                  ? Effect.succeed(slot)
                  : Effect.as(access.removeL1([key]).pipe(Effect.catchAll(recorded)), undefined)
              ),
        (store) => {
          if (store !== undefined) pending.finish(store)
        }
      )
    )
  }

  return {
    answer,
    answerStale,
    staleUsable: (flight) => usableStale(flight) !== undefined,
    countTimedOutStale,
    await: awaitFlight,
    softTimeout: Soft.make({ clock, usableStale, countStale }),
    failSafeApplies: (flight, cause) =>
      usableStale(flight) !== undefined && failSafeThrottle > 0 && !Cause.isInterruptedOnly(cause),
    failSafe
  }
}
