import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Effect, Option, TestClock } from "effect"

// An instance that read a key from the shared tier holds the entry as it was written there, dated
// by its writer's clock. A later Update of the key from another instance, not refused (no change
// of the key here within the window, none since it was made), must replace that copy or drop it:
// its write landed in the shared tier after the copy was read (its message follows its write).
// Kept because the copy's date was later (its writer's clock runs ahead), the copy was served
// over the shared tier's newer value until its TTL.

/** Instance `id`: a MemoryTier over `store`, on `hub`. */
const instance = (id: string, store: Tier.Tier.Service, hub: TestBus.Hub) =>
  Effect.flatMap(MemoryTier.make({ maxEntries: 100 }), (l1) =>
    TieredCache.make({ instanceId: id }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, store),
      Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
    )
  )

const applied = (cache: TieredCache.TieredCache.Service, n: number) =>
  Effect.gen(function* () {
    while ((yield* cache.invalidationStats).messagesApplied < n) yield* Effect.yieldNow()
  })

const held = (store: Tier.Tier.Service) =>
  Effect.map(
    store.get("k"),
    Option.map((e) => e.value)
  )

describe("an Update after a read of the shared tier", () => {
  for (const skew of [10_000, 60_000]) {
    it.scoped(`replaces a copy read there whose writer's clock ran ${skew / 1000} s ahead`, () =>
      Effect.gen(function* () {
        const store = yield* TestTier.make()
        const hub = yield* TestBus.makeHub
        const a = yield* instance("a", store, hub)
        const c = yield* instance("c", store, hub)
        // B, whose clock runs ahead, sets "k": its entry lands dated ahead, and its Remove follows.
        const bNow = (yield* TestClock.currentTimeMillis) + skew
        yield* store.set("k", {
          value: "b",
          expiresAt: bNow + 600_000,
          staleUntil: bNow + 600_000,
          tags: [],
          createdAt: bNow
        })
        yield* TestBus.make(hub).publish({ type: "Remove", key: "k", origin: "b" })
        yield* applied(c, 1)
        yield* applied(a, 1)
        // C reads it from the shared tier (and keeps it in L1).
        expect(yield* c.get("k")).toEqual(Option.some("b"))
        // Five seconds later, nobody else writing, A updates the key.
        yield* TestClock.adjust("5 seconds")
        yield* a.update("k", "a", { ttl: "10 minutes" })
        yield* applied(c, 2)
        expect(yield* held(store)).toEqual(Option.some("a"))
        expect(yield* c.get("k")).toEqual(Option.some("a"))
      })
    )
  }
})
