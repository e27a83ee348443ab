/**
 * getMany with a key listed more than once: each distinct key is read once per tier and decided
 * once, answered at every position that lists it; every listing counts as one request, as the
 * tier that answered the key; a promotion, a decode error or a discarded write once per key.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Clock, Effect, Fiber, Option, Schema, TestClock } from "effect"

/**
 * A tier that records the keys of every read (`get` one key, `getMany` its list), and can hold
 * each read's answer back for `holdMs` of the Effect Clock once it has read the tier beneath.
 */
const recording = (tier: Tier.Tier.Service) => {
  const reads: Array<ReadonlyArray<string>> = []
  let holdMs = 0
  let beforeWrite: Effect.Effect<void> = Effect.void
  const held = <A, E>(read: Effect.Effect<A, E>) =>
    Effect.flatMap(read, (a) => (holdMs === 0 ? Effect.succeed(a) : Effect.as(Effect.sleep(holdMs), a)))
  const wrapped: Tier.Tier.Service = {
    ...tier,
    get: (key) =>
      Effect.suspend(() => {
        reads.push([key])
        return held(tier.get(key))
      }),
    getMany: (keys) =>
      Effect.suspend(() => {
        reads.push([...keys])
        return held(tier.getMany(keys))
      }),
    set: (key, entry) => Effect.zipRight(beforeWrite, tier.set(key, entry))
  }
  return {
    tier: wrapped,
    /** Every read's keys since the last call, in order. */
    taken: () => reads.splice(0),
    hold: (ms: number) => {
      holdMs = ms
    },
    /** Runs before every set (a slow tier: a promotion into it takes this long). */
    slowWrites: (effect: Effect.Effect<void>) => {
      beforeWrite = effect
    }
  }
}

/** A cache over MemoryTier and a recorded TestTier, the clock 10 s past the epoch. */
const setup = Effect.gen(function* () {
  yield* TestClock.adjust(10_000)
  const l2 = yield* TestTier.make()
  const rec = recording(l2)
  const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
  const cache = yield* TieredCache.make().pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, rec.tier)
  )
  const now = yield* Clock.currentTimeMillis
  return { cache, l1, l2, rec, now }
})

/** Moves the TestClock `ms` milliseconds, one at a time, letting the other fibers run. */
const walk = (ms: number) =>
  Effect.forEach(Array.from({ length: ms }), () => Effect.zipRight(Effect.yieldNow(), TestClock.adjust(1)), {
    discard: true
  })

const counted = (cache: TieredCache.TieredCache.Service) =>
  Effect.map(cache.stats, (s) => ({
    requests: s.requests,
    l1Hits: s.l1Hits,
    tierHits: s.tierHits,
    misses: s.misses,
    promotions: s.promotions,
    decodeErrors: s.decodeErrors,
    discardedWrites: s.discardedWrites
  }))

const some = Option.some
const none = Option.none()

