/**
 * README: an invalidation waits for the computed values still being written below L1 that it
 * covers, so that once it has returned no tier holds the value. `invalidate` had tests of it;
 * `invalidateMany`, whose list is checked against each store under way, had none.
 */
import { describe, expect, it } from "@effect/vitest"
import { MultiInstance } from "@tiercache/testing"
import { Effect, Fiber, Option, TestClock } from "effect"
import { slowWrites } from "./slowWrites.js"

describe("invalidateMany and the computed values still being written below L1", () => {
  for (const keys of [["k", "other"], ["other", "k", "k"], ["k"]]) {
    it.scoped(
      `invalidateMany(${JSON.stringify(keys)}): once it returns, no tier holds the computed value`,
      () =>
        Effect.gen(function* () {
          // The L2 write takes 500 ms, within the invalidation's bound (the slowest call: 1 s).
          const { cache, store } = yield* slowWrites("500 millis", { breaker: false })
          expect(yield* cache.getOrCompute("k", Effect.succeed("v"))).toBe("v")
          expect(yield* cache.getOrCompute("unrelated", Effect.succeed("u"))).toBe("u")
          const invalidation = yield* Effect.fork(cache.invalidateMany(keys))
          for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
          // Still waiting for the computed write of k.
          expect(invalidation.unsafePoll()).toBeNull()
          yield* TestClock.adjust("500 millis")
          yield* Fiber.join(invalidation)
          expect(yield* store.get("k")).toEqual(Option.none())
          expect(yield* cache.get("k")).toEqual(Option.none())
          // A store the list does not name is left to land.
          expect(Option.map(yield* store.get("unrelated"), (e) => e.value)).toEqual(Option.some("u"))
          yield* MultiInstance.settle([cache])
          expect(yield* store.get("k")).toEqual(Option.none())
        })
    )
  }
})
