import { describe, expect, it } from "@effect/vitest"
import {
  CacheError,
  Entry,
  InvalidationBus,
  type InvalidationMessage,
  MemoryTier,
  Tier,
  TieredCache
} from "@tiercache/core"
import { ChaosTier, MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import {
  Clock,
  Context,
  DefaultServices,
  Deferred,
  Duration,
  Effect,
  Exit,
  Fiber,
  Logger,
  Option,
  Ref,
  Schema,
  TestClock
} from "effect"

const build = (options?: TieredCache.Options, l2?: Tier.Tier.Service) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const testTier = yield* TestTier.make()
    const cache = yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2 ?? testTier)
    )
    return { cache, l2: testTier }
  })

/** A computation that counts its runs, takes `ms` on the clock, and answers `value`. */
const counted = <A>(runs: Ref.Ref<number>, value: A, ms = 0) =>
  Ref.update(runs, (n) => n + 1).pipe(Effect.zipRight(Effect.sleep(ms)), Effect.as(value))

/** Puts "v1" under "k" for `ttl` with an hour's grace, then moves the clock past `ttl`: "k" is stale. */
const staleV1 = (cache: TieredCache.TieredCache.Service, ttl: Duration.DurationInput) =>
  Effect.zipRight(cache.set("k", "v1", { ttl, grace: "1 hour" }), TestClock.adjust(ttl))

/** Lets forked fibers run until they block. */
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

