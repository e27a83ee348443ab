/**
 * A pattern invalidation or a clear racing a `set` of a key it covers: whatever order they land
 * in, afterwards L1 and the lower tiers agree (a lower tier's removal, a SCAN or an index walk,
 * may reach the key after the set wrote it there; L1 must not keep answering that value).
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { Effect, Fiber, Option, TestClock } from "effect"

const build = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 100 })
  const stored = yield* TestTier.make()
  const l2 = yield* ChaosTier.wrap(stored)
  const cache = yield* TieredCache.make({ breaker: false }).pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, l2)
  )
  return { cache, l1, l2, stored }
})

const storedValue = (found: Option.Option<{ readonly value: unknown }>) => Option.map(found, (e) => e.value)

describe("a removal racing a write of a key it covers", () => {
  for (const kind of ["invalidatePattern", "clear"] as const) {
    it.scoped(`${kind} || set: L1 answers what the lower tier holds`, () =>
      Effect.gen(function* () {
        const { cache, l1, l2, stored } = yield* build
        yield* cache.set("user:1", 1)
        // The lower tier's removal is slow (a SCAN over many keys, a store walking its index).
        yield* l2.delay([kind === "clear" ? "clear" : "removeMatching"], "100 millis")
        const removal = yield* Effect.fork(kind === "clear" ? cache.clear : cache.invalidatePattern("user:*"))
        yield* Effect.yieldNow()
        // A write made meanwhile lands in both tiers before the removal reaches the lower one.
        yield* cache.set("user:1", 2)
        yield* TestClock.adjust("100 millis")
        yield* Fiber.join(removal)
        const lower = storedValue(yield* stored.get("user:1"))
        // L1 holds what the lower tier holds, or nothing (its next read promotes that).
        const inL1 = storedValue(yield* l1.get("user:1"))
        if (Option.isSome(inL1)) expect(inL1, "L1").toEqual(lower)
        expect(yield* cache.get("user:1")).toEqual(lower)
      })
    )
  }
})
