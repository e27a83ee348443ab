/**
 * Tier timeouts and a circuit breaker. Every call to a guarded tier is bounded by a timeout;
 * after `failureThreshold` consecutive failures the breaker opens for `openFor`, during which
 * calls fail at once without reaching the tier (TieredCache then reads from L1 and the
 * computation and writes L1 only); then one probe call is let through (half-open): success
 * closes the breaker, failure opens it again. State changes are logged.
 *
 * @since 0.1.0
 */
import { type Duration, Effect } from "effect"
import type { CacheConfigError, TierError } from "./CacheError.js"
import * as internal from "./internal/breaker.js"
import type { Tier } from "./Tier.js"

/**
 * The breaker's state.
 *
 * @category models
 * @since 0.1.0
 */
export type State = "closed" | "open" | "half-open"

/**
 * Options of a guard, a breaker and the cache's `breaker`. Only an absent (`undefined`) option
 * takes its default: `null` from plain JavaScript, or a value of the wrong type or out of range,
 * fails with a `CacheConfigError` naming it.
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
}

/**
 * The reason of the TierError a call gets while the breaker is open.
 *
 * @category constants
 * @since 0.1.0
 */
export const OPEN_REASON: typeof internal.OPEN_REASON = internal.OPEN_REASON

/**
 * Whether an error is a breaker's refusal (not a failure of the tier itself).
 *
 * @category guards
 * @since 0.1.0
 */
export const isRejection: (error: TierError) => boolean = internal.isRejection

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
 * Makes a breaker named `name` (for its logs). Bad options (durations that are not positive, a
 * failure threshold that is not a positive integer, options that are not an object) fail with a
 * `CacheConfigError` naming the option.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (name: string, options?: Options): Effect.Effect<Breaker, CacheConfigError> =>
  Effect.suspend(() => {
    const bad = internal.optionsError(options, "")
    return bad ? Effect.fail(bad) : internal.make(name, options)
  })

/**
 * Guards a tier with a timeout per call and a circuit breaker, on the Effect Clock. A tier
 * whose own `callTimeout` is not longer than the guard's timeout is trusted to bound itself.
 * Bad options fail with a `CacheConfigError`, as `make`'s do.
 *
 * @category constructors
 * @since 0.1.0
 */
export const guard = (tier: Tier.Service, options?: Options): Effect.Effect<GuardedTier, CacheConfigError> =>
  Effect.suspend(() => {
    const bad = internal.optionsError(options, "")
    return bad ? Effect.fail(bad) : internal.guard(tier, options)
  })
