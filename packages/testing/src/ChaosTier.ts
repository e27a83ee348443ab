/**
 * A tier wrapper for fault tests: it makes any tier fail, slow down (on the Effect Clock, so
 * `TestClock` drives it), lose data or fail at random, on chosen operations, until healed, and
 * counts every call. The wrapped tier's `writeIfNewer`, when it has one, is kept and steered as
 * `set`.
 *
 * @since 0.1.0
 */
import { CacheError, Tier } from "@tiercache/core"
import { Context, Duration, Effect, Layer, Option } from "effect"
import * as ChaosControls from "./internal/chaosControls.js"
import { nameOf } from "./internal/options.js"
import * as TestTier from "./TestTier.js"

/**
 * The operations of a tier that chaos can be injected into.
 *
 * @category models
 * @since 0.1.0
 */
export type Operation =
  | "get"
  | "getMany"
  | "set"
  | "setMany"
  | "remove"
  | "removeMatching"
  | "clear"
  | "health"

/**
 * Every operation, in declaration order.
 *
 * @category constants
 * @since 0.1.0
 */
export const operations: ReadonlyArray<Operation> = [
  "get",
  "getMany",
  "set",
  "setMany",
  "remove",
  "removeMatching",
  "clear",
  "health"
]

/**
 * Which operations a control applies to: one, several, or `"all"`.
 *
 * @category models
 * @since 0.1.0
 */
export type Operations = Operation | ReadonlyArray<Operation> | "all"

/**
 * Options of {@link ChaosTier.Service.fail}.
 *
 * @category options
 * @since 0.1.0
 */
export interface FailOptions {
  /** Added to the error's reason, after `failure injected by ChaosTier`. */
  readonly reason?: string | undefined
  /** Fail only the next `times` calls of each operation, then work again (default: until healed). */
  readonly times?: number | undefined
}

/**
 * Options of {@link ChaosTier.Service.failRate}.
 *
 * @category options
 * @since 0.1.0
 */
export interface FailRateOptions {
  /**
   * Draw from a generator seeded with this value, so that the same seed fails the same calls
   * (default: the fiber's `Random` service).
   */
  readonly seed?: unknown
}

/**
 * Options of a chaos tier. Only an absent (`undefined`) option takes its default: `null` from
 * plain JavaScript, or a value of the wrong type, is a defect (a mistake in the test: the chaos
 * tier promises no failure) carrying a `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The tier's name (default: the wrapped tier's, or `test` for {@link layer}). */
  readonly name?: string | undefined
}

/**
 * A tier with chaos controls, reachable from tests built with {@link layer}.
 *
 * @category tags
 * @since 0.1.0
 */
export class ChaosTier extends Context.Tag("@tiercache/testing/ChaosTier")<ChaosTier, ChaosTier.Service>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace ChaosTier {
  /**
   * A Tier plus its controls. Controls add up per operation (a delayed operation can also be
   * failing); when several apply, the call sleeps for its delay, then `fail` wins over
   * `failRate`, which wins over `drop`. The controls are read when the delay ends.
   *
   * @since 0.1.0
   */
  export interface Service extends Tier.Tier.Service {
    /** The tier underneath. */
    readonly wrapped: Tier.Tier.Service
    /**
     * Makes the operations fail with a TierError whose reason says it was injected; `health`
     * then answers `healthy: false`. Fails with CacheConfigError when `times` is not a
     * positive integer.
     */
    readonly fail: (
      operations: Operations,
      options?: FailOptions
    ) => Effect.Effect<void, CacheError.CacheConfigError>
    /** Makes the operations sleep `duration` on the Effect Clock before running (0: no delay). */
    readonly delay: (operations: Operations, duration: Duration.DurationInput) => Effect.Effect<void>
    /**
     * Makes the operations lose data silently: reads miss, writes and removals succeed without
     * doing anything, `removeMatching` answers 0; `health` answers what the wrapped tier says.
     */
    readonly drop: (operations: Operations) => Effect.Effect<void>
    /**
     * Makes each call of the operations fail with the given probability, in [0, 1] (0: never
     * again). Fails with CacheConfigError when the probability is outside [0, 1].
     */
    readonly failRate: (
      operations: Operations,
      probability: number,
      options?: FailRateOptions
    ) => Effect.Effect<void, CacheError.CacheConfigError>
    /** Removes every control: the tier behaves as the wrapped one again (counts are kept). */
    readonly heal: Effect.Effect<void>
    /** How many times each operation was called, injected failures, delays and drops included. */
    readonly calls: Effect.Effect<Readonly<Record<Operation, number>>>
    /** How many calls of each operation failed (or reported unhealthy) by injection. */
    readonly injected: Effect.Effect<Readonly<Record<Operation, number>>>
  }
}

