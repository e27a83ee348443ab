import { describe, expect, it } from "@effect/vitest"
import { Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Clock, Effect, Option, TestClock } from "effect"

/** Two instances, a and b, on one L2 and one bus. */
const pair = Effect.gen(function* () {
  const hub = yield* TestBus.makeHub
  const l2 = yield* TestTier.make()
  const instance = (id: string) =>
    Effect.flatMap(MemoryTier.make({ maxEntries: 100 }), (l1) =>
      TieredCache.make({ instanceId: id }).pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2),
        Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
      )
    )
  const a = yield* instance("a")
  const b = yield* instance("b")
  yield* TestClock.adjust(1000)
  return { hub, l2, a, b }
})

describe("an Update without created_ms carrying tags", () => {
  it.scoped("is not stored once one of its tags was invalidated: it may be older than that", () =>
    Effect.gen(function* () {
      const { hub, l2, a, b } = yield* pair
      // Another implementation writes k tagged t to L2; a invalidates t a millisecond later (b
      // applies it); then that implementation's Update of k reaches b, tagged t, without a date.
      const created = yield* Clock.currentTimeMillis
      yield* l2.set("k", Entry.make({ value: "old", now: created, ttlMs: 60_000, tags: ["t"] }))
      yield* TestClock.adjust(1)
      yield* a.invalidateTag("t")
      yield* MultiInstance.settle([a, b], { hub })
      yield* TestClock.adjust(1)
      yield* hub.publishRaw(
        JSON.stringify({ type: "Update", key: "k", value: "old", ttl_secs: 60, tags: ["t"] })
      )
      yield* MultiInstance.settle([a, b], { hub })
      // Every instance answers what the invalidation left: a miss.
      expect(yield* a.get("k")).toEqual(Option.none())
      expect(yield* b.get("k")).toEqual(Option.none())
    })
  )

  it.scoped("is stored when its tags are known here as never invalidated, and untagged as before", () =>
    Effect.gen(function* () {
      const { hub, a, b } = yield* pair
      // b meets tag u (never invalidated) through a tagged entry it reads.
      yield* a.set("met", "v", { tags: ["u"], ttl: "1 hour" })
      expect(yield* b.get("met")).toEqual(Option.some("v"))
      yield* hub.publishRaw(
        JSON.stringify({ type: "Update", key: "k", value: "new", ttl_secs: 60, tags: ["u"] })
      )
      yield* hub.publishRaw(JSON.stringify({ type: "Update", key: "plain", value: "new", ttl_secs: 60 }))
      yield* MultiInstance.settle([a, b], { hub })
      const hits = (yield* b.stats).l1Hits
      expect(yield* b.get("k")).toEqual(Option.some("new"))
      expect(yield* b.get("plain")).toEqual(Option.some("new"))
      expect((yield* b.stats).l1Hits).toBe(hits + 2)
    })
  )
})
