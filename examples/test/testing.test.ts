/**
 * The README's "Testing your code" layer (examples/testing.ts), used as the README says: in a
 * test of @effect/vitest, with entries expiring as `TestClock.adjust` moves the clock.
 */
import { describe, expect, it } from "@effect/vitest"
import { TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Option, TestClock } from "effect"
import { TestCacheLive, testCacheOn } from "../testing.js"

describe("README: Testing your code", () => {
  it.effect("a cache of TestCacheLive computes once, then expires its entries on the TestClock", () =>
    Effect.gen(function* () {
      const cache = yield* TieredCache.TieredCache
      let computed = 0
      const load = Effect.sync(() => ++computed)
      expect(yield* cache.getOrCompute("k", load, { ttl: "1 minute" })).toBe(1)
      expect(yield* cache.getOrCompute("k", load, { ttl: "1 minute" })).toBe(1)
      yield* TestClock.adjust("59999 millis")
      expect(yield* cache.get("k")).toEqual(Option.some(1))
      yield* TestClock.adjust("1 millis")
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* cache.getOrCompute("k", load, { ttl: "1 minute" })).toBe(2)
      const stats = yield* cache.stats
      expect([stats.l1Hits, stats.misses]).toEqual([2, 3])
    }).pipe(Effect.provide(TestCacheLive))
  )

  // TestTier.layer() gives no handle on failOn: testCacheOn takes a TestTier the test made.
  it.effect("a cache on a TestTier of the test's own: failOn makes its L2 fail, the cache goes on", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      yield* Effect.gen(function* () {
        const cache = yield* TieredCache.TieredCache
        yield* l2.failOn(["set"])
        yield* cache.set("k", 1)
        expect((yield* l2.snapshot).has("k")).toBe(false)
        expect((yield* cache.stats).tierErrors).toEqual({ test: 1 })
        yield* l2.failOn("none")
        yield* cache.set("k", 2)
        expect([...(yield* l2.snapshot).keys()]).toEqual(["k"])
        expect(yield* cache.get("k")).toEqual(Option.some(2))
      }).pipe(Effect.provide(testCacheOn(l2)))
    })
  )
})
