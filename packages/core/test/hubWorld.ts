/**
 * The world of the input tests (input.test.ts, ttlFloor.test.ts, typedRoundTrip.test.ts): one
 * cache over a MemoryTier L1 and a TestTier L2, with a bus hub, so that a test can see what was
 * written to each.
 */
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Effect } from "effect"

/** A cache with a MemoryTier L1 (100 entries), a TestTier L2 and a bus hub. */
export const hubWorld = Effect.gen(function* () {
  const hub = yield* TestBus.makeHub
  const l1 = yield* MemoryTier.make({ maxEntries: 100 })
  const l2 = yield* TestTier.make()
  const cache = yield* TieredCache.make().pipe(
    Effect.provide(TestBus.layer(hub)),
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, l2)
  )
  return { cache, l1, l2, hub }
})
