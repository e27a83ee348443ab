/**
 * Two instances, "a" and "b", each with its own MemoryTier L1 and bus, sharing one L2 (a TestTier
 * behind a ChaosTier) and one TestBus hub: the world of the auto-recovery tests, where `outage`
 * makes Redis unreachable for A alone and `recover` brings it back and waits until A kept nothing.
 */
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosBus, ChaosTier, TestBus, TestTier } from "@tiercache/testing"
import { Effect, Option } from "effect"

/** Builds the world (options: TieredCache's, for both instances). */
export const world = (options: TieredCache.Options = {}) =>
  Effect.gen(function* () {
    const store = yield* TestTier.make()
    const l2 = yield* ChaosTier.wrap(store)
    const hub = yield* TestBus.makeHub
    const instance = (instanceId: string) =>
      Effect.gen(function* () {
        const l1 = yield* MemoryTier.make({ maxEntries: 100 })
        const bus = yield* ChaosBus.wrap(TestBus.make(hub))
        const cache = yield* TieredCache.make({ instanceId, ...options }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2),
          Effect.provideService(InvalidationBus.InvalidationBus, bus)
        )
        return { cache, bus, l1 }
      })
    const a = yield* instance("a")
    const b = yield* instance("b")
    /** Redis unreachable for A: L2 calls and A's publishes fail; the data stays (as with AOF). */
    const outage = Effect.zipRight(l2.fail("all"), a.bus.failPublish(true))
    /** Redis back: A's bus reports the reconnection; waits until A kept nothing. */
    const recover = Effect.gen(function* () {
      yield* l2.heal
      yield* a.bus.heal
      yield* a.bus.disconnect
      yield* until(Effect.map(a.cache.stats, (s) => s.pendingChanges === 0))
      yield* settle
    })
    const settle = Effect.gen(function* () {
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow()
    })
    const stored = (key: string) =>
      Effect.map(
        store.get(key),
        Option.map((e) => e.value)
      )
    return { store, l2, hub, a, b, outage, recover, settle, stored }
  })

/** Yields until `check` holds (dies after 10,000 yields). */
export const until = (check: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 10_000; i++) {
      if (yield* check) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage("condition not met")
  })
