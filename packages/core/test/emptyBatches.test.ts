/**
 * getMany and invalidateMany of an empty key list: nothing to read or remove, so no tier is
 * called, no request counted, no bus message sent and no change kept.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Effect, Option, Schema } from "effect"

/** A cache over `first` as L1 and a TestTier L2, with a bus hub of its own. */
const cacheOver = (first: Tier.Tier.Service) =>
  Effect.gen(function* () {
    const hub = yield* TestBus.makeHub
    const l2 = yield* TestTier.make({ name: "l2" })
    const cache = yield* TieredCache.make().pipe(
      Effect.provide(TestBus.layer(hub)),
      Effect.provideService(Tier.L1, first),
      Effect.provideService(Tier.L2, l2)
    )
    return { cache, hub, l2 }
  })

/** The same world over a MemoryTier L1 and over a generic one (a TestTier), its L1 answered too. */
const worlds = Effect.gen(function* () {
  const generic = yield* TestTier.make({ name: "l1" })
  return [
    { ...(yield* cacheOver(yield* MemoryTier.make({ maxEntries: 100 }))), l1: undefined },
    { ...(yield* cacheOver(generic)), l1: generic }
  ]
})

describe("an empty key list", () => {
  it.scoped("getMany answers [] and counts no request, over a MemoryTier and over a generic L1", () =>
    Effect.gen(function* () {
      for (const { cache, l1, l2 } of yield* worlds) {
        yield* cache.set("k", "v")
        const before = yield* cache.stats
        expect(yield* cache.getMany([])).toEqual([])
        expect(yield* cache.getMany([], Schema.String)).toEqual([])
        expect((yield* cache.stats).requests).toBe(before.requests)
        expect([(yield* l2.calls).getMany, l1 === undefined ? 0 : (yield* l1.calls).getMany]).toEqual([0, 0])
        // The cache still answers what it holds.
        expect(yield* cache.getMany(["k"])).toEqual([Option.some("v")])
      }
    })
  )

  it.scoped("invalidateMany removes nothing from any tier, sends nothing and keeps nothing", () =>
    Effect.gen(function* () {
      for (const { cache, hub, l1, l2 } of yield* worlds) {
        yield* cache.set("k", "v")
        const sent = yield* hub.published
        yield* cache.invalidateMany([])
        expect(yield* hub.published).toEqual(sent)
        expect((yield* cache.invalidationStats).messagesSent).toBe(1)
        expect((yield* cache.stats).pendingChanges).toBe(0)
        expect([(yield* l2.calls).remove, l1 === undefined ? 0 : (yield* l1.calls).remove]).toEqual([0, 0])
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
      }
    })
  )
})
