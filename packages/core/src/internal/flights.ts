/**
 * getOrCompute's flights: a caller joins the flight under way for its key or starts one; the
 * flight reads the lower tiers, then runs the computation (here, in one place) and stores its
 * value (computed.ts). A flight runs in a fiber the cache owns, started at once in the caller's step with the
 * caller's context, and interrupted when the cache closes (`interruptAll`, on the flight scope),
 * so a caller's interruption only stops its own wait. With a stale L1 copy and
 * stale-while-revalidate, the caller gets the stale value at once and the flight refreshes it in
 * the background.
 */
import { Effect } from "effect"
import { CacheInputError, CacheTimeoutError } from "../CacheError.js"
import type { ComputeOptions } from "../TieredCache.js"
import { type Defaults, type ResolvedCompute, resolveCompute } from "./callOptions.js"
import { type AnySchema, decode, NOT_DECODED } from "./codec.js"
import * as Computed from "./computed.js"
import { countHit } from "./counters.js"
import type { Flight, FlightResult, Registry } from "./flight.js"
import * as Cycles from "./flightCycles.js"
import * as FlightFibers from "./flightFibers.js"
import type { Found, Outcome, Reads } from "./reads.js"
import * as Signal from "./signal.js"
import { lookedUp, type SoftWait } from "./softTimeout.js"
import type { Spans } from "./spans.js"
import { computeError } from "./validate.js"
import type { Versions } from "./versions.js"

/** What the flights need (what storing a computed value needs too, computed.ts). */
export interface Deps extends Computed.Deps {
  readonly registry: Registry
  readonly reads: Reads
  readonly versions: Versions
  readonly defaults: Defaults
  readonly staleWhileRevalidate: boolean
  /** Whether L1 is read through the generic Tier interface (no fast path). */
  readonly genericL1: boolean
  /** The cache's spans (undefined: none). */
  readonly spans: Spans | undefined
}

/** The flights of one cache. */
export interface Flights {
  /**
   * Joins or starts the flight of `key`; `counted`: this call counts as a request; `l1Stale`:
   * L1's stale copy; `l1Read`: the caller has just read an L1 that is not a MemoryTier (its
   * flight does not read it again: a copy that does not decode would count twice). It reads the
   * registry when called: call it only while an effect runs.
   */
  readonly lead: <A, E, R>(
    key: string,
    schema: AnySchema | undefined,
    compute: Effect.Effect<A, E, R>,
    opts: ComputeOptions | undefined,
    counted: boolean,
    l1Stale: Found | undefined,
    l1Read?: boolean
  ) => Effect.Effect<A, E | CacheInputError | CacheTimeoutError, R>
  /** Interrupts every flight still running, and every one started later (the cache is closing). */
  readonly interruptAll: Effect.Effect<void>
  /**
   * The flights under way (computing or writing), a detached one included (a write of its key
   * made the next caller start another, but it still runs).
   */
  readonly underWay: () => number
}

const running = { _tag: "Running" } as const