describe("getMany reads a key listed twice once per tier", () => {
  it.scoped("found in L2: one read of each key, answered at each position; a promotion per key", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, rec, now } = yield* setup
      yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000 }))
      yield* l2.plant("b", Entry.make({ value: "B", now, ttlMs: 60_000 }))
      expect(yield* cache.getMany(["a", "b", "a", "x", "a", "x"])).toEqual([
        some("A"),
        some("B"),
        some("A"),
        none,
        some("A"),
        none
      ])
      expect(rec.taken()).toEqual([["a", "b", "x"]])
      // Each listing is a request, counted as the tier that answered its key.
      expect(yield* counted(cache)).toEqual({
        requests: 6,
        l1Hits: 0,
        tierHits: [4],
        misses: 2,
        promotions: 2,
        decodeErrors: 0,
        discardedWrites: 0
      })
      expect(Option.map(yield* l1.get("a"), (e) => e.value)).toEqual(some("A"))
      // Now in L1: answered there, every listing an L1 hit; only x goes below, once.
      expect(yield* cache.getMany(["x", "a", "a", "b", "x"])).toEqual([
        none,
        some("A"),
        some("A"),
        some("B"),
        none
      ])
      expect(rec.taken()).toEqual([["x"]])
      expect(yield* counted(cache)).toEqual({
        requests: 11,
        l1Hits: 3,
        tierHits: [4],
        misses: 4,
        promotions: 2,
        decodeErrors: 0,
        discardedWrites: 0
      })
    })
  )

  it.scoped("the same counts as that many gets would give, but for the promotions and reads", () =>
    Effect.gen(function* () {
      const { cache, l2, rec, now } = yield* setup
      yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000 }))
      const answers = yield* cache.getMany(["a", "a", "a"])
      expect(answers).toEqual([some("A"), some("A"), some("A")])
      // The same answer object at each position (decided once).
      expect(answers[0]).toBe(answers[2])
      expect(rec.taken()).toEqual([["a"]])
      const stats = yield* cache.stats
      expect([stats.requests, stats.l2Hits, stats.promotions]).toEqual([3, 3, 1])
    })
  )

  it.scoped("a generic L1 (not a MemoryTier) and a third tier: each read once per tier, promoted once", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust(10_000)
      const now = yield* Clock.currentTimeMillis
      const tiers = [
        yield* TestTier.make({ name: "l1" }),
        yield* TestTier.make(),
        yield* TestTier.make({ name: "l3" })
      ]
      const [l1, l2, l3] = tiers.map(recording)
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1!.tier),
        Effect.provideService(Tier.L2, l2!.tier),
        Effect.provideService(Tier.Tiers, [l3!.tier])
      )
      yield* tiers[1]!.plant("b", Entry.make({ value: "B", now, ttlMs: 60_000 }))
      yield* tiers[2]!.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000 }))
      expect(yield* cache.getMany(["a", "b", "a", "b", "c", "c"])).toEqual([
        some("A"),
        some("B"),
        some("A"),
        some("B"),
        none,
        none
      ])
      expect(l1!.taken()).toEqual([["a", "b", "c"]])
      expect(l2!.taken()).toEqual([["a", "b", "c"]])
      expect(l3!.taken()).toEqual([["a", "c"]])
      expect(yield* counted(cache)).toEqual({
        requests: 6,
        l1Hits: 0,
        tierHits: [2, 2],
        misses: 2,
        promotions: 2,
        decodeErrors: 0,
        discardedWrites: 0
      })
      // a was written once into L2 and L1, b once into L1.
      const sets = yield* Effect.all([tiers[0]!.calls, tiers[1]!.calls])
      expect(sets.map((c) => c.set)).toEqual([2, 1])
      expect(yield* cache.getMany(["b", "a", "b"])).toEqual([some("B"), some("A"), some("B")])
      expect(l1!.taken()).toEqual([["b", "a"]])
      expect(l2!.taken()).toEqual([])
      expect((yield* cache.stats).l1Hits).toBe(3)
    })
  )
})

describe("getMany with a schema and a key listed twice", () => {
  it.scoped("data that does not decode: a miss at each position, one decode error per copy read", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, rec, now } = yield* setup
      yield* l2.plant("a", Entry.make({ value: "not a number", now, ttlMs: 60_000 }))
      yield* l2.plant("b", Entry.make({ value: 2, now, ttlMs: 60_000 }))
      expect(yield* cache.getMany(["a", "b", "a", "b"], Schema.Number)).toEqual([
        none,
        some(2),
        none,
        some(2)
      ])
      expect(rec.taken()).toEqual([["a", "b"]])
      expect(yield* counted(cache)).toEqual({
        requests: 4,
        l1Hits: 0,
        tierHits: [2],
        misses: 2,
        promotions: 1,
        decodeErrors: 1,
        discardedWrites: 0
      })
      expect(yield* l1.get("a")).toEqual(none)
      // In L1 and in L2, both undecodable: one decode error for each tier's copy, a miss a listing.
      yield* cache.set("c", "text", { ttl: "1 minute" })
      rec.taken()
      expect(yield* cache.getMany(["c", "c", "c"], Schema.Number)).toEqual([none, none, none])
      expect(rec.taken()).toEqual([["c"]])
      const stats = yield* counted(cache)
      expect([stats.misses, stats.decodeErrors]).toEqual([5, 3])
      // Untyped, the same key answers its value at each position.
      expect(yield* cache.getMany(["c", "c"])).toEqual([some("text"), some("text")])
    })
  )

  it.scoped("data that decodes: the decoded value at each position, the same object", () =>
    Effect.gen(function* () {
      const { cache, l2, now } = yield* setup
      const Point = Schema.Struct({ x: Schema.NumberFromString })
      yield* l2.plant("p", Entry.make({ value: { x: "1" }, now, ttlMs: 60_000 }))
      const answers = yield* cache.getMany(["p", "p"], Point)
      expect(answers).toEqual([some({ x: 1 }), some({ x: 1 })])
      expect(Option.getOrThrow(answers[0]!)).toBe(Option.getOrThrow(answers[1]!))
    })
  )
})

