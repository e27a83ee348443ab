/**
 * A getOrCompute that joins a computation under way for its key gets that computation's value
 * as it is stored: with the lifetime and tags of the caller that started it. The joiner's own
 * `ttl`, `grace` and `tags` are not applied (its timeouts and its schema are its own).
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Deferred, Effect, Fiber, Option, TestClock } from "effect"

describe("a caller joining a computation under way", () => {
  it.scoped("gets its value stored with the starter's ttl, grace and tags, not its own", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust(10_000)
      const l2 = yield* TestTier.make()
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 10 })),
        Effect.provideService(Tier.L2, l2)
      )
      const gate = yield* Deferred.make<void>()
      let computed = 0
      const starter = yield* Effect.fork(
        cache.getOrCompute(
          "k",
          Effect.zipRight(
            Deferred.await(gate),
            Effect.sync(() => `v${++computed}`)
          ),
          { tags: ["t1"], ttl: "1 minute" }
        )
      )
      yield* TestClock.adjust(1)
      const joiner = yield* Effect.fork(
        cache.getOrCompute("k", Effect.succeed("joiner's own"), {
          tags: ["t2"],
          ttl: "1 hour",
          grace: "1 hour"
        })
      )
      yield* TestClock.adjust(1)
      yield* Deferred.succeed(gate, undefined)
      expect([yield* Fiber.join(starter), yield* Fiber.join(joiner)]).toEqual(["v1", "v1"])
      expect(computed).toBe(1)
      // Stored as the starter asked: tagged t1, fresh for a minute from its store (no grace),
      // dated from the computation's start.
      const stored = Option.getOrThrow(yield* l2.get("k"))
      expect(stored).toEqual({
        value: "v1",
        tags: ["t1"],
        createdAt: 10_000,
        expiresAt: 70_002,
        staleUntil: 70_002
      })
      // The joiner's tag does not reach it; the starter's does.
      yield* cache.invalidateTag("t2")
      expect(yield* cache.get("k")).toEqual(Option.some("v1"))
      yield* cache.invalidateTag("t1")
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )
})