describe("grace: stale-while-revalidate", () => {
  it.scoped(
    "inside the grace window the stale value answers at once and one refresh runs in the background",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build()
        const runs = yield* Ref.make(0)
        yield* cache.set("k", "v1", { ttl: "10 seconds", grace: "1 minute" })
        yield* TestClock.adjust("9999 millis")
        expect(yield* cache.getOrCompute("k", counted(runs, "v2", 1000))).toBe("v1")
        expect(yield* Ref.get(runs)).toBe(0) // still fresh: no refresh
        yield* TestClock.adjust("1 millis")
        // Expired, inside grace: stale at once, refresh started once however many callers come.
        const answers = yield* Effect.all(
          Array.from({ length: 20 }, () => cache.getOrCompute("k", counted(runs, "v2", 1000))),
          { concurrency: "unbounded" }
        )
        expect(answers.every((a) => a === "v1")).toBe(true)
        yield* settle
        expect(yield* Ref.get(runs)).toBe(1)
        expect(yield* cache.get("k")).toEqual(Option.none()) // get does not serve stale by default
        expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.some("v1"))
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(yield* cache.get("k")).toEqual(Option.some("v2"))
        const s = yield* cache.stats
        expect(s.computations).toBe(1)
        expect(s.staleServed).toBe(21)
        expect(s.requests).toBe(s.l1Hits + s.l2Hits + s.coalesced + s.misses)
      })
  )

  it.scoped(
    "an L1 entry keeps its times to the millisecond on an epoch clock, with a TTL and grace past 2^31 ms",
    () =>
      Effect.gen(function* () {
        // L1 keeps staleUntil and createdAt as distances from expiresAt (small integers when they
        // fit 31 bits, the time itself otherwise): here 40 days, a day and 7 days, on 2026's clock.
        yield* TestClock.setTime(Date.UTC(2026, 11, 2, 12))
        // No metrics flush or recovery retry meanwhile (each would run every few seconds of the
        // days the clock jumps).
        const { cache } = yield* build({
          metricsInterval: "3650 days",
          recovery: { retryInterval: "3650 days" }
        })
        const day = 86_400_000
        for (const [key, ttl, grace] of [
          ["long", 40 * day, 30 * day],
          ["short", day, 7 * day]
        ] as const) {
          yield* cache.set(key, key, { ttl: Duration.millis(ttl), grace: Duration.millis(grace) })
        }
        const l1Hits = () => Effect.map(cache.stats, (s) => s.l1Hits)
        const at = (key: string) =>
          Effect.gen(function* () {
            const before = yield* l1Hits()
            const fresh = yield* cache.get(key)
            const stale = yield* cache.get(key, { allowStale: true })
            return {
              fresh: Option.isSome(fresh),
              stale: Option.isSome(stale),
              l1: (yield* l1Hits()) - before
            }
          })
        /** Walks `key` through its four boundaries, `untilExpiry` ms from now. */
        const walk = (key: string, untilExpiry: number, grace: number) =>
          Effect.gen(function* () {
            yield* TestClock.adjust(untilExpiry - 1)
            expect(yield* at(key)).toEqual({ fresh: true, stale: true, l1: 2 })
            yield* TestClock.adjust(1)
            expect(yield* at(key)).toEqual({ fresh: false, stale: true, l1: 1 })
            yield* TestClock.adjust(grace - 1)
            expect(yield* at(key)).toEqual({ fresh: false, stale: true, l1: 1 })
            yield* TestClock.adjust(1)
            expect(yield* at(key)).toEqual({ fresh: false, stale: false, l1: 0 })
          })
        yield* walk("short", day, 7 * day)
        // 8 days have passed: "long" expires 32 days from now.
        yield* walk("long", 32 * day, 30 * day)
      })
  )

  // A caller's soft timeout answers that caller alone: a later caller joins the computation and
  // gets its value, never the stale value whose grace window has ended.
  it.scoped(
    "a computation answered stale that outlasts the grace window: later callers do not get that value",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build({ staleWhileRevalidate: false })
        const runs = yield* Ref.make(0)
        yield* cache.set("k", "v1", { ttl: "10 seconds", grace: "2 seconds" })
        yield* TestClock.adjust("11 seconds") // stale, 1 s of grace left
        // The soft timeout answers the stale value at 11.1 s; the computation takes 5 s, past 12 s.
        const first = yield* Effect.fork(
          cache.getOrCompute("k", counted(runs, "v2", 5000), { timeouts: { soft: "100 millis" } })
        )
        yield* settle
        yield* TestClock.adjust("100 millis")
        expect(yield* Fiber.join(first)).toBe("v1")
        yield* TestClock.adjust("2400 millis") // 13.5 s: the entry is gone, the computation runs on
        const late = yield* Effect.fork(cache.getOrCompute("k", counted(runs, "v3", 3000)))
        yield* settle
        expect(late.unsafePoll()).toBeNull()
        // 16 s: the computation ends; the late caller waited for it.
        yield* TestClock.adjust("2500 millis")
        expect(yield* Fiber.join(late)).toBe("v2")
        expect(yield* Ref.get(runs)).toBe(1)
        yield* settle
        expect(yield* cache.get("k")).toEqual(Option.some("v2"))
        const s = yield* cache.stats
        expect(s.requests).toBe(s.l1Hits + s.tierHits.reduce((a, b) => a + b, 0) + s.coalesced + s.misses)
      })
  )

  it.scoped(
    "a refresh answered stale that outlasts the grace window: later callers compute anew, its value is not kept",
    () =>
      Effect.gen(function* () {
        const { cache, l2 } = yield* build()
        const runs = yield* Ref.make(0)
        // Only L2 holds it (another instance's write, or evicted from L1).
        yield* l2.plant("k", Entry.make({ value: "v1", now: 0, ttlMs: 10_000, graceMs: 2000 }))
        yield* TestClock.adjust("11 seconds") // stale, 1 s of grace left
        // Stale-while-revalidate answers L2's stale copy once read; the refresh takes 5 s, past 12 s.
        expect(yield* cache.getOrCompute("k", counted(runs, "v2", 5000))).toBe("v1")
        yield* TestClock.adjust("2500 millis") // 13.5 s: the entry is gone, the refresh runs on
        const late = yield* Effect.fork(cache.getOrCompute("k", counted(runs, "v3", 3000)))
        yield* settle
        expect(late.unsafePoll()).toBeNull()
        // 16 s: the superseded computation ends first; 16.5 s: this one. v2 must not stay.
        yield* TestClock.adjust("3 seconds")
        expect(yield* Fiber.join(late)).toBe("v3")
        expect(yield* Ref.get(runs)).toBe(2)
        yield* settle
        expect(yield* cache.get("k")).toEqual(Option.some("v3"))
        const s = yield* cache.stats
        expect(s.requests).toBe(s.l1Hits + s.tierHits.reduce((a, b) => a + b, 0) + s.coalesced + s.misses)
      })
  )

  it.scoped("past the grace window the entry is gone and callers wait for the computation", () =>
    Effect.gen(function* () {
      const { cache } = yield* build()
      const runs = yield* Ref.make(0)
      yield* cache.set("k", "v1", { ttl: "10 seconds", grace: "5 seconds" })
      yield* TestClock.adjust("14999 millis")
      expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.some("v1"))
      yield* TestClock.adjust("1 millis")
      expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.none())
      const fiber = yield* Effect.fork(cache.getOrCompute("k", counted(runs, "v2", 100)))
      yield* settle
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("100 millis")
      expect(yield* Fiber.join(fiber)).toBe("v2")
    })
  )

  it.scoped("a stale copy in L2 (written by another instance) answers at once too", () =>
    Effect.gen(function* () {
      const { caches } = yield* MultiInstance.make(2)
      const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
      const runs = yield* Ref.make(0)
      yield* a.set("k", "v1", { ttl: "1 second", grace: "1 minute" })
      yield* TestClock.adjust("2 seconds")
      expect(yield* b.getOrCompute("k", counted(runs, "v2", 500))).toBe("v1")
      yield* TestClock.adjust("500 millis")
      yield* settle
      expect(yield* Ref.get(runs)).toBe(1)
      expect(yield* b.get("k")).toEqual(Option.some("v2"))
    })
  )

  // Before: a stale L2 copy answered at once counted as a miss (it was counted before the copy
  // was found to answer), while an L1 copy answered the same way counted as an L1 hit, and get
  // with allowStale counted the same L2 copy as an L2 hit: hitRate fell with every stale answer
  // that came from L2.
  it.scoped(
    "a stale copy answered at once counts as a hit of the tier that held it, as with allowStale",
    () =>
      Effect.gen(function* () {
        const outcomes = (
          read: (cache: TieredCache.TieredCache.Service) => Effect.Effect<unknown, unknown>
        ) =>
          Effect.gen(function* () {
            const { caches } = yield* MultiInstance.make(2)
            const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
            yield* a.set("k", "v1", { ttl: "1 second", grace: "1 minute" })
            yield* TestClock.adjust("2 seconds")
            // a holds its stale copy in L1; b only in L2.
            const answers = [yield* read(a), yield* read(b)]
            yield* settle
            const stats = yield* Effect.forEach([a, b], (cache) => cache.stats)
            return {
              answers,
              counts: stats.map((s) => [s.requests, s.l1Hits, s.l2Hits, s.misses, s.staleServed])
            }
          })
        const computed = yield* outcomes((cache) => cache.getOrCompute("k", Effect.never))
        const allowed = yield* outcomes((cache) =>
          Effect.map(cache.get("k", { allowStale: true }), Option.getOrUndefined)
        )
        expect(computed).toEqual({
          answers: ["v1", "v1"],
          counts: [
            [1, 1, 0, 0, 1],
            [1, 0, 1, 0, 1]
          ]
        })
        expect(computed).toEqual(allowed)
      })
  )

  it.scoped(
    "with l1TtlScale, a caller whose L1 copy is gone gets the lower tier's stale copy at once while the refresh runs",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build({ l1TtlScale: 0.5 })
        const runs = yield* Ref.make(0)
        yield* cache.set("k", "v1", { ttl: "10 seconds", grace: "30 seconds" })
        // L1's copy: fresh until 5 s, stale until 20 s; L2's: fresh until 10 s, stale until 40 s.
        yield* TestClock.adjust("12 seconds")
        // L1's stale copy answers, and the refresh (10 s) starts.
        expect(yield* cache.getOrCompute("k", counted(runs, "v2", 10_000))).toBe("v1")
        yield* settle
        yield* TestClock.adjust("9 seconds") // 21 s: L1's copy is gone, L2's still in its window
        const late = yield* Effect.fork(cache.getOrCompute("k", counted(runs, "v2", 10_000)))
        yield* settle
        // Stale-while-revalidate: the stale value at once, not the refresh's value a second later.
        expect(late.unsafePoll()).toEqual(Exit.succeed("v1"))
        expect(yield* Ref.get(runs)).toBe(1)
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(yield* cache.get("k")).toEqual(Option.some("v2"))
        const s = yield* cache.stats
        expect(s.computations).toBe(1)
        expect(s.requests).toBe(s.l1Hits + s.l2Hits + s.coalesced + s.misses)
      })
  )

  it.scoped(
    "a caller joining a flight that answered stale, during its lower-tier write, gets the computed value",
    () =>
      Effect.gen(function* () {
        const l1 = yield* MemoryTier.make({ maxEntries: 1 })
        const l2 = yield* ChaosTier.wrap(yield* TestTier.make())
        const cache = yield* TieredCache.make({ l1TtlScale: 0.5 }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2)
        )
        yield* cache.set("k", "v1", { ttl: "10 seconds", grace: "30 seconds" })
        // L1: fresh until 5 s, stale until 20 s; L2: fresh until 10 s, stale until 40 s.
        yield* TestClock.adjust("12 seconds")
        expect(yield* cache.getOrCompute("k", Effect.as(Effect.sleep("30 seconds"), "v2"))).toBe("v1")
        yield* settle
        // The refresh ends at 42 s (v1 gone since 40 s); its L2 write takes 900 ms.
        yield* l2.delay("set", "900 millis")
        yield* TestClock.adjust("30 seconds")
        yield* settle
        yield* l2.delay("set", 0)
        // Another key evicts k's new L1 copy (maxEntries 1) while the flight still writes L2.
        yield* l1.set("other", Entry.make({ value: 1, now: 42_000, ttlMs: 60_000 }))
        yield* TestClock.adjust("100 millis")
        const late = yield* Effect.fork(cache.getOrCompute("k", Effect.succeed("v3")))
        yield* settle
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(late)).toBe("v2")
      })
  )
})

describe("a flight writing its lower tiers", () => {
  it.scoped("a caller that comes once its computed value has expired computes anew", () =>
    Effect.gen(function* () {
      const l1 = yield* MemoryTier.make({ maxEntries: 100 })
      const l2 = yield* ChaosTier.wrap(yield* TestTier.make())
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      // The lower tier is slow to write: 900 ms (under the 1 s tier timeout).
      yield* l2.delay("set", "900 millis")
      expect(yield* cache.getOrCompute("k", Effect.succeed("v1"), { ttl: "200 millis" })).toBe("v1")
      yield* TestClock.adjust("500 millis")
      yield* settle
      // v1's TTL ended 300 ms ago (no grace): L1 misses, the flight still writes L2.
      const late = yield* Effect.fork(cache.getOrCompute("k", Effect.succeed("v2"), { ttl: "200 millis" }))
      yield* settle
      yield* TestClock.adjust("1 millis")
      const got = yield* Fiber.join(late)
      yield* TestClock.adjust("20 seconds")
      yield* settle
      expect(got).toBe("v2")
      const s = yield* cache.stats
      expect([s.computations, s.requests]).toEqual([2, s.l1Hits + s.l2Hits + s.coalesced + s.misses])
    })
  )
})

