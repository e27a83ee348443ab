/**
 * The circuit breaker and tier guard behind CircuitBreaker.ts, with what TieredCache's L2 read
 * shortcut needs and users do not: the guarded tier itself, whether it bounds its own calls, and
 * a way to record the outcome of a call made on it directly.
 */
import { Cause, Duration, Effect } from "effect"
import { CacheConfigError, TierError } from "../CacheError.js"
import type {
  Options,
  Breaker as PublicBreaker,
  GuardedTier as PublicGuardedTier,
  State
} from "../CircuitBreaker.js"
import type { Entry } from "../Entry.js"
import type { Tier, TierHealth } from "../Tier.js"
import { bracketSync } from "./bracket.js"
import { bounder } from "./timeout.js"
import { configMillis, describe, given, isPositiveInteger, optionsObjectError } from "./validate.js"

/** The reason of the TierError a call gets while the breaker is open. */
export const OPEN_REASON = "circuit breaker open"

/** Whether an error is a breaker's refusal (not a failure of the tier itself). */
export const isRejection = (error: TierError): boolean => error.reason === OPEN_REASON

/** A breaker, plus recording the outcome of a call made without `run`. */
export interface Breaker extends PublicBreaker {
  /** Records the outcome of a call made without `run` while closed; a failure may open it (the answer logs that). */
  readonly record: (success: boolean) => Effect.Effect<void>
  /** An open breaker lets its next call probe at once (the connection reported ready). */
  readonly probeNow: () => void
  /** Whether the next call would be the probe (open, its window over, no probe under way). */
  readonly mayProbe: () => boolean
}

/** A guarded tier, plus what a hot path needs to call the tier directly while the breaker is closed. */
export interface GuardedTier extends PublicGuardedTier {
  /** The tier guarded. */
  readonly inner: Tier.Service
  /** Whether the inner tier bounds its own calls (no timer is added). */
  readonly selfBounded: boolean
  /**
   * Records the outcome of a call made on `inner` directly while the breaker was closed (a
   * caller's shortcut on a hot path); a failure may open the breaker: the answer logs that.
   */
  readonly record: (success: boolean) => Effect.Effect<void>
  /** An open breaker lets its next call probe at once (the connection reported ready). */
  readonly probeNow: () => void
}

/**
 * `value` once what `record` answered has run: at once when it is `Effect.void` (the usual
 * outcome, closed before and after: nothing to log, no step to run).
 */
const answerAfter = <A>(recorded: Effect.Effect<void>, value: A): Effect.Effect<A> =>
  recorded === Effect.void ? Effect.succeed(value) : Effect.as(recorded, value)

/**
 * The first bad option of a breaker, named `<prefix><option>` (`breaker.timeout` in a cache's
 * options), or undefined: options that are not an object, durations that are not positive,
 * a failure threshold that is not a positive integer. From plain JS, anything goes in.
 */
export const optionsError = (options: unknown, prefix: string): CacheConfigError | undefined => {
  if (options === undefined) return undefined
  const notObject = optionsObjectError(options, prefix === "" ? "options" : prefix.slice(0, -1))
  if (notObject) return notObject
  const { timeout, openFor, failureThreshold } = options as Record<string, unknown>
  for (const [name, input] of [
    ["timeout", timeout],
    ["openFor", openFor]
  ] as const) {
    if (input === undefined) continue
    const ms = configMillis(input, `${prefix}${name}`)
    if (typeof ms !== "number") return ms
  }
  if (failureThreshold !== undefined && !isPositiveInteger(failureThreshold)) {
    return new CacheConfigError({
      option: `${prefix}failureThreshold`,
      reason: `must be a positive integer, got ${describe(failureThreshold)}`
    })
  }
  return undefined
}

/**
 * A call's end in `cause`, recorded: a failure or a defect counts against the tier (`record`
 * false); an interruption proves nothing.
 */
const failedWith = <E>(
  record: (success: boolean) => Effect.Effect<void>,
  cause: Cause.Cause<E>
): Effect.Effect<never, E> =>
  Cause.isInterruptedOnly(cause)
    ? Effect.failCause(cause)
    : Effect.zipRight(record(false), Effect.failCause(cause))