/**
 * Wraps a tier. It behaves as the wrapped tier until a control says otherwise.
 *
 * @category constructors
 * @since 0.1.0
 */
export const wrap = (tier: Tier.Tier.Service, options: Options = {}): Effect.Effect<ChaosTier.Service> =>
  Effect.map(nameOf(options, tier.name), (name) => {
    const { state, calls, decide, controls } = ChaosControls.make(operations)

    /** Counts the call, sleeps its delay, then fails, drops or runs it. */
    const run = <A>(
      operation: Exclude<Operation, "health">,
      body: Effect.Effect<A, CacheError.TierError>,
      dropped: () => A
    ): Effect.Effect<A, CacheError.TierError> =>
      Effect.suspend(() => {
        calls[operation]++
        const delay = state[operation].delay
        const go = Effect.flatMap(decide(operation), (reason) => {
          if (reason !== undefined) {
            return Effect.fail(new CacheError.TierError({ tier: name, operation, reason }))
          }
          return state[operation].dropping ? Effect.sync(dropped) : body
        })
        return Duration.isZero(delay) ? go : Effect.zipRight(Effect.sleep(delay), go)
      })

    const health: Effect.Effect<Tier.TierHealth> = Effect.suspend(() => {
      calls.health++
      const delay = state.health.delay
      const go = Effect.flatMap(decide("health"), (reason) => {
        if (reason !== undefined) return Effect.succeed({ name, healthy: false, detail: reason })
        const failingOps = operations.filter((op) => state[op].failing !== undefined)
        if (failingOps.length > 0) {
          return Effect.succeed({
            name,
            healthy: false,
            detail: `${ChaosControls.injectedReason} on ${failingOps.join(", ")}`
          })
        }
        return Effect.map(tier.health, (h) => ({ ...h, name }))
      })
      return Duration.isZero(delay) ? go : Effect.zipRight(Effect.sleep(delay), go)
    })

    const chaos: ChaosTier.Service = {
      name,
      wrapped: tier,
      get: (key) => run("get", tier.get(key), Option.none),
      getMany: (keys) => run("getMany", tier.getMany(keys), () => keys.map(() => Option.none())),
      set: (key, entry) => run("set", tier.set(key, entry), () => undefined),
      setMany: (entries) => run("setMany", tier.setMany(entries), () => undefined),
      remove: (keys) => run("remove", tier.remove(keys), () => undefined),
      removeMatching: (glob) => run("removeMatching", tier.removeMatching(glob), () => 0),
      clear: run("clear", tier.clear, () => undefined),
      health,
      // The wrapped tier's conditional write (recovery's replay, a tag's time), steered as a set.
      ...(tier.writeIfNewer === undefined
        ? {}
        : {
            writeIfNewer: (changes: ReadonlyArray<Tier.Tier.Change>) =>
              run("set", tier.writeIfNewer!(changes), () => changes.map(() => true))
          }),
      ...controls
    }
    // Arguments from plain JavaScript are checked before any control applies (a dropped call
    // too), as the wrapped tier checks them.
    return Tier.withInputChecks(chaos)
  })

/**
 * A fresh {@link TestTier} wrapped in chaos, as the cache's L2 and as the {@link ChaosTier}
 * tag, so that a test can `yield* ChaosTier` to steer the L2 its cache uses.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<ChaosTier | Tier.L2> =>
  Layer.effectContext(
    Effect.gen(function* () {
      const chaos = yield* wrap(yield* TestTier.make(options))
      return Context.make(ChaosTier, chaos).pipe(Context.add(Tier.L2, chaos))
    })
  )