describe("fail-safe", () => {
  it.scoped(
    "a failing computation with a stale value answers the stale value, kept for the throttle period",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build({ staleWhileRevalidate: false, failSafeThrottle: "5 seconds" })
        const runs = yield* Ref.make(0)
        const failing = Ref.update(runs, (n) => n + 1).pipe(
          Effect.zipRight(Effect.fail("source down" as const))
        )
        yield* staleV1(cache, "10 seconds")
        expect(yield* cache.getOrCompute("k", failing)).toBe("v1")
        expect(yield* Ref.get(runs)).toBe(1)
        // Kept as fresh for 5 s: the failing source is not called again.
        yield* TestClock.adjust("4999 millis")
        expect(yield* cache.getOrCompute("k", failing)).toBe("v1")
        expect(yield* Ref.get(runs)).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* cache.getOrCompute("k", failing)).toBe("v1")
        expect(yield* Ref.get(runs)).toBe(2)
        const s = yield* cache.stats
        expect([s.failSafeHits, s.computeErrors]).toEqual([2, 2])
      })
  )

  it.scoped("a stale value whose grace window ended while the computation ran is not brought back", () =>
    Effect.gen(function* () {
      const { cache } = yield* build()
      yield* cache.set("k", "v1", { ttl: "10 seconds", grace: "5 seconds" })
      yield* TestClock.adjust("14 seconds") // stale, 1 s of grace left
      // Stale-while-revalidate answers at once; the refresh fails at 17 s, after the grace window.
      const failing = Effect.zipRight(Effect.sleep("3 seconds"), Effect.fail("source down" as const))
      expect(yield* cache.getOrCompute("k", failing)).toBe("v1")
      yield* TestClock.adjust("3 seconds")
      yield* settle
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.none())
      // A hard timeout past the grace window: no stale value any more, a CacheTimeoutError.
      yield* cache.set("h", "v1", { ttl: "10 seconds", grace: "1 second" })
      yield* TestClock.adjust("10500 millis")
      const slow = Effect.as(Effect.sleep("5 seconds"), "v2")
      // Stale-while-revalidate answers the first caller at once and starts the computation.
      expect(yield* cache.getOrCompute("h", slow, { timeouts: { hard: "1 second" } })).toBe("v1")
      // Past the grace window a second caller joins the computation; its hard timeout ends at 12.2 s.
      yield* TestClock.adjust("700 millis")
      const late = yield* Effect.fork(
        Effect.flip(cache.getOrCompute("h", slow, { timeouts: { hard: "1 second" } }))
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(late))._tag).toBe("CacheTimeoutError")
    })
  )

  it.scoped("a fail-safe copy is fresh for the throttle period, never past the entry's grace window", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({ staleWhileRevalidate: false }) // failSafeThrottle 5 s
      yield* cache.set("k", "old", { ttl: "10 seconds", grace: "2 seconds" })
      yield* TestClock.adjust("11 seconds") // stale, 1 s of grace left
      const failing = Effect.fail("source down" as const)
      expect(yield* cache.getOrCompute("k", failing)).toBe("old")
      expect(yield* cache.get("k")).toEqual(Option.some("old")) // kept as fresh
      yield* TestClock.adjust("1 second") // 12 s: the grace window ends, the entry is gone
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect((yield* Effect.either(cache.getOrCompute("k", failing)))._tag).toBe("Left")
    })
  )

  // README: "once an invalidation has returned, no tier holds the value it removed". The
  // fail-safe keeps the stale value in L1 as fresh; it checked that the key had not changed, then
  // wrote L1. An L1 that is not a MemoryTier (the Tier contract; here one whose writes take
  // 100 ms) took the write after an invalidate of the key had removed it and returned: the
  // invalidated value was then served as fresh for failSafeThrottle. Expected: the invalidation
  // waits for that write (as for a computed value's), and the value is gone once it returns.
  it.scoped("a fail-safe copy being written to a slow L1 does not outlive an invalidate of its key", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make({ name: "l1" })
      const l1 = yield* ChaosTier.wrap(inner)
      const l2 = yield* TestTier.make()
      const cache = yield* TieredCache.make({ staleWhileRevalidate: false }).pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      yield* cache.set("k", "old", { ttl: "1 second", grace: "1 hour" })
      yield* TestClock.adjust("1 second")
      yield* l1.delay("set", "100 millis")
      // The computation fails: the caller gets the stale value, and L1 is being written (100 ms).
      expect(yield* cache.getOrCompute("k", Effect.fail("source down" as const))).toBe("old")
      const invalidate = yield* Effect.fork(cache.invalidate("k"))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* Fiber.join(invalidate)
      yield* settle
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* inner.snapshot).toEqual(new Map())
    })
  )

  it.scoped(
    "with l1TtlScale, a failed computation answers the lower tier's copy still in its grace window",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build({ l1TtlScale: 0.5, staleWhileRevalidate: false })
        yield* cache.set("k", "old", { ttl: "10 seconds", grace: "30 seconds" })
        // L1's copy: fresh until 5 s, stale until 20 s; L2's: fresh until 10 s, stale until 40 s.
        yield* TestClock.adjust("12 seconds")
        const slowFailure = Effect.zipRight(Effect.sleep("10 seconds"), Effect.fail("down" as const))
        const fiber = yield* Effect.fork(cache.getOrCompute("k", slowFailure))
        yield* settle
        yield* TestClock.adjust("10 seconds") // 22 s: L1's grace window is over, L2's is not
        expect(yield* Fiber.join(fiber)).toBe("old")
      })
  )

  it.scoped("the failing source is left alone for failSafeThrottle, whatever l1TtlScale", () =>
    Effect.gen(function* () {
      for (const l1TtlScale of [1, 0.5]) {
        const { cache } = yield* build({ l1TtlScale, failSafeThrottle: "10 seconds" })
        yield* cache.set("k", "old", { ttl: "10 seconds", grace: "1 hour" })
        yield* TestClock.adjust("20 seconds")
        const calls = yield* Ref.make(0)
        const failing = Effect.zipRight(
          Ref.update(calls, (n) => n + 1),
          Effect.fail("down" as const)
        )
        expect(yield* cache.getOrCompute("k", failing)).toBe("old")
        yield* settle
        // 6 s later, inside the 10 s throttle: the source is not asked again.
        yield* TestClock.adjust("6 seconds")
        expect(yield* cache.getOrCompute("k", failing)).toBe("old")
        yield* settle
        expect([l1TtlScale, yield* Ref.get(calls)]).toEqual([l1TtlScale, 1])
      }
    })
  )

  it.scoped("stale-while-revalidate whose refresh fails: one request served stale, one fail-safe", () =>
    Effect.gen(function* () {
      const { cache } = yield* build()
      yield* cache.set("k", "old", { ttl: "10 seconds", grace: "1 minute" })
      yield* TestClock.adjust("11 seconds")
      expect(yield* cache.getOrCompute("k", Effect.fail("down" as const))).toBe("old")
      yield* settle
      const s = yield* cache.stats
      expect([s.computations, s.failSafeHits, s.staleServed]).toEqual([1, 1, 1])
    })
  )

  it.scoped("a computation counts once in failSafeHits and staleServed, however many waiters", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({ staleWhileRevalidate: false })
      yield* staleV1(cache, "10 seconds")
      // Three waiters pass the hard timeout, then the computation fails (the fail-safe).
      const slow = Effect.zipRight(Effect.sleep("10 seconds"), Effect.fail("source down" as const))
      const fibers = yield* Effect.forEach([1, 2, 3], () =>
        Effect.fork(cache.getOrCompute("k", slow, { timeouts: { hard: "1 second" } }))
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      for (const fiber of fibers) expect(yield* Fiber.join(fiber)).toBe("v1")
      yield* TestClock.adjust("9 seconds")
      yield* settle
      const s = yield* cache.stats
      expect([s.computations, s.timeouts, s.failSafeHits, s.staleServed]).toEqual([1, 3, 1, 1])
    })
  )

  // README (Fail-safe; options table "0: off"): with failSafeThrottle 0 a failure is not answered
  // stale; a hard timeout still is (it is no failure of the source).
  it.scoped("failSafeThrottle 0: a failed computation's error reaches its callers over a stale value", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({ staleWhileRevalidate: false, failSafeThrottle: 0 })
      yield* staleV1(cache, "1 second")
      expect(yield* Effect.flip(cache.getOrCompute("k", Effect.fail("source down" as const)))).toBe(
        "source down"
      )
      const slow = Effect.as(Effect.sleep("5 seconds"), "v2")
      const timedOut = yield* Effect.fork(cache.getOrCompute("k", slow, { timeouts: { hard: "1 second" } }))
      yield* settle
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(timedOut)).toBe("v1")
      expect((yield* cache.stats).failSafeHits).toBe(1)
    })
  )

  it.scoped("without a stale value the computation's error reaches the caller, typed", () =>
    Effect.gen(function* () {
      const { cache } = yield* build()
      const error = yield* Effect.flip(cache.getOrCompute("k", Effect.fail({ _tag: "SourceDown" as const })))
      expect(error).toEqual({ _tag: "SourceDown" })
      expect((yield* cache.stats).failSafeHits).toBe(0)
    })
  )
})