/** Makes a breaker named `name` (for its logs), from options already checked (`optionsError`). */
export const make = (name: string, options: Options = {}): Effect.Effect<Breaker> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    // The window is a duration of this process, on the clock's monotonic time (nanos: the live
    // clock's does not step back with the wall clock, a TestClock's moves with its millis).
    const elapsedMs = () => Number(clock.unsafeCurrentTimeNanos()) / 1_000_000
    const timeout = Duration.decode(given(options.timeout, "1 second"))
    const bound = bounder(clock, timeout)
    const threshold = given(options.failureThreshold, 5)
    const openForMs = Duration.toMillis(Duration.decode(given(options.openFor, "10 seconds")))
    let state: State = "closed"
    let failures = 0
    let openUntil = 0
    let probing = false
    /** Which probe is the current one: a probe of an earlier open period must not end it. */
    let probeId = 0
    let rejected = 0

    const transition = (next: State, why: string): Effect.Effect<void> => {
      if (next === state) return Effect.void
      const previous = state
      state = next
      const log = next === "open" ? Effect.logWarning : Effect.logInfo
      return log(`tiercache: ${name} breaker ${previous} -> ${next} (${why})`).pipe(
        Effect.annotateLogs({ breakerOf: name, breaker: next })
      )
    }

    const record = (success: boolean): Effect.Effect<void> => {
      probing = false
      if (success) {
        failures = 0
        return transition("closed", "probe succeeded")
      }
      failures++
      if (state === "half-open" || failures >= threshold) {
        openUntil = elapsedMs() + openForMs
        return transition("open", `${failures} consecutive failures`)
      }
      return Effect.void
    }

    const run = <A, E>(
      effect: Effect.Effect<A, E>,
      onOpen: () => E,
      onTimeout: () => E,
      bounded = false
    ): Effect.Effect<A, E> =>
      Effect.suspend(() => {
        if (state === "open") {
          if (elapsedMs() < openUntil || probing) {
            rejected++
            return Effect.fail(onOpen())
          }
          return probe(effect, onOpen, onTimeout, bounded)
        } else if (state === "half-open") {
          rejected++
          return Effect.fail(onOpen())
        }
        return settled(effect, onTimeout, bounded)
      })

    const settled = <A, E>(effect: Effect.Effect<A, E>, onTimeout: () => E, bounded: boolean) =>
      Effect.matchCauseEffect(bounded ? effect : bound(effect, onTimeout), {
        onFailure: (cause) => failedWith(record, cause),
        onSuccess: (value) => answerAfter(record(true), value)
      })

    /**
     * The one call let through an open breaker. It is marked probing in the step that decides
     * it (bracket.ts: no interruption in between, and no other call may have begun probing since
     * `run` looked); an interrupted probe proves nothing: back to open (unless another call
     * closed the breaker meanwhile), and the next call probes again.
     */
    const probe = <A, E>(
      effect: Effect.Effect<A, E>,
      onOpen: () => E,
      onTimeout: () => E,
      bounded: boolean
    ): Effect.Effect<A, E> =>
      bracketSync(
        () => {
          if (state !== "open" || probing || elapsedMs() < openUntil) return 0
          probing = true
          return ++probeId
        },
        (probe) =>
          probe !== 0
            ? Effect.zipRight(transition("half-open", "probing"), settled(effect, onTimeout, bounded))
            : run(effect, onOpen, onTimeout, bounded),
        (probe, cause) => {
          // Still the current probe, and still probing: it ended without a verdict (interrupted).
          if (probe !== 0 && cause !== undefined && probing && probe === probeId) {
            probing = false
            if (state === "half-open") {
              state = "open"
              openUntil = 0
            }
          }
        }
      )

    const probeNow = () => {
      if (state === "open") openUntil = 0
    }

    const mayProbe = () => state === "open" && !probing && elapsedMs() >= openUntil

    return { timeout, state: () => state, rejected: () => rejected, record, run, probeNow, mayProbe }
  })

/**
 * Guards a tier with a timeout per call and a circuit breaker, on the Effect Clock, from options
 * already checked (`optionsError`). A tier whose own `callTimeout` is not longer than the
 * guard's timeout is trusted to bound itself.
 */
