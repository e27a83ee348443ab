/**
 * `stats.decodeErrors` counts "stored copies that did not decode under the requested schema,
 * one per tier's copy": a read finding the same undecodable value in L1 and in L2 counts two
 * (CacheStats). With an L1 that is not a MemoryTier, getOrComputeTyped read L1 twice (once to
 * look for a hit, once more in its computation's flight) and counted its copy twice.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Clock, Effect, Schema } from "effect"

describe("a getOrComputeTyped meeting an undecodable copy in L1 and in L2", () => {
  for (const generic of [true, false]) {
    it.scoped(`counts two decode errors and one miss (L1 ${generic ? "a TestTier" : "a MemoryTier"})`, () =>
      Effect.gen(function* () {
        const l1: Tier.Tier.Service = generic
          ? yield* TestTier.make({ name: "l1" })
          : yield* MemoryTier.make({ maxEntries: 10 })
        const l2 = yield* TestTier.make({ name: "l2" })
        const cache = yield* TieredCache.make({ breaker: false }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2)
        )
        const now = yield* Clock.currentTimeMillis
        const entry = Entry.make({ value: "not a number", now, ttlMs: 60_000 })
        yield* l1.set("k", entry)
        yield* l2.plant("k", entry)
        expect(yield* cache.getOrComputeTyped("k", Schema.Number, Effect.succeed(1))).toBe(1)
        const stats = yield* cache.stats
        expect([stats.decodeErrors, stats.misses, stats.requests, stats.computations]).toEqual([2, 1, 1, 1])
      })
    )
  }
})
