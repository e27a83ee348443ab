/**
 * Tier timeouts and a circuit breaker. Every call to a guarded tier is bounded by a timeout;
 * after `failureThreshold` consecutive failures the breaker opens for `openFor`, during which
 * calls fail at once without reaching the tier (TieredCache then reads from L1 and the
 * computation and writes L1 only); then one probe call is let through (half-open): success
 * closes the breaker, failure opens it again. State changes are logged.
 *
 * @since 0.1.0
 */
import { Duration, Effect } from "effect"
import { TierError } from "./CacheError.js"
import type { Tier, TierHealth } from "./Tier.js"

/**
 * The breaker's state.
 *
 * @category models
 * @since 0.1.0
 */
export type State = "closed" | "open" | "half-open"

/**
 * Options of a guard.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The longest a tier call may take (default 1 second). */
  readonly timeout?: Duration.DurationInput | undefined
  /** Consecutive failures that open the breaker (default 5). */
  readonly failureThreshold?: number | undefined
  /** How long the breaker stays open before a probe (default 10 seconds). */
  readonly openFor?: Duration.DurationInput | undefined
}

/**
 * A guarded tier: the Tier plus its breaker's state.
 *
 * @category models
 * @since 0.1.0
 */
export interface GuardedTier extends Tier.Service {
  /** The breaker's state now. */
  readonly state: () => State
  /** Calls refused because the breaker was open. */
  readonly rejected: () => number
  /** The tier guarded. */
  readonly inner: Tier.Service
  /** Whether the inner tier bounds its own calls (no timer is added). */
  readonly selfBounded: boolean
  /**
   * Records the outcome of a call made on `inner` directly while the breaker was closed (a
   * caller's shortcut on a hot path); a failure may open the breaker: the answer logs that.
   */
  readonly record: (success: boolean) => Effect.Effect<void>
}

/**
 * The reason of the TierError a call gets while the breaker is open.
 *
 * @category constants
 * @since 0.1.0
 */
export const OPEN_REASON = "circuit breaker open"

/**
 * Whether an error is a breaker's refusal (not a failure of the tier itself).
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection = (error: TierError): boolean => error.reason === OPEN_REASON

/**
 * A circuit breaker on the Effect Clock, for any kind of call.
 *
 * @category models
 * @since 0.1.0
 */
export interface Breaker {
  /** The longest a call run through it may take. */
  readonly timeout: Duration.Duration
  /** Its state now. */
  readonly state: () => State
  /** Calls refused because it was open. */
  readonly rejected: () => number
  /** Records the outcome of a call made without `run` while closed; a failure may open it (the answer logs that). */
  readonly record: (success: boolean) => Effect.Effect<void>
  /**
   * Runs a call through the breaker: refused at once with `onOpen()` while open (one probe is
   * let through after `openFor`), bounded by the timeout with `onTimeout()` unless `bounded`
   * says the call bounds itself.
   */
  readonly run: <A, E>(
    effect: Effect.Effect<A, E>,
    onOpen: () => E,
    onTimeout: () => E,
    bounded?: boolean
  ) => Effect.Effect<A, E>
}

/**
 * Makes a breaker named `name` (for its logs).
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (name: string, options: Options = {}): Effect.Effect<Breaker> =>
  Effect.gen(function* () {
    const clock = yield* Effect.clock
    const timeout = Duration.decode(options.timeout ?? "1 second")
    const threshold = options.failureThreshold ?? 5
    const openForMs = Duration.toMillis(Duration.decode(options.openFor ?? "10 seconds"))
    let state: State = "closed"
    let failures = 0
    let openUntil = 0
    let probing = false
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
        openUntil = clock.unsafeCurrentTimeMillis() + openForMs
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
        let probe = false
        if (state === "open") {
          if (clock.unsafeCurrentTimeMillis() < openUntil || probing) {
            rejected++
            return Effect.fail(onOpen())
          }
          probe = true
        } else if (state === "half-open") {
          rejected++
          return Effect.fail(onOpen())
        }
        const limited = bounded ? effect : Effect.timeoutFail(effect, { duration: timeout, onTimeout })
        const settled = Effect.matchEffect(limited, {
          onFailure: (error) => Effect.zipRight(record(false), Effect.fail(error)),
          onSuccess: (value) => Effect.as(record(true), value)
        })
        if (!probe) return settled
        probing = true
        // An interrupted probe proves nothing: back to open, and the next call probes again.
        return Effect.zipRight(transition("half-open", "probing"), settled).pipe(
          Effect.onInterrupt(() =>
            Effect.sync(() => {
              probing = false
              state = "open"
              openUntil = 0
            })
          )
        )
      })

    return { timeout, state: () => state, rejected: () => rejected, record, run }
  })

/**
 * Guards a tier with a timeout per call and a circuit breaker, on the Effect Clock. A tier
 * whose own `callTimeout` is not longer than the guard's timeout is trusted to bound itself.
 *
 * @category constructors
 * @since 0.1.0
 */
export const guard = (tier: Tier.Service, options: Options = {}): Effect.Effect<GuardedTier> =>
  Effect.gen(function* () {
    const breaker = yield* make(tier.name, options)
    const timeout = breaker.timeout
    const timeoutMs = Duration.toMillis(timeout)
    // A tier that bounds its own calls at least as tightly needs no timer here (a timer forks a
    // fiber per call, which costs more than a Redis round trip).
    const selfBounded =
      tier.callTimeout !== undefined && Duration.lessThanOrEqualTo(tier.callTimeout, timeout)
    const call = <A>(operation: string, effect: Effect.Effect<A, TierError>): Effect.Effect<A, TierError> =>
      breaker.run(
        effect,
        () => new TierError({ tier: tier.name, operation, reason: OPEN_REASON }),
        () => new TierError({ tier: tier.name, operation, reason: `timed out after ${timeoutMs} ms` }),
        selfBounded
      )

    const guarded: GuardedTier = {
      name: tier.name,
      callTimeout: selfBounded ? tier.callTimeout : timeout,
      inner: tier,
      selfBounded,
      record: breaker.record,
      state: breaker.state,
      rejected: breaker.rejected,
      get: (key) => call("get", tier.get(key)),
      getMany: (keys) => call("getMany", tier.getMany(keys)),
      set: (key, entry) => call("set", tier.set(key, entry)),
      setMany: (entries) => call("setMany", tier.setMany(entries)),
      remove: (keys) => call("remove", tier.remove(keys)),
      removeMatching: (glob) => call("removeMatching", tier.removeMatching(glob)),
      clear: call("clear", tier.clear),
      health: Effect.map(
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
        (h): TierHealth =>
          breaker.state() === "closed"
            ? h
            : { name: h.name, healthy: false, detail: `breaker ${breaker.state()}; ${h.detail ?? ""}` }
      )
    }
    return guarded
  })
