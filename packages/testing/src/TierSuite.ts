/**
 * TieredCache's shared semantics suite, runnable against any tier: authors of a tier (a
 * Memcached, DynamoDB or SQL tier...) run the suite that every tiercache tier passes, with
 * their tier as the L2 under two cache instances (MemoryTier L1s, an in-memory bus).
 *
 * ```ts
 * // my-tier.test.ts, run by vitest
 * import * as TierSuite from "@tiercache/testing/TierSuite"
 *
 * TierSuite.run("MyTier", { tier: MyTier.layer({ prefix: "suite:" }), live: true })
 * ```
 *
 * This module is a subpath of its own (`@tiercache/testing/TierSuite`) because it registers
 * tests: it imports `@effect/vitest` (and so vitest), optional peer dependencies of
 * `@tiercache/testing` that only this subpath needs. Import it from test files run by vitest
 * only; the package's main entry never loads vitest.
 *
 * @since 0.1.0
 */
import { layer } from "@effect/vitest"
import { Tier } from "@tiercache/core"
import { Context as Ctx, Effect, Layer, type Scope } from "effect"
import { register } from "./internal/semanticsTests.js"
import type { Context } from "./internal/suiteContext.js"
import * as MultiInstance from "./MultiInstance.js"
import * as TestBus from "./TestBus.js"

/**
 * What the suite runs against.
 *
 * @category models
 * @since 0.1.0
 */
export interface Target<R> {
  /**
   * The tier under test, built afresh for every test (in the test's scope): a layer providing
   * `L2` (as `RedisTier.layer()` does), or an effect making the tier (as `RedisTier.make()`).
   * Keys are fresh per test, so a tier may share one store (one server) across tests.
   */
  readonly tier: Layer.Layer<Tier.L2, unknown, R> | Effect.Effect<Tier.Tier.Service, unknown, Scope.Scope | R>
  /** What the tier needs, built once for the whole suite (a server, a connection...). */
  readonly env?: Layer.Layer<R, unknown> | undefined
  /**
   * Run on the real clock, for tiers that expire entries by themselves (like Redis), which the
   * TestClock cannot drive. Tests that need exact control of time then run only when false.
   * Default false: the suite runs on the TestClock, and the tier must read time from the Effect
   * Clock.
   */
  readonly live?: boolean | undefined
  /** Per-test timeout (default 30 seconds). */
  readonly timeout?: number | undefined
}

/**
 * Registers the suite (a vitest `describe` block named `TieredCache semantics on <name>`):
 * reads, the tier giving back each time of an entry as written (expiry, end of grace,
 * creation), promotion with the entry's remaining lifetime, writes to every tier, single-flight
 * computation (1,000 concurrent callers), failures and interruption, Schema-typed reads with
 * bad data planted in the tier, exact statistics, the tier called directly with bad
 * arguments (as from plain JavaScript: a TierError each, nothing written; see
 * `Tier.withInputChecks`), the tier's own obligations called directly (`remove` removes the
 * keys given and no other, `removeMatching` the keys its glob matches, answering how many,
 * `clear` every key, `getMany` one answer per key in order, an entry returned through its grace
 * window until its `staleUntil` and not after, `health` healthy under the tier's name), and, for a
 * tier that has them, `writeIfNewer` (each change applied unless the key holds an entry created
 * after it), `setThen` (written as `set` writes, `then` run once), `setNow` (a write started at once:
 * written as `set` writes, answered once after it returns; bad arguments start nothing),
 * `removeThen` and `removeNow` (removed as `remove` removes; `then` run once, `done` called once
 * after it returns).
 *
 * @category suites
 * @since 0.1.0
 */
export const run = <R>(name: string, target: Target<R>): void => {
  const live = target.live ?? false
  const env = (target.env ?? Layer.empty) as Layer.Layer<R, unknown>
  const given = target.tier
  const tier: Effect.Effect<Tier.Tier.Service, unknown, Scope.Scope | R> = Layer.isLayer(given)
    ? Effect.map(Layer.build(Layer.fresh(given as Layer.Layer<Tier.L2, unknown, R>)), Ctx.get(Tier.L2))
    : (given as Effect.Effect<Tier.Tier.Service, unknown, Scope.Scope | R>)
  const instances: Context<R>["instances"] = (n = 2, cache) =>
    Effect.gen(function* () {
      const l2 = yield* tier
      const hub = yield* TestBus.makeHub
      const { caches } = yield* MultiInstance.make(n, {
        cache,
        shared: Layer.merge(Layer.succeed(Tier.L2, l2), TestBus.layer(hub))
      })
      const settle = MultiInstance.settle(caches, {
        hub,
        pause: live ? Effect.sleep("1 millis") : Effect.yieldNow()
      })
      return { caches, l2, hub, settle }
    })
  layer(env, { excludeTestServices: live as false, timeout: target.timeout ?? 30_000 })(
    `TieredCache semantics on ${name}`,
    (it) => register(it, { instances, live })
  )
}
