/**
 * The README's "Testing your code": a cache for unit tests, with no Redis (an L1 in memory in
 * front of TestTier, an in-memory L2 whose expiry follows the Effect Clock).
 * `testCacheOn(l2)` is the same cache on a TestTier the test made, to tell it to fail (`failOn`)
 * or look inside it. examples/test/testing.test.ts runs both under the TestClock.
 */
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Layer } from "effect"

const TestCacheLive = TieredCache.layer().pipe(
  Layer.provide(MemoryTier.layer({ maxEntries: 1_000 })),
  Layer.provide(TestTier.layer())
)

// failOn, snapshot, plant and calls belong to a TestTier you make: provide it as the L2 yourself.
const testCacheOn = (l2: TestTier.TestTier) =>
  TieredCache.layer().pipe(
    Layer.provide(MemoryTier.layer({ maxEntries: 1_000 })),
    Layer.provide(Layer.succeed(Tier.L2, l2))
  )

export { TestCacheLive, testCacheOn }
