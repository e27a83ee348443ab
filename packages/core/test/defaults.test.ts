/**
 * The defaults of `TieredCache.layer` as README's Options reference lists them, each observed as
 * a user would meet it: a cache built with no options, the clock at each default's boundary.
 */
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { CacheMetrics, Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { TestBus, TestTier } from "@tiercache/testing"
import { Clock, Effect, Metric, Option, Ref, TestClock } from "effect"

const build = (options?: TieredCache.Options) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 20_000 })
    const l2 = yield* TestTier.make()
    const cache = yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
    return { cache, l1, l2 }
  })

/** Lets forked fibers run until they block. */
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

describe("TieredCache defaults (README Options reference)", () => {
  it.scoped(
    "defaultTtl is 5 minutes and defaultGrace none: fresh until 300,000 ms exclusive, then gone",
    () =>
      Effect.gen(function* () {
        const { cache, l1, l2 } = yield* build()
        yield* TestClock.setTime(1_000_000)
        yield* cache.set("k", "v")
        const stored = (yield* l2.snapshot).get("k")
        expect([stored?.expiresAt, stored?.staleUntil]).toEqual([1_300_000, 1_300_000])
        // l1TtlScale 1: L1's copy lives as long as the entry.
        const inL1 = Option.getOrThrow(yield* l1.get("k"))
        expect([inL1.expiresAt, inL1.staleUntil]).toEqual([1_300_000, 1_300_000])
        yield* TestClock.adjust(299_999)
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
        yield* TestClock.adjust(1)
        expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.none())
      })
  )

  it.scoped("instanceId is a random UUID, another for each instance, stamped as each message's origin", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const instance = Effect.gen(function* () {
        const l1 = yield* MemoryTier.make({ maxEntries: 10 })
        const l2 = yield* TestTier.make()
        return yield* TieredCache.make().pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2),
          Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
        )
      })
      const a = yield* instance
      const b = yield* instance
      yield* a.invalidate("k")
      yield* b.invalidate("k")
      yield* settle
      const origins = (yield* hub.published).map((raw) => (JSON.parse(raw) as { origin: unknown }).origin)
      expect(origins).toHaveLength(2)
      const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
      for (const origin of origins) expect(origin).toMatch(uuid)
      expect(origins[0]).not.toBe(origins[1])
    })
  )

  it.scoped('name is `default` and metricsInterval 10 seconds: counters reach cache="default" at 10 s', () =>
    Effect.gen(function* () {
      const hits = Metric.value(
        CacheMetrics.requests.pipe(Metric.tagged("cache", "default"), Metric.tagged("outcome", "l1_hit"))
      ).pipe(Effect.map((state) => state.count))
      const before = yield* hits
      const { cache } = yield* build()
      yield* cache.set("k", "v")
      yield* cache.get("k")
      yield* cache.get("k")
      yield* TestClock.adjust(9_999)
      expect((yield* hits) - before).toBe(0)
      yield* TestClock.adjust(1)
      yield* settle
      expect((yield* hits) - before).toBe(2)
    })
  )

  it.scoped(
    "tagRetention is 7 days: a tagged entry may live 7 days (TTL plus grace), not a millisecond more",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build()
        yield* cache.set("k", 1, { ttl: "6 days", grace: "1 day", tags: ["t"] })
        const error = yield* Effect.flip(cache.set("k", 1, { ttl: "6 days", grace: 86_400_001, tags: ["t"] }))
        expect(error).toMatchObject({ _tag: "CacheInputError", problem: "InvalidTtl" })
        expect(error.message).toContain("tagRetention")
      })
  )

  it.scoped("failSafeThrottle is 5 seconds: the failing source is not asked again until then", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({ staleWhileRevalidate: false })
      yield* cache.set("k", "old", { ttl: "10 seconds", grace: "1 hour" })
      yield* TestClock.adjust("20 seconds")
      const calls = yield* Ref.make(0)
      const failing = Ref.update(calls, (n) => n + 1).pipe(Effect.zipRight(Effect.fail("down" as const)))
      expect(yield* cache.getOrCompute("k", failing)).toBe("old")
      yield* settle
      yield* TestClock.adjust(4_999)
      expect(yield* cache.getOrCompute("k", failing)).toBe("old")
      yield* settle
      expect(yield* Ref.get(calls)).toBe(1)
      yield* TestClock.adjust(1)
      expect(yield* cache.getOrCompute("k", failing)).toBe("old")
      yield* settle
      expect(yield* Ref.get(calls)).toBe(2)
    })
  )

  it.scoped("breaker: opens after 5 consecutive failures, for 10 seconds, then one probe", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* build()
      yield* l2.failOn(["get"])
      for (let i = 0; i < 4; i++) yield* cache.get(`k${i}`)
      expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
      yield* cache.get("k4")
      expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      yield* l2.failOn("none")
      yield* TestClock.adjust(9_999)
      yield* cache.get("k5")
      expect((yield* l2.calls).get).toBe(5)
      expect((yield* cache.stats).breakerRejections).toBe(1)
      yield* TestClock.adjust(1)
      yield* cache.get("k6")
      expect((yield* l2.calls).get).toBe(6)
      expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
    })
  )

  it.scoped("recovery.retryInterval is 5 seconds: a change kept in an outage is replayed at 5 s", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* build({ breaker: false })
      yield* l2.failOn(["set", "setMany"])
      yield* cache.set("k", "v")
      expect((yield* cache.stats).pendingChanges).toBe(1)
      yield* l2.failOn("none")
      yield* TestClock.adjust(4_999)
      yield* settle
      expect((yield* cache.stats).pendingChanges).toBe(1)
      expect((yield* l2.snapshot).has("k")).toBe(false)
      yield* TestClock.adjust(1)
      yield* settle
      const s = yield* cache.stats
      expect([s.pendingChanges, s.replayedChanges]).toEqual([0, 1])
      expect((yield* l2.snapshot).get("k")?.value).toBe("v")
    })
  )

  it.scoped("recovery.maxChanges is 10,000: the 10,001st kept change makes one clear replace them", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* build({ breaker: false })
      yield* l2.failOn("all")
      for (let i = 0; i < 10_000; i++) yield* cache.set(`k${i}`, i)
      let s = yield* cache.stats
      expect([s.pendingChanges, s.recoveryClears]).toEqual([10_000, 0])
      yield* cache.set("k10000", 10_000)
      s = yield* cache.stats
      expect(s.recoveryClears).toBe(1)
      expect(s.pendingChanges).toBeLessThan(10_000)
    })
  )
})

describe("MemoryTier and KeyValueStoreTier defaults (README Options reference)", () => {
  it.scoped("MemoryTier is named `memory`", () =>
    Effect.gen(function* () {
      expect((yield* MemoryTier.make({ maxEntries: 1 })).name).toBe("memory")
    })
  )

  it.scoped(
    "KeyValueStoreTier is named `kv`, writes under `tiercache:` and sweeps gone entries every minute",
    () =>
      Effect.gen(function* () {
        const store = yield* KeyValueStore.KeyValueStore
        const tier = yield* KeyValueStoreTier.make().pipe(
          Effect.provideService(KeyValueStore.KeyValueStore, store)
        )
        expect(tier.name).toBe("kv")
        yield* tier.set("k", Entry.make({ value: "v", now: yield* Clock.currentTimeMillis, ttlMs: 1_000 }))
        expect(yield* store.has("tiercache:k")).toBe(true)
        yield* TestClock.adjust(59_999)
        expect(yield* store.has("tiercache:k")).toBe(true)
        yield* TestClock.adjust(1)
        yield* settle
        expect(yield* store.has("tiercache:k")).toBe(false)
      }).pipe(Effect.provide(KeyValueStore.layerMemory))
  )
})