/** Builds the flights. */
export const make = (deps: Deps): Flights => {
  const { registry, reads, resilience, versions, counters, cacheName, spans, now } = deps
  const spanAttributes = (key: string) =>
    spans?.keys === true
      ? { "tiercache.cache": cacheName, "tiercache.key": key }
      : { "tiercache.cache": cacheName }
  /**
   * `effect` in the span `name` when spans are on. Called only in the fiber that runs the
   * effect (lead's caller, which the flight's fiber inherits its Tracer from, or the flight),
   * so that fiber's Tracer decides it here, without an Effect step.
   */
  const inSpan = <A, E, R>(effect: Effect.Effect<A, E, R>, name: string, key: string) =>
    spans === undefined ? effect : spans.spanHere(effect, name, "internal", spanAttributes, key)
  type Failure = CacheInputError | CacheTimeoutError

  /** The flights' fibers (flightFibers.ts): the cache's close interrupts them. */
  const computedExit = Computed.make(deps)
  const fibers = FlightFibers.make()
  const launch = fibers.launch

  const answerStale = (stale: Found, counted: boolean): unknown => {
    if (counted) counters.l1Hits++
    counters.staleServed++
    return stale.value
  }

  /**
   * `lead`; `undecodable`: a flight this caller already waited for and whose value its schema
   * did not decode. It is not joined again: the caller starts a flight of its own at once
   * (joining it would only answer the same value, again and again until its lower-tier write
   * ends).
   */
  const start = <A, E, R>(
    key: string,
    schema: AnySchema | undefined,
    compute: Effect.Effect<A, E, R>,
    opts: ComputeOptions | undefined,
    counted: boolean,
    l1Stale: Found | undefined,
    undecodable: Flight | undefined,
    l1Read = false
  ): Effect.Effect<A, E | Failure, R> => {
    // Called only while an effect runs (getOrCompute's suspend, a continuation), so it reads
    // the registry now, with no suspend of its own: a stampede's every caller comes here.
    const badCompute = computeError(compute)
    if (badCompute) return Effect.fail(badCompute)
    const resolved = resolveCompute(deps.defaults, opts)
    if (resolved instanceof CacheInputError) return Effect.fail(resolved)
    const serveStale = l1Stale !== undefined && deps.staleWhileRevalidate
    /** Joins the flight under way (only waits: no interruption mask needed). */
    const joinExisting = (existing: Flight): Effect.Effect<A, E | Failure, R> => {
      if (serveStale) return Effect.succeed(answerStale(l1Stale, counted) as A)
      // What the flight would answer has expired since: its waiters' stale value past its grace
      // window (the refresh outlasted it), or its computed value past its TTL (its lower-tier
      // write outlasted it). This caller computes instead of taking it.
      const state = existing.state
      if (
        (state._tag === "ServedStale" && !resilience.staleUsable(existing)) ||
        (state._tag === "Writing" && now() >= state.result.entry.expiresAt)
      ) {
        // The superseded computation began earlier: its value must not land over this one's.
        versions.changing(key)
        versions.changed(key)
        return start(key, schema, compute, opts, counted, undefined, existing)
      }
      // A computation waiting for its own flight (or for one that waits for it) would wait
      // forever, and every caller after it.
      const inside = state._tag === "Writing" ? Cycles.noFlights : Cycles.computingHere()
      if (inside.length > 0 && Cycles.closesCycle(existing, inside)) return Effect.fail(Cycles.reentrant())
      if (counted) counters.coalesced++
      // Computed and in L1 (this caller missed it there: evicted), its lower tiers being
      // written: the computed value, not what the waiters were answered with (it may have been
      // a stale value, gone by now).
      if (state._tag === "Writing") return fromComputed(key, existing, state.result, schema, compute, opts)
      // This caller's own soft timeout (README: timeouts per call), from when it joins: it
      // answers this caller alone.
      const soft =
        resolved.softMs !== undefined && state._tag === "Running"
          ? resilience.softTimeout(existing, resolved.softMs, staleFor(existing, schema), undefined)
          : undefined
      return Cycles.waitingFrom(
        inside.at(-1),
        existing,
        join(key, existing, schema, compute, opts, resolved, soft)
      )
    }
    const existing = registry.get(key)
    if (existing !== undefined && existing !== undecodable) return joinExisting(existing)
    // Registering the flight and starting its fiber happen in one step (no interruption can
    // come between them); only the wait can be interrupted.
    return Effect.withFiberRuntime<A, E | Failure, R>((caller, status) => {
      const registered = registry.get(key)
      if (registered !== undefined && registered !== undecodable) return joinExisting(registered)
      const flight: Flight = {
        result: Signal.make(),
        schema,
        stale: l1Stale,
        state: running,
        // Answered stale at once (stale-while-revalidate): the caller was counted already.
        staleCounted: serveStale,
        failSafeCounted: false,
        lookingUp: true,
        afterLookup: undefined,
        firstAnswered: false,
        fiber: undefined,
        waitsOn: undefined
      }
      registry.set(key, flight)
      // The change times since the flight began are kept until it ends (versions.ts).
      const since = versions.begin()
      const inside = Cycles.computingIn(caller)
      const fiber = launch(
        caller,
        status,
        run(key, flight, compute, resolved, counted && !serveStale, since, l1Read),
        (exit) => {
          versions.end(since)
          registry.done(key, flight)
          Signal.done(flight.result, exit)
        },
        Cycles.refsComputing(caller, inside, flight)
      )
      flight.fiber = fiber
      if (serveStale) return Effect.succeed(answerStale(l1Stale, counted) as A)
      // From the call, so that it bounds a slow lower-tier lookup too (README: timeouts bound how
      // long callers wait).
      const answered = () => {
        flight.firstAnswered = true
      }
      const soft =
        resolved.softMs === undefined
          ? undefined
          : resilience.softTimeout(flight, resolved.softMs, sameSchema, answered)
      const awaited = resilience.await(key, flight, resolved.hardMs, true, answered, soft) as Effect.Effect<
        A,
        E
      >
      // Led from inside another flight's computation: that one waits for this one.
      return inside.length === 0 ? awaited : Cycles.waitingFrom(inside.at(-1), flight, awaited)
    })
  }

  /** A soft timeout's answer for a caller of the flight's own schema: its stale value. */
  const sameSchema = (stale: FlightResult) => stale
  /** A soft timeout's answer for a caller with `schema`: the stale value decoded for it, if it can be. */
  const staleFor =
    (flight: Flight, schema: AnySchema | undefined) =>
    (stale: FlightResult): FlightResult | undefined => {
      if (schema === flight.schema) return stale
      const decoded = decode(schema, stale.entry.value)
      return decoded === NOT_DECODED ? undefined : { entry: stale.entry, value: decoded }
    }

  const lead: Flights["lead"] = (key, schema, compute, opts, counted, l1Stale, l1Read) =>
    start(key, schema, compute, opts, counted, l1Stale, undefined, l1Read)

  /** A flight's computed result for a caller with `schema`: decoded for it, or computed anew. */
  const fromComputed = <A, E, R>(
    key: string,
    flight: Flight,
    result: FlightResult,
    schema: AnySchema | undefined,
    compute: Effect.Effect<A, E, R>,
    opts: ComputeOptions | undefined
  ): Effect.Effect<A, E | Failure, R> => {
    if (schema === flight.schema) return Effect.succeed(result.value as A)
    const decoded = decode(schema, result.entry.value)
    if (decoded !== NOT_DECODED) return Effect.succeed(decoded as A)
    counters.decodeErrors++
    return start(key, schema, compute, opts, false, undefined, flight)
  }

  /** Waits for another caller's flight; with another schema, decodes its entry (or computes anew). */
  const join = <A, E, R>(
    key: string,
    flight: Flight,
    schema: AnySchema | undefined,
    compute: Effect.Effect<A, E, R>,
    opts: ComputeOptions | undefined,
    resolved: ResolvedCompute,
    soft: SoftWait | undefined
  ): Effect.Effect<A, E | Failure, R> => {
    // The same schema (the usual case, a stampede's every caller): the flight's answer is theirs.
    if (schema === flight.schema)
      return resilience.await(key, flight, resolved.hardMs, true, undefined, soft) as Effect.Effect<
        A,
        E | Failure
      >
    // Another schema: a stale answer counts only once it decodes for this caller (below).
    const waited = resilience.await(key, flight, resolved.hardMs, false, undefined, soft) as Effect.Effect<
      A,
      E | Failure
    >
    return Effect.flatMap(waited, (value) => {
      // Its soft timeout answered it with the stale value, decoded for it (staleFor).
      if (soft?.answered()) return Effect.succeed(value)
      if (flight.result.exit === undefined) {
        // Answered at this caller's hard timeout with the flight's stale value, the computation
        // still running: that stale value, decoded for this caller's schema.
        const decoded = flight.stale === undefined ? NOT_DECODED : decode(schema, flight.stale.entry.value)
        if (decoded === NOT_DECODED)
          return Effect.fail(new CacheTimeoutError({ key, timeoutMs: resolved.hardMs ?? 0 }))
        resilience.countTimedOutStale(flight)
        return Effect.succeed(decoded as A)
      }
      return Effect.flatMap(Signal.wait(flight.result) as Effect.Effect<FlightResult, E>, (result) =>
        fromComputed(key, flight, result, schema, compute, opts)
      )
    })
  }

  /**
   * Runs the computation (the one place computations run) in the flight's own fiber; answers
   * its exit (computedExit counts a failure).
   */
  const computeIn = <A, E, R>(key: string, compute: Effect.Effect<A, E, R>) => {
    counters.computations++
    return Effect.exit(inSpan(compute, "tiercache.compute", key))
  }

  const run = <A, E, R>(
    key: string,
    flight: Flight,
    compute: Effect.Effect<A, E, R>,
    resolved: ResolvedCompute,
    counted: boolean,
    since: number,
    l1Read: boolean
  ): Effect.Effect<FlightResult, E | Failure, R> =>
    // Written as plain steps, not Effect.gen: a flight runs for every miss, and a generator's
    // steps allocate more than the rest of its bookkeeping.
    Effect.suspend(() => {
      // A computed value is as old as the data it read: it is dated from the flight's start,
      // so that a tag invalidated while it ran also invalidates it.
      const startedAt = now()
      const looked = (found: Outcome): Effect.Effect<FlightResult, E | Failure, R> => {
        if (found.hit !== undefined) {
          // Answered already, by its soft or hard timeout during the lookup: a miss.
          if (counted) {
            if (flight.firstAnswered) counters.misses++
            else countHit(counters, found.hit.index)
          }
          // Soft timeouts that passed during the lookup: their callers get this hit.
          lookedUp(flight, true)
          return Effect.succeed(found.hit)
        }
        // The stale copy that lasts longest: a lower tier's outlasts L1's scaled one (l1TtlScale).
        // With stale-while-revalidate it answers the flight's waiters now: callers that came
        // with an L1 copy were answered with theirs already, and a caller whose L1 copy has
        // ended since (scaled by l1TtlScale) gets the lower tier's, as it would without L1.
        let servedFrom: number | undefined
        if (
          found.stale !== undefined &&
          (flight.stale === undefined || found.stale.entry.staleUntil > flight.stale.entry.staleUntil)
        ) {
          flight.stale = found.stale
          if (deps.staleWhileRevalidate) {
            resilience.answerStale(flight)
            if (flight.state._tag === "ServedStale") servedFrom = found.stale.index
          }
        }
        // Answered at once with a lower tier's stale copy: a hit of that tier, as a caller
        // answered with L1's stale copy is an L1 hit, and as get with allowStale counts it.
        if (counted) {
          if (servedFrom !== undefined && !flight.firstAnswered) countHit(counters, servedFrom)
          else counters.misses++
        }
        const computed = Effect.flatMap(computeIn(key, compute), (exit) =>
          computedExit(key, flight, exit, resolved, since, startedAt)
        )
        // Soft timeouts that passed during the lookup: the stale value it found answers their
        // callers now.
        lookedUp(flight, false)
        return computed
      }
      const lower = () => Effect.flatMap(reads.lookupLower(key, flight.schema, since), looked)
      if (!deps.genericL1 || flight.stale !== undefined || l1Read) return lower()
      return Effect.flatMap(reads.genericL1(key, flight.schema), (l1) => {
        flight.stale = l1.stale
        return lower()
      })
    }).pipe((flight) => inSpan(flight, "tiercache.getOrCompute", key))

  return { lead, interruptAll: fibers.interruptAll, underWay: fibers.underWay }
}
