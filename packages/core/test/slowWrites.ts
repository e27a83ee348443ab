import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { type Duration, Effect } from "effect"

/**
 * A cache with `options` over an L2 whose writes take `delay` on the fiber's clock (a tier that
 * does not bound its own calls): `store` is the L2 underneath the delays, `l2` the delaying one.
 */
export const slowWrites = (delay: Duration.DurationInput, options: TieredCache.Options) =>
  Effect.gen(function* () {
    const store = yield* TestTier.make()
    const l2 = yield* ChaosTier.wrap(store)
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const cache = yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
    yield* l2.delay(["set"], delay)
    return { cache, store, l1, l2 }
  })
