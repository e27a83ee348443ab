/**
 * Instances whose clocks disagree, on a real Redis and bus: B's clock runs 10 s ahead. C reads a
 * key B wrote (its L1 copy dated by B's clock); more than a second later, nobody else writing, A
 * updates the key. Redis holds A's value, and C must answer it: not keep B's copy because its
 * date is later (README Semantics: a copy's date, from another clock, does not tell which write
 * landed last).
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Clock, Context, Effect, Layer, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually } from "./utils.js"

/** Effect's clock, `aheadMs` ahead (its timers as the real clock's). */
const aheadBy = (aheadMs: number): Clock.Clock => {
  const real = Clock.make()
  return {
    [Clock.ClockTypeId]: Clock.ClockTypeId,
    unsafeCurrentTimeMillis: () => real.unsafeCurrentTimeMillis() + aheadMs,
    currentTimeMillis: Effect.sync(() => real.unsafeCurrentTimeMillis() + aheadMs),
    unsafeCurrentTimeNanos: () => real.unsafeCurrentTimeNanos() + BigInt(aheadMs) * 1_000_000n,
    currentTimeNanos: Effect.sync(() => real.unsafeCurrentTimeNanos() + BigInt(aheadMs) * 1_000_000n),
    sleep: (duration) => real.sleep(duration)
  }
}

/** One instance as the README sets it up (MemoryTier, RedisTier, the Redis bus), on `clock`. */
const instance = (id: string, prefix: string, clock?: Clock.Clock) =>
  Effect.gen(function* () {
    const build = Layer.build(
      TieredCache.layer({ instanceId: id }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: 1000 })),
        Layer.provide(Layer.merge(RedisTier.layer({ prefix }), RedisInvalidationBus.layer())),
        Layer.provide(connectionLayer())
      )
    )
    const context = yield* clock === undefined ? build : Effect.withClock(build, clock)
    return Context.get(context, TieredCache.TieredCache)
  })

describe("instances whose clocks disagree", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("a copy read from Redis, dated by a clock 10 s ahead, gives way to a later update", () =>
      Effect.gen(function* () {
        const prefix = "skew:"
        const a = yield* instance("a", prefix)
        const b = yield* instance("b", prefix, aheadBy(10_000))
        const c = yield* instance("c", prefix)
        yield* b.set("k", "from b", { ttl: "10 minutes" })
        // C reads it from Redis once B's Remove has come and gone: its copy is dated 10 s ahead.
        yield* Effect.sleep("100 millis")
        expect(yield* c.get("k")).toEqual(Option.some("from b"))
        // Past the window of that Remove (lateUpdates.ts WINDOW_MS), A updates the key.
        yield* Effect.sleep("1100 millis")
        yield* a.update("k", "from a", { ttl: "10 minutes" })
        yield* eventually(
          Effect.filterOrFail(
            c.invalidationStats,
            (s) => s.messagesApplied >= 2,
            () => new Error("not yet")
          )
        )
        expect(yield* c.get("k")).toEqual(Option.some("from a"))
        expect(yield* b.get("k")).toEqual(Option.some("from a"))
      })
    )
  })
})