describe("computation timeouts", () => {
  it.scoped(
    "soft timeout: the stale value answers, the computation finishes in the background and is stored",
    () =>
      Effect.gen(function* () {
        const { cache, l2 } = yield* build({ staleWhileRevalidate: false })
        const runs = yield* Ref.make(0)
        yield* staleV1(cache, "10 seconds")
        const fiber = yield* Effect.fork(
          cache.getOrCompute("k", counted(runs, "v2", 5000), { timeouts: { soft: "100 millis" } })
        )
        yield* settle
        yield* TestClock.adjust("99 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(fiber)).toBe("v1")
        yield* TestClock.adjust("4900 millis")
        yield* settle
        expect(yield* cache.get("k")).toEqual(Option.some("v2"))
        expect(Option.map(yield* l2.get("k"), (e) => e.value)).toEqual(Option.some("v2"))
        expect(yield* Ref.get(runs)).toBe(1)
      })
  )

  // README: timeouts are "per cache or per call": past its soft timeout, a caller gets the stale
  // value. A caller that joined a computation another caller had started (without a soft
  // timeout) waited for the computation whatever soft timeout it gave: only the first caller's
  // counted. (softTimeouts.test.ts: it answers that caller alone.)
  it.scoped("a caller's own soft timeout answers it when it joins a computation already under way", () =>
    Effect.gen(function* () {
      // The first caller gives no soft timeout, or a later one.
      const firsts: ReadonlyArray<TieredCache.ComputeOptions> = [{}, { timeouts: { soft: "10 seconds" } }]
      for (const first of firsts) {
        const { cache, l2 } = yield* build({ staleWhileRevalidate: false })
        const runs = yield* Ref.make(0)
        yield* staleV1(cache, "10 seconds")
        const leader = yield* Effect.fork(cache.getOrCompute("k", counted(runs, "v2", 5000), first))
        yield* settle
        yield* TestClock.adjust("1 second")
        const joiner = yield* Effect.fork(
          cache.getOrCompute("k", counted(runs, "v3", 5000), { timeouts: { soft: "100 millis" } })
        )
        yield* settle
        yield* TestClock.adjust("99 millis")
        expect(joiner.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        yield* settle
        expect(joiner.unsafePoll()).toEqual(Exit.succeed("v1"))
        // It answers that caller alone: the first waits for the computation (its own soft
        // timeout, if any, is later), which goes on and is stored.
        expect(leader.unsafePoll()).toBeNull()
        yield* TestClock.adjust("3900 millis")
        expect(yield* Fiber.join(leader)).toBe("v2")
        yield* settle
        expect(yield* cache.get("k")).toEqual(Option.some("v2"))
        expect(Option.map(yield* l2.get("k"), (e) => e.value)).toEqual(Option.some("v2"))
        const s = yield* cache.stats
        expect([yield* Ref.get(runs), s.staleServed, s.coalesced]).toEqual([1, 1, 1])
      }
    })
  )

  // The first caller's soft timeout started once the lower tiers had been read: with a stale copy
  // in L1 and a slow L2 (900 ms, under its 1 s timeout), `soft: 100 millis` answered at 1 s.
  it.scoped("the soft timeout counts from the call: a slow lower-tier lookup does not delay it", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make()
      const l2 = yield* ChaosTier.wrap(inner)
      const { cache } = yield* build({ staleWhileRevalidate: false }, l2)
      yield* cache.set("k", "v1", { ttl: "1 second", grace: "1 hour" })
      yield* inner.plant(
        "only-l2",
        Entry.make({ value: "v1 in L2", now: 0, ttlMs: 1000, graceMs: 3_600_000 })
      )
      yield* TestClock.adjust("1 second")
      yield* l2.delay("get", "900 millis")
      const soft: TieredCache.ComputeOptions = { timeouts: { soft: "100 millis" } }
      const slow = Effect.as(Effect.sleep("5 seconds"), "v2")
      const fromL1 = yield* Effect.fork(cache.getOrCompute("k", slow, soft))
      const fromL2 = yield* Effect.fork(cache.getOrCompute("only-l2", slow, soft))
      yield* settle
      yield* TestClock.adjust("99 millis")
      expect(fromL1.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(fromL1.unsafePoll()).toEqual(Exit.succeed("v1"))
      // A stale copy found only once the lookup ends, past the soft timeout, answers then.
      yield* TestClock.adjust("799 millis")
      expect(fromL2.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(fromL2.unsafePoll()).toEqual(Exit.succeed("v1 in L2"))
    })
  )

  // README (Statistics): a stale value "answered later, by the fail-safe or a timeout, was a
  // miss". A soft or hard timeout that answered during a slow lookup which then found a fresh L2
  // copy counted the request as an L2 hit (a CacheTimeoutError included).
  it.scoped("a request a timeout answered is a miss, whatever the lookup then finds", () =>
    Effect.gen(function* () {
      // The timeouts, whether L1 holds a stale copy, the answer at 100 ms; L2 holds a fresh copy,
      // or (swr) a stale one that stale-while-revalidate would answer at once.
      const cases: ReadonlyArray<readonly [TieredCache.Timeouts, boolean, unknown, "fresh" | "swr"]> = [
        [{ soft: "100 millis" }, true, "v1", "fresh"],
        [{ hard: "100 millis" }, true, "v1", "fresh"],
        [{ hard: "100 millis" }, false, "CacheTimeoutError", "fresh"],
        [{ hard: "100 millis" }, false, "CacheTimeoutError", "swr"]
      ]
      for (const [timeouts, stale, answer, inL2] of cases) {
        const inner = yield* TestTier.make()
        const l2 = yield* ChaosTier.wrap(inner)
        const { cache } = yield* build({ staleWhileRevalidate: inL2 === "swr" }, l2)
        if (stale) yield* cache.set("k", "v1", { ttl: "1 second", grace: "1 hour" })
        yield* TestClock.adjust("1 second")
        // Another instance's value is in L2, which answers in 900 ms.
        yield* inner.plant(
          "k",
          Entry.make({ value: "v2", now: 1000, ttlMs: inL2 === "fresh" ? 60_000 : 1, graceMs: 3_600_000 })
        )
        yield* l2.delay("get", "900 millis")
        const call = yield* Effect.fork(
          Effect.either(cache.getOrCompute("k", Effect.succeed("computed"), { timeouts }))
        )
        yield* settle
        yield* TestClock.adjust("100 millis")
        const got = yield* Fiber.join(call)
        expect(got._tag === "Right" ? got.right : got.left._tag).toBe(answer)
        yield* TestClock.adjust("800 millis")
        yield* settle
        const s = yield* cache.stats
        expect([timeouts, inL2, s.requests, s.misses, s.l2Hits]).toEqual([timeouts, inL2, 1, 1, 0])
      }
    })
  )

  it.scoped("hard timeout without a stale value: a typed CacheTimeoutError; the result is still stored", () =>
    Effect.gen(function* () {
      const { cache } = yield* build()
      const runs = yield* Ref.make(0)
      const fiber = yield* Effect.fork(
        Effect.exit(cache.getOrCompute("k", counted(runs, "v", 5000), { timeouts: { hard: "1 second" } }))
      )
      yield* settle
      yield* TestClock.adjust("1 second")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      if (Exit.isFailure(exit)) {
        expect(JSON.stringify(exit.cause)).toContain("CacheTimeoutError")
      }
      expect((yield* cache.stats).timeouts).toBe(1)
      yield* TestClock.adjust("4 seconds")
      yield* settle
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect(yield* Ref.get(runs)).toBe(1)
    })
  )

  // README: "`timeouts: { soft, hard }` (per cache or per call)"; every other test gives them per call.
  it.scoped("a cache's timeouts bound the calls that give none; a call's own replace them", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({
        staleWhileRevalidate: false,
        timeouts: { soft: "100 millis", hard: "1 second" }
      })
      const runs = yield* Ref.make(0)
      // Hard, no stale value: a CacheTimeoutError at 1 s; the computation goes on and is stored.
      const hard = yield* Effect.fork(Effect.flip(cache.getOrCompute("k", counted(runs, "v", 5000))))
      yield* settle
      yield* TestClock.adjust("999 millis")
      expect(hard.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(hard)).toEqual(new CacheError.CacheTimeoutError({ key: "k", timeoutMs: 1000 }))
      yield* TestClock.adjust("4 seconds")
      yield* settle
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      // Soft, with a stale value: the stale value at 100 ms.
      yield* cache.set("s", "old", { ttl: "1 second", grace: "1 hour" })
      yield* TestClock.adjust("1 second")
      const soft = yield* Effect.fork(cache.getOrCompute("s", counted(runs, "new", 5000)))
      yield* settle
      yield* TestClock.adjust("99 millis")
      expect(soft.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(soft)).toBe("old")
      yield* TestClock.adjust("5 seconds")
      yield* settle
      // A call's own timeouts: its hard bound, not the cache's.
      const own = yield* Effect.fork(
        Effect.flip(cache.getOrCompute("o", counted(runs, "v", 5000), { timeouts: { hard: "3 seconds" } }))
      )
      yield* settle
      yield* TestClock.adjust("2999 millis")
      expect(own.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(own)).toEqual(new CacheError.CacheTimeoutError({ key: "o", timeoutMs: 3000 }))
      expect(yield* Ref.get(runs)).toBe(3)
    })
  )

  it.effect("a cache's bad timeouts (plain JS included) are a CacheConfigError naming them, at build", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      const build = (timeouts: unknown) =>
        Effect.flip(
          Effect.scoped(
            TieredCache.make({ timeouts: timeouts as TieredCache.Timeouts }).pipe(
              Effect.provideService(Tier.L2, l2),
              Effect.provide(MemoryTier.layer({ maxEntries: 1 }))
            )
          )
        )
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ hard: 0 }, "timeouts.hard must be positive"],
        [{ hard: -5 }, "timeouts.hard must not be negative"],
        [{ hard: "bogus" }, "timeouts.hard must be a duration"],
        [{ hard: Number.NaN }, "timeouts.hard must be a number"],
        [{ hard: Number.POSITIVE_INFINITY }, "timeouts.hard must be finite"],
        [{ soft: 0 }, "timeouts.soft must be positive"],
        [{ soft: "2 seconds", hard: "1 second" }, "timeouts.soft must not exceed timeouts.hard"],
        ["fast", "timeouts must be an object"]
      ]
      for (const [timeouts, reason] of cases) {
        const error = yield* build(timeouts)
        expect(error).toBeInstanceOf(CacheError.CacheConfigError)
        expect(error).toMatchObject({ option: expect.stringMatching(/^timeouts/) })
        expect(error.reason).toContain(reason)
      }
    })
  )

  it.scoped("hard timeout with a stale value answers the stale value", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({ staleWhileRevalidate: false })
      const runs = yield* Ref.make(0)
      yield* staleV1(cache, "1 second")
      const fiber = yield* Effect.fork(
        cache.getOrCompute("k", counted(runs, "v2", 5000), { timeouts: { hard: "300 millis" } })
      )
      yield* settle
      yield* TestClock.adjust("300 millis")
      expect(yield* Fiber.join(fiber)).toBe("v1")
      const s = yield* cache.stats
      expect([s.timeouts, s.failSafeHits]).toEqual([1, 1])
    })
  )

  // README (Fail-safe) said a computation past its hard timeout had its stale value kept in L1 as
  // fresh for failSafeThrottle, as a failed one has. It is not: the computation goes on (and
  // stores its result), so `get` does not answer the stale value as fresh meanwhile and later
  // callers join that computation; only once it fails is the stale value kept.
  it.scoped("hard timeout with a stale value keeps nothing in L1; the computation failing then does", () =>
    Effect.gen(function* () {
      const { cache } = yield* build({ staleWhileRevalidate: false, failSafeThrottle: "5 seconds" })
      const runs = yield* Ref.make(0)
      yield* staleV1(cache, "1 second")
      const failing = Effect.zipRight(counted(runs, undefined, 5000), Effect.fail("source down" as const))
      const call = Effect.fork(cache.getOrCompute("k", failing, { timeouts: { hard: "300 millis" } }))
      const first = yield* call
      yield* settle
      yield* TestClock.adjust("300 millis")
      expect(yield* Fiber.join(first)).toBe("v1")
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.some("v1"))
      // A later caller joins the computation still under way and waits out its own hard timeout.
      const second = yield* call
      yield* settle
      yield* TestClock.adjust("299 millis")
      expect(second.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(second)).toBe("v1")
      // 5 s: the computation fails; the fail-safe keeps the stale value as fresh for 5 s.
      yield* TestClock.adjust("4400 millis")
      yield* settle
      expect(yield* cache.get("k")).toEqual(Option.some("v1"))
      yield* TestClock.adjust("4999 millis")
      expect(yield* cache.get("k")).toEqual(Option.some("v1"))
      yield* TestClock.adjust("1 millis")
      expect(yield* cache.get("k")).toEqual(Option.none())
      // staleServed: the computation once, and the get with allowStale.
      const s = yield* cache.stats
      expect([yield* Ref.get(runs), s.timeouts, s.failSafeHits, s.staleServed]).toEqual([1, 2, 1, 2])
    })
  )

  it.scoped(
    "hard timeout: a caller of another schema gets the stale value decoded for it, else a timeout",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* build({ staleWhileRevalidate: false })
        yield* staleV1(cache, "1 second")
        const slow = Effect.as(Effect.sleep("10 seconds"), "v2")
        // An untyped caller leads the computation; typed ones join it with hard timeouts.
        const leader = yield* Effect.fork(cache.getOrCompute("k", slow))
        yield* settle
        const numeric = yield* Effect.fork(
          Effect.flip(
            cache.getOrComputeTyped("k", Schema.Number, Effect.as(Effect.sleep("10 seconds"), 2), {
              timeouts: { hard: "300 millis" }
            })
          )
        )
        const typed = yield* Effect.fork(
          cache.getOrComputeTyped("k", Schema.String, slow, { timeouts: { hard: "600 millis" } })
        )
        yield* settle
        // 300 ms: a stale value its schema does not decode is no answer, and not counted as served.
        yield* TestClock.adjust("300 millis")
        expect((yield* Fiber.join(numeric))._tag).toBe("CacheTimeoutError")
        const first = yield* cache.stats
        expect([first.timeouts, first.staleServed, first.failSafeHits]).toEqual([1, 0, 0])
        // 600 ms: one it decodes answers, counted once for the computation.
        yield* TestClock.adjust("300 millis")
        expect(yield* Fiber.join(typed)).toBe("v1")
        const then = yield* cache.stats
        expect([then.timeouts, then.staleServed, then.failSafeHits]).toEqual([2, 1, 1])
        yield* TestClock.adjust("10 seconds")
        expect(yield* Fiber.join(leader)).toBe("v2")
      })
  )

  // README: "Timeouts run on the clock the cache was built with: under TestClock, adjusting it
  // drives them." The flight's fiber runs with its first caller's fiber refs (its Clock too), and
  // a waiter's hard timeout ran on the waiter's: a caller under another clock (here the live one,
  // as code run with Effect.withClock, or a test's TestClock beside a cache built live) had its
  // soft timeout fire on its own clock, not on the cache's, and its hard timeout likewise.
  it.scoped("soft and hard timeouts run on the cache's clock, whatever clock the caller runs on", () =>
    Effect.gen(function* () {
      // No metrics flush or recovery retry meanwhile (each would run every few seconds of the hour).
      const { cache } = yield* build({
        staleWhileRevalidate: false,
        metricsInterval: "3650 days",
        recovery: { retryInterval: "3650 days" }
      })
      const live = Context.get(DefaultServices.liveServices, Clock.Clock)
      yield* cache.set("k", "v1", { ttl: "1 second", grace: "1 day" })
      yield* TestClock.adjust("1 second")
      // An hour of the caller's (live) clock will not pass during this test; an hour of the cache's
      // TestClock passes when the test says so.
      const soft = yield* Effect.fork(
        Effect.withClock(cache.getOrCompute("k", Effect.never, { timeouts: { soft: "1 hour" } }), live)
      )
      const hard = yield* Effect.fork(
        Effect.withClock(
          Effect.flip(cache.getOrCompute("other", Effect.never, { timeouts: { hard: "1 hour" } })),
          live
        )
      )
      yield* settle
      yield* TestClock.adjust("59 minutes")
      yield* settle
      expect([soft.unsafePoll(), hard.unsafePoll()]).toEqual([null, null])
      yield* TestClock.adjust("1 minute")
      yield* settle
      expect(soft.unsafePoll()).toEqual(Exit.succeed("v1"))
      expect(yield* Fiber.join(hard)).toEqual(
        new CacheError.CacheTimeoutError({ key: "other", timeoutMs: 3_600_000 })
      )
    })
  )

  it.scoped("soft timeout greater than hard is refused", () =>
    Effect.gen(function* () {
      const { cache } = yield* build()
      const error = yield* Effect.flip(
        cache.getOrCompute("k", Effect.succeed(1), { timeouts: { soft: "2 seconds", hard: "1 second" } })
      )
      expect(error).toMatchObject({ _tag: "CacheInputError", problem: "InvalidTtl" })
    })
  )
})

