/**
 * The README's "Testing your code": a cache for unit tests, with no Redis (an L1 in memory in
 * front of TestTier, an in-memory L2 whose expiry follows the Effect Clock).
 * examples/test/testing.test.ts runs a cache on it under the TestClock.
 */
import { MemoryTier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Layer } from "effect"

const TestCacheLive = TieredCache.layer().pipe(
  Layer.provide(MemoryTier.layer({ maxEntries: 1_000 })),
  Layer.provide(TestTier.layer())
)

export { TestCacheLive }
