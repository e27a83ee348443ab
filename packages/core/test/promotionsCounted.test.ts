/**
 * `stats.promotions` counts "entries copied into the tiers above the one that had them"
 * (CacheStats), and MemoryTier's L1 counts one only once it holds the entry. A promotion whose
 * every write failed copied nothing: it was counted all the same when L1 is not a MemoryTier, or
 * the entry came from a tier below L2.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Clock, Effect, Option } from "effect"

describe("a promotion whose every write failed", () => {
  it.scoped("into an L1 that is not a MemoryTier is not counted; one that lands is", () =>
    Effect.gen(function* () {
      const l1 = yield* TestTier.make({ name: "l1" })
      const l2 = yield* TestTier.make({ name: "l2" })
      const cache = yield* TieredCache.make({ breaker: false }).pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      const now = yield* Clock.currentTimeMillis
      yield* l2.plant("a", Entry.make({ value: 1, now, ttlMs: 60_000 }))
      yield* l2.plant("b", Entry.make({ value: 2, now, ttlMs: 60_000 }))
      yield* l1.failOn(["set"])
      expect(yield* cache.get("a")).toEqual(Option.some(1))
      let stats = yield* cache.stats
      expect([stats.l2Hits, stats.tierErrors.l1, stats.promotions]).toEqual([1, 1, 0])
      yield* l1.failOn("none")
      expect(yield* cache.get("b")).toEqual(Option.some(2))
      stats = yield* cache.stats
      expect([stats.l2Hits, stats.promotions]).toEqual([2, 1])
    })
  )

  it.scoped("from L3, refused by a MemoryTier L1 and failed by L2, is not counted; held by L2, it is", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make({ name: "l2" })
      const l3 = yield* TestTier.make({ name: "l3" })
      const cache = yield* TieredCache.make({ breaker: false }).pipe(
        Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 10, maxBytes: 64 })),
        Effect.provideService(Tier.L2, l2),
        Effect.provideService(Tier.Tiers, [l3])
      )
      const now = yield* Clock.currentTimeMillis
      const big = "x".repeat(1000)
      yield* l3.plant("big", Entry.make({ value: big, now, ttlMs: 60_000 }))
      yield* l2.failOn(["set"])
      expect(yield* cache.get("big")).toEqual(Option.some(big))
      let stats = yield* cache.stats
      expect([stats.tierHits[1], stats.tierErrors.l2, stats.promotions]).toEqual([1, 1, 0])
      // L1 refuses it again, L2 holds it: copied, counted.
      yield* l2.failOn("none")
      yield* l3.plant("big2", Entry.make({ value: big, now, ttlMs: 60_000 }))
      expect(yield* cache.get("big2")).toEqual(Option.some(big))
      stats = yield* cache.stats
      expect([stats.tierHits[1], stats.promotions]).toEqual([2, 1])
    })
  )
})