describe("tier timeouts and the circuit breaker", () => {
  it.scoped("a hung L2 read is cut at the tier timeout and the computation answers", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make({ name: "slow" })
      const gate = yield* Deferred.make<void>()
      const hung: Tier.Tier.Service = {
        ...inner,
        get: (key) => Effect.zipRight(Deferred.await(gate), inner.get(key))
      }
      const { cache } = yield* build({ breaker: { timeout: "200 millis" } }, hung)
      const fiber = yield* Effect.fork(cache.getOrCompute("k", Effect.succeed("computed")))
      yield* settle
      yield* TestClock.adjust("199 millis")
      expect(fiber.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toBe("computed")
      expect((yield* cache.stats).tierErrors).toEqual({ slow: 1 })
    })
  )

  it.scoped(
    "a tier that declares a longer callTimeout than the breaker is still cut at the breaker's timeout",
    () =>
      Effect.gen(function* () {
        const inner = yield* TestTier.make({ name: "slow" })
        const gate = yield* Deferred.make<void>()
        const hung: Tier.Tier.Service = {
          ...inner,
          callTimeout: Duration.seconds(5),
          get: (key) => Effect.zipRight(Deferred.await(gate), inner.get(key))
        }
        const { cache } = yield* build({ breaker: { timeout: "200 millis" } }, hung)
        const fiber = yield* Effect.fork(cache.getOrCompute("k", Effect.succeed("computed")))
        yield* settle
        yield* TestClock.adjust("200 millis")
        expect(yield* Fiber.join(fiber)).toBe("computed")
      })
  )

  it.scoped("a tier whose own callTimeout is shorter is trusted: the breaker adds no timer", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make({ name: "bounded" })
      const gate = yield* Deferred.make<void>()
      // It claims to bound itself at 100 ms but hangs: only a timer of the breaker could cut it.
      const lying: Tier.Tier.Service = {
        ...inner,
        callTimeout: Duration.millis(100),
        get: (key) => Effect.zipRight(Deferred.await(gate), inner.get(key))
      }
      const { cache } = yield* build({ breaker: { timeout: "200 millis" } }, lying)
      const fiber = yield* Effect.fork(cache.getOrCompute("k", Effect.succeed("computed")))
      yield* settle
      yield* TestClock.adjust("5 seconds")
      expect(fiber.unsafePoll()).toBeNull()
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(fiber)).toBe("computed")
    })
  )

  it.scoped(
    "over a tier that bounds itself, reads that fail still open the breaker and a probe closes it",
    () =>
      Effect.gen(function* () {
        const inner = yield* TestTier.make()
        const selfBounded: Tier.Tier.Service = { ...inner, callTimeout: Duration.millis(100) }
        const { cache } = yield* build(
          { breaker: { failureThreshold: 3, openFor: "10 seconds" } },
          selfBounded
        )
        yield* inner.failOn("all")
        for (let i = 0; i < 3; i++) yield* cache.get(`k${i}`)
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
        const calls = (yield* inner.calls).get
        yield* cache.get("skipped")
        expect((yield* inner.calls).get).toBe(calls)
        yield* inner.failOn("none")
        yield* TestClock.adjust("10 seconds")
        yield* cache.get("probe")
        expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
        // Successes after a failure reset the count: two failures, a success, two failures: closed.
        yield* inner.failOn("all")
        yield* cache.get("f1")
        yield* cache.get("f2")
        yield* inner.failOn("none")
        yield* cache.get("ok")
        yield* inner.failOn("all")
        yield* cache.get("f3")
        yield* cache.get("f4")
        expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
      })
  )

  it.scoped("the breaker logs each change of state: opening as a warning, probing and closing as info", () =>
    Effect.gen(function* () {
      const logs: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        const text = (Array.isArray(message) ? message : [message]).join(" ")
        if (text.includes("breaker")) logs.push(`${logLevel.label} ${text}`)
      })
      yield* Effect.gen(function* () {
        const l2 = yield* TestTier.make()
        const { cache } = yield* build({ breaker: { failureThreshold: 3, openFor: "10 seconds" } }, l2)
        yield* l2.failOn("all")
        for (let i = 0; i < 3; i++) yield* cache.get(`k${i}`)
        yield* l2.failOn("none")
        yield* TestClock.adjust("10 seconds")
        yield* cache.get("probe")
        yield* cache.get("after")
      }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      expect(logs).toEqual([
        "WARN tiercache: test breaker closed -> open (3 consecutive failures)",
        "INFO tiercache: test breaker open -> half-open (probing)",
        "INFO tiercache: test breaker half-open -> closed (probe succeeded)"
      ])
    })
  )

  // README (Timeouts and circuit breaker): "Every call to a tier below L1 has a timeout (default
  // 1 s) and a circuit breaker (opens after 5 consecutive failures, for 10 s) ... or turn both
  // off with `breaker: false`." Every other test gives its own numbers.
  it.scoped(
    "without a breaker option a tier call is cut at 1 s, and 5 failures in a row open L2's breaker for 10 s",
    () =>
      Effect.gen(function* () {
        const inner = yield* TestTier.make()
        const gate = yield* Deferred.make<void>()
        const hung: Tier.Tier.Service = {
          ...inner,
          get: (key) => Effect.zipRight(Deferred.await(gate), inner.get(key))
        }
        const slow = yield* build(undefined, hung)
        const fiber = yield* Effect.fork(slow.cache.getOrCompute("k", Effect.succeed("computed")))
        yield* settle
        yield* TestClock.adjust("999 millis")
        expect(fiber.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(fiber)).toBe("computed")

        const { cache, l2 } = yield* build()
        yield* l2.failOn("all")
        for (let i = 0; i < 4; i++) yield* cache.get(`k${i}`)
        expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
        yield* cache.get("k4")
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
        yield* l2.failOn("none")
        const calls = (yield* l2.calls).get
        yield* TestClock.adjust("9999 millis")
        yield* cache.get("refused")
        expect((yield* l2.calls).get).toBe(calls)
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
        yield* TestClock.adjust("1 millis")
        yield* cache.get("probe")
        expect((yield* l2.calls).get).toBe(calls + 1)
        expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
      })
  )

  it.scoped("breaker: false turns off both the tier timeout and the breaker", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make()
      const gate = yield* Deferred.make<void>()
      const hung: Tier.Tier.Service = {
        ...inner,
        get: (key) => Effect.zipRight(Deferred.await(gate), inner.get(key))
      }
      const slow = yield* build({ breaker: false }, hung)
      const fiber = yield* Effect.fork(slow.cache.getOrCompute("k", Effect.succeed("computed")))
      yield* settle
      yield* TestClock.adjust("1 minute")
      expect(fiber.unsafePoll()).toBeNull()
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(fiber)).toBe("computed")

      const { cache, l2 } = yield* build({ breaker: false })
      yield* l2.failOn("all")
      for (let i = 0; i < 20; i++) yield* cache.get(`k${i}`)
      expect((yield* l2.calls).get).toBe(20)
      expect((yield* cache.stats).breakerRejections).toBe(0)
      expect(Object.values((yield* cache.stats).breakers)).not.toContain("open")
    })
  )

  it.scoped("after N consecutive failures the breaker opens, L2 is skipped, then a probe closes it", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      const { cache } = yield* build({ breaker: { failureThreshold: 3, openFor: "10 seconds" } }, l2)
      yield* l2.failOn("all")
      for (let i = 0; i < 3; i++) yield* cache.get(`k${i}`)
      let s = yield* cache.stats
      expect(s.breakers).toEqual({ test: "open" })
      expect(s.tierErrors).toEqual({ test: 3 })
      const health = yield* cache.health
      expect(health.status).toBe("degraded")
      expect(health.tiers[1]!.detail).toContain("breaker open")
      // Open: L2 is not called; reads go to L1 and the computation, writes to L1 only.
      const before = (yield* l2.calls).get
      expect(yield* cache.getOrCompute("x", Effect.succeed(1))).toBe(1)
      yield* cache.set("y", 2)
      expect(yield* cache.get("y")).toEqual(Option.some(2))
      expect((yield* l2.calls).get).toBe(before)
      expect((yield* cache.stats).breakerRejections).toBeGreaterThan(0)
      // Still failing when the probe goes: open again.
      yield* TestClock.adjust("10 seconds")
      yield* cache.get("p1")
      expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      // Healed: the next probe closes it.
      yield* l2.failOn("none")
      yield* TestClock.adjust("10 seconds")
      yield* cache.get("p2")
      s = yield* cache.stats
      expect(s.breakers).toEqual({ test: "closed" })
      yield* cache.set("z", 3)
      expect((yield* l2.snapshot).has("z")).toBe(true)
      expect((yield* cache.health).status).toBe("healthy")
    })
  )
})