describe("getMany with a key listed twice at its expiry on the TestClock", () => {
  it.scoped("one millisecond before expiresAt a hit at each position, at expiresAt a miss at each", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, rec, now } = yield* setup
      yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 1000 }))
      yield* l2.plant("s", Entry.make({ value: "S", now, ttlMs: 1000, graceMs: 60_000 }))
      yield* TestClock.adjust(999)
      expect(yield* cache.getMany(["a", "s", "a", "s"])).toEqual([some("A"), some("S"), some("A"), some("S")])
      yield* l1.clear
      yield* TestClock.adjust(1)
      // At expiresAt: a is gone, s stale (not answered by getMany): a miss at every position.
      expect(yield* cache.getMany(["a", "s", "a", "s"])).toEqual([none, none, none, none])
      expect(rec.taken()).toEqual([
        ["a", "s"],
        ["a", "s"]
      ])
      expect(yield* counted(cache)).toEqual({
        requests: 8,
        l1Hits: 0,
        tierHits: [4],
        misses: 4,
        promotions: 2,
        decodeErrors: 0,
        discardedWrites: 0
      })
    })
  )

  it.scoped(
    "an entry that expires while its first listing is promoted is answered alike at each position",
    () =>
      Effect.gen(function* () {
        yield* TestClock.adjust(10_000)
        const now = yield* Clock.currentTimeMillis
        const l2 = recording(yield* TestTier.make())
        const l3 = yield* TestTier.make({ name: "l3" })
        // A promotion into L2 takes 10 ms: the clock moves between one listing and the next.
        l2.slowWrites(Effect.sleep("10 millis"))
        const cache = yield* TieredCache.make().pipe(
          Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
          Effect.provideService(Tier.L2, l2.tier),
          Effect.provideService(Tier.Tiers, [l3])
        )
        yield* l3.plant("a", Entry.make({ value: "A", now, ttlMs: 5 }))
        const fiber = yield* Effect.fork(cache.getMany(["a", "a"]))
        yield* walk(20)
        expect(yield* Fiber.join(fiber)).toEqual([some("A"), some("A")])
        const stats = yield* cache.stats
        expect([stats.tierHits, stats.misses, stats.promotions]).toEqual([[0, 2], 0, 1])
      })
  )
})

describe("getMany with a key listed twice racing an invalidation of it on the same instance", () => {
  it.scoped(
    "read before the invalidation: the value read at each position, stored nowhere, discarded once",
    () =>
      Effect.gen(function* () {
        const { cache, l1, l2, rec, now } = yield* setup
        yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000 }))
        yield* l2.plant("b", Entry.make({ value: "B", now, ttlMs: 60_000 }))
        // L2 answers 10 ms after it was read.
        rec.hold(10)
        const fiber = yield* Effect.fork(cache.getMany(["a", "b", "a"]))
        yield* Effect.yieldNow()
        yield* cache.invalidate("a")
        yield* walk(20)
        expect(yield* Fiber.join(fiber)).toEqual([some("A"), some("B"), some("A")])
        rec.hold(0)
        expect(yield* l1.get("a")).toEqual(none)
        expect(yield* cache.get("a")).toEqual(none)
        expect(yield* cache.getMany(["a", "a"])).toEqual([none, none])
        const stats = yield* counted(cache)
        expect([stats.promotions, stats.discardedWrites]).toEqual([1, 1])
      })
  )

  it.scoped("invalidated before L2 is read: a miss at each position", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, now } = yield* setup
      yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000 }))
      const fiber = yield* Effect.fork(Effect.zipRight(Effect.sleep("5 millis"), cache.getMany(["a", "a"])))
      yield* cache.invalidate("a")
      yield* walk(10)
      expect(yield* Fiber.join(fiber)).toEqual([none, none])
      expect(yield* l1.get("a")).toEqual(none)
    })
  )
})