export const guard = (tier: Tier.Service, options: Options = {}): Effect.Effect<GuardedTier> =>
  Effect.gen(function* () {
    const breaker = yield* make(tier.name, options)
    const clock = yield* Effect.clock
    const timeout = breaker.timeout
    const timeoutMs = Duration.toMillis(timeout)
    // A tier that bounds its own calls at least as tightly needs no timer here (a timer runs the
    // call in a fiber of its own, which costs more than a Redis round trip; see timeout.ts).
    const selfBounded =
      tier.callTimeout !== undefined && Duration.lessThanOrEqualTo(tier.callTimeout, timeout)
    const call = <A>(operation: string, effect: Effect.Effect<A, TierError>): Effect.Effect<A, TierError> =>
      breaker.run(
        effect,
        () => new TierError({ tier: tier.name, operation, reason: OPEN_REASON }),
        () => new TierError({ tier: tier.name, operation, reason: `timed out after ${timeoutMs} ms` }),
        selfBounded
      )

    /**
     * A call that runs `then` (the bus message) once its command is sent (`setThen`,
     * `removeThen`: `start` makes it with the `then` given) through the breaker, only over a
     * tier that bounds its own calls: no timer of ours may interrupt `then` half-way. A rejected
     * or failed call still runs `then` once.
     */
    const callThen = <A>(
      operation: string,
      start: (then: Effect.Effect<A>) => Effect.Effect<readonly [TierError | undefined, A]>,
      then: Effect.Effect<A>
    ): Effect.Effect<readonly [TierError | undefined, A]> =>
      Effect.suspend(() => {
        // Closed, the usual case: the call's outcome recorded as `run` records it (a tier that
        // bounds itself gets no timer there either), without `run`'s steps.
        if (breaker.state() === "closed") {
          return Effect.matchCauseEffect(start(then), {
            onFailure: (cause) => failedWith(breaker.record, cause),
            onSuccess: (result) => answerAfter(breaker.record(result[0] === undefined), result)
          })
        }
        let ran: { readonly value: A } | undefined
        const started = Effect.flatMap(
          start(
            Effect.map(then, (value) => {
              ran = { value }
              return value
            })
          ),
          ([error, value]) => (error === undefined ? Effect.succeed(value) : Effect.fail(error))
        )
        return Effect.matchEffect(call(operation, started), {
          onSuccess: (value) => Effect.succeed([undefined, value] as const),
          onFailure: (error) =>
            ran !== undefined
              ? Effect.succeed([error, ran.value] as const)
              : Effect.map(then, (value) => [error, value] as const)
        })
      })
    const setThen = (inner: NonNullable<Tier.Service["setThen"]>): Tier.Service["setThen"] =>
      (<A>(key: string, entry: Entry, then: Effect.Effect<A>) =>
        callThen("set", (t: Effect.Effect<A>) => inner(key, entry, t), then)) as Tier.Service["setThen"]
    const removeThen = (inner: NonNullable<Tier.Service["removeThen"]>): Tier.Service["removeThen"] =>
      (<A>(keys: ReadonlyArray<string>, then: Effect.Effect<A>) =>
        callThen("remove", (t: Effect.Effect<A>) => inner(keys, t), then)) as Tier.Service["removeThen"]

    const guarded: GuardedTier = {
      name: tier.name,
      callTimeout: selfBounded ? tier.callTimeout : timeout,
      inner: tier,
      selfBounded,
      record: breaker.record,
      probeNow: breaker.probeNow,
      state: breaker.state,
      rejected: breaker.rejected,
      get: (key) => call("get", tier.get(key)),
      getMany: (keys) => call("getMany", tier.getMany(keys)),
      set: (key, entry) => call("set", tier.set(key, entry)),
      setMany: (entries) => call("setMany", tier.setMany(entries)),
      remove: (keys) => call("remove", tier.remove(keys)),
      removeMatching: (glob) => call("removeMatching", tier.removeMatching(glob)),
      clear: call("clear", tier.clear),
      ...(tier.writeIfNewer === undefined
        ? {}
        : { writeIfNewer: (changes) => call("writeIfNewer", tier.writeIfNewer!(changes)) }),
      ...(tier.ready === undefined ? {} : { ready: tier.ready }),
      ...(tier.setThen === undefined || !selfBounded
        ? {}
        : { sequence: tier.sequence, setThen: setThen(tier.setThen) }),
      ...(tier.removeThen === undefined || !selfBounded
        ? {}
        : { sequence: tier.sequence, removeThen: removeThen(tier.removeThen) }),
      health: Effect.suspend(() => {
        const withState = (h: TierHealth): TierHealth =>
          breaker.state() === "closed"
            ? h
            : { name: h.name, healthy: false, detail: `breaker ${breaker.state()}; ${h.detail ?? ""}` }
        // Open past its window (or its tier reported ready again): the check is the probe a
        // call would be, so that a tier that answers again is not reported down until traffic
        // comes (an unhealthy answer opens the breaker again, as a failed call does).
        if (breaker.mayProbe()) {
          const probe = breaker.run(
            Effect.flatMap(tier.health, (h) => (h.healthy ? Effect.succeed(h) : Effect.fail(h))),
            (): TierHealth => ({ name: tier.name, healthy: false, detail: "probe under way" }),
            (): TierHealth => ({ name: tier.name, healthy: false, detail: "health check timed out" })
          )
          return Effect.map(Effect.merge(probe), withState)
        }
        // On the breaker's clock (the cache's), not the caller's, as every tier timeout.
        return Effect.map(
          Effect.withClock(
            tier.health.pipe(
              Effect.timeoutTo({
                duration: timeout,
                onSuccess: (h): TierHealth => h,
                onTimeout: (): TierHealth => ({
                  name: tier.name,
                  healthy: false,
                  detail: "health check timed out"
                })
              })
            ),
            clock
          ),
          withState
        )
      })
    }
    return guarded
  })