describe("health after an outage", () => {
  // CacheHealth says degraded when a lower tier does not answer. A breaker stays open until a
  // call probes it, so with no traffic after the outage the cache said degraded (breaker open)
  // for good, its tier answering every health check.
  it.scoped("past the breaker's window, health is the probe: a tier that answers again is healthy", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      const { cache } = yield* build({ breaker: { failureThreshold: 3, openFor: "10 seconds" } }, l2)
      yield* l2.failOn("all")
      for (let i = 0; i < 3; i++) yield* cache.get(`k${i}`)
      yield* l2.failOn("none")
      // Inside the window: open, reported as such, and the check does not close it.
      let health = yield* cache.health
      expect(health.status).toBe("degraded")
      expect(health.tiers[1]!.detail).toContain("breaker open")
      expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      // Past it, no call made: the health check probes, and the tier answers.
      yield* TestClock.adjust("10 seconds")
      health = yield* cache.health
      expect(health.status).toBe("healthy")
      expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
      expect((yield* cache.stats).breakerRejections).toBe(0)
      // A tier still failing when health probes: open again, for another window.
      yield* l2.failOn("all")
      for (let i = 0; i < 3; i++) yield* cache.get(`j${i}`)
      yield* TestClock.adjust("10 seconds")
      expect((yield* cache.health).status).toBe("degraded")
      yield* l2.failOn("none")
      expect((yield* cache.health).tiers[1]!.detail).toContain("breaker open")
      expect((yield* cache.stats).breakers).toEqual({ test: "open" })
    })
  )
})

describe("a health check that hangs", () => {
  // The health check of a tier below L1 is bounded by the breaker's timeout, which ran on the
  // caller's clock rather than the cache's (README: "Timeouts run on the clock the cache was built
  // with"): called under another clock, a hung tier's check never ended on the cache's.
  it.scoped("ends at the breaker's timeout on the cache's clock, whatever clock the caller runs on", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make()
      const { cache } = yield* build({}, { ...inner, health: Effect.never })
      const live = Context.get(DefaultServices.liveServices, Clock.Clock)
      const health = yield* Effect.fork(Effect.withClock(cache.health, live))
      yield* settle
      yield* TestClock.adjust("999 millis")
      yield* settle
      expect(health.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* settle
      const answered = health.unsafePoll()
      expect(answered !== null && Exit.isSuccess(answered) && answered.value.tiers[1]).toMatchObject({
        healthy: false,
        detail: "health check timed out"
      })
    })
  )
})

describe("the bus's circuit breaker", () => {
  it.scoped(
    "a hung bus costs a write one timeout, then publishes are skipped until a probe gets through",
    () =>
      Effect.gen(function* () {
        const hub = yield* TestBus.makeHub
        let hung = true
        const inner = TestBus.make(hub)
        const bus: InvalidationBus.InvalidationBus.Service = {
          ...inner,
          publish: (message) => Effect.suspend(() => (hung ? Effect.never : inner.publish(message)))
        }
        const l1 = yield* MemoryTier.make({ maxEntries: 10 })
        const l2 = yield* TestTier.make()
        const cache = yield* TieredCache.make({
          breaker: { timeout: "200 millis", failureThreshold: 2, openFor: "10 seconds" }
        }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2),
          Effect.provideService(InvalidationBus.InvalidationBus, bus)
        )
        for (const key of ["a", "b"]) {
          const write = yield* Effect.fork(cache.set(key, 1))
          yield* settle
          expect(write.unsafePoll()).toBeNull()
          yield* TestClock.adjust("200 millis")
          yield* Fiber.join(write) // the write itself succeeded; the publish timed out
        }
        let s = yield* cache.invalidationStats
        expect([s.breaker, s.publishFailures, s.publishesSkipped]).toEqual(["open", 2, 0])
        // Open: the next write does not wait at all.
        yield* cache.set("c", 1)
        s = yield* cache.invalidationStats
        expect([s.publishFailures, s.publishesSkipped, s.messagesSent]).toEqual([3, 1, 0])
        // The bus answers again: after openFor, a probe publishes and closes the breaker.
        hung = false
        yield* TestClock.adjust("10 seconds")
        yield* cache.set("d", 1)
        s = yield* cache.invalidationStats
        expect([s.breaker, s.messagesSent]).toEqual(["closed", 1])
        expect((yield* hub.published).length).toBe(1)
      })
  )

  // README: "`breaker: false` turns both off" (the tiers' breakers and the bus's); only the tiers'
  // was tested.
  it.scoped("breaker: false turns the bus's breaker off too: every publish is tried, none cut", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      let mode: "failing" | "hung" = "failing"
      const release = yield* Deferred.make<void>()
      const inner = TestBus.make(hub)
      const bus: InvalidationBus.InvalidationBus.Service = {
        ...inner,
        publish: (message) =>
          mode === "failing"
            ? Effect.fail(new CacheError.BusError({ operation: "publish", reason: "down" }))
            : Effect.zipRight(Deferred.await(release), inner.publish(message))
      }
      // Nothing kept for a replay: the messages sent are the writes' own.
      const { cache } = yield* build({ breaker: false, recovery: false }).pipe(
        Effect.provideService(InvalidationBus.InvalidationBus, bus)
      )
      for (let i = 0; i < 10; i++) yield* cache.set(`k${i}`, i)
      let s = yield* cache.invalidationStats
      expect([s.breaker, s.publishFailures, s.publishesSkipped]).toEqual([undefined, 10, 0])
      // A hung publish holds its write until the bus answers: the cache puts no timeout on it.
      mode = "hung"
      const write = yield* Effect.fork(cache.invalidate("k0"))
      yield* settle
      yield* TestClock.adjust("1 hour")
      expect(write.unsafePoll()).toBeNull()
      yield* Deferred.succeed(release, undefined)
      yield* Fiber.join(write)
      s = yield* cache.invalidationStats
      expect([s.publishFailures, s.messagesSent]).toEqual([10, 1])
    })
  )

  it.scoped(
    "a bus that bounds its own publishes (callTimeout) gets no timer of its own; its failures still open the breaker",
    () =>
      Effect.gen(function* () {
        const hub = yield* TestBus.makeHub
        let mode: "hung" | "failing" = "hung"
        // Hung until released (a write runs to its end: interrupting it would wait for it).
        const release = yield* Deferred.make<void>()
        const inner = TestBus.make(hub)
        const busWith = (
          callTimeout: Duration.DurationInput,
          hung: (message: InvalidationMessage.InvalidationMessage) => Effect.Effect<void, CacheError.BusError>
        ): InvalidationBus.InvalidationBus.Service => ({
          ...inner,
          callTimeout: Duration.decode(callTimeout),
          publish: (message) =>
            mode === "hung"
              ? hung(message)
              : Effect.fail(
                  new CacheError.BusError({ operation: "publish", reason: "no answer within 100ms" })
                )
        })
        const cacheWith = (bus: InvalidationBus.InvalidationBus.Service) =>
          Effect.gen(function* () {
            const l1 = yield* MemoryTier.make({ maxEntries: 10 })
            const l2 = yield* TestTier.make()
            return yield* TieredCache.make({
              breaker: { timeout: "200 millis", failureThreshold: 2, openFor: "10 seconds" }
            }).pipe(
              Effect.provideService(Tier.L1, l1),
              Effect.provideService(Tier.L2, l2),
              Effect.provideService(InvalidationBus.InvalidationBus, bus)
            )
          })
        // Bounded by the bus itself (100 ms <= 200 ms): the cache trusts it and adds no timer.
        const trusted = yield* cacheWith(
          busWith("100 millis", (message) => Effect.zipRight(Deferred.await(release), inner.publish(message)))
        )
        const hungWrite = yield* Effect.fork(trusted.set("a", 1))
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* settle
        expect(hungWrite.unsafePoll()).toBeNull()
        yield* Deferred.succeed(release, undefined)
        yield* Fiber.join(hungWrite)
        // A bound longer than the breaker's timeout: the breaker's timer still applies.
        const untrusted = yield* cacheWith(busWith("1 second", () => Effect.never))
        const timedWrite = yield* Effect.fork(untrusted.set("a", 1))
        yield* settle
        yield* TestClock.adjust("200 millis")
        yield* Fiber.join(timedWrite)
        expect((yield* untrusted.invalidationStats).publishFailures).toBe(1)
        // The bus's own failures count: two open the breaker, the third write skips the publish.
        mode = "failing"
        for (const key of ["b", "c", "d"]) yield* trusted.set(key, 1)
        const s = yield* trusted.invalidationStats
        expect([s.breaker, s.publishFailures, s.publishesSkipped]).toEqual(["open", 3, 1])
      })
  )
})
