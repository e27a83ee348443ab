import { describe, expect, it } from "@effect/vitest"
import { CacheError, Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { type Duration, Effect, Exit, Fiber, Option, Ref, TestClock } from "effect"

const { CacheTimeoutError } = CacheError

// Timeouts on the live clock, where a Node timer stands in for the clock (internal/timeout.ts):
// the guard's timeout over a tier that does not bound its own calls (the call in one fiber
// beside a timer), and getOrCompute's hard timeout (a timer per waiter, no fiber). The TestClock
// cases of resilience.test.ts cover the same timeouts on another clock.

/**
 * A cache over a TestTier whose `get` is `get(inner)` (`inner`: the TestTier's own), guarded
 * with a timeout of `timeout`.
 */
const build = (
  get: (inner: Tier.Tier.Service) => Tier.Tier.Service["get"],
  timeout: Duration.DurationInput
) =>
  Effect.gen(function* () {
    const inner = yield* TestTier.make({ name: "slow" })
    const l2: Tier.Tier.Service = { ...inner, get: get(inner) }
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const cache = yield* TieredCache.make({ breaker: { timeout } }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
    return { cache, inner }
  })

/** A read that never answers and notes when it is interrupted. */
const hung = (interrupted: Ref.Ref<number>) => () => () =>
  Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))

describe("the tier timeout on the live clock", () => {
  it.live("a hung read is cut at the timeout, its call interrupted, and the computation answers", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const { cache } = yield* build(hung(interrupted), "50 millis")
      const start = Date.now()
      expect(yield* cache.getOrCompute("k", Effect.succeed("computed"))).toBe("computed")
      const elapsed = Date.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(49)
      expect(elapsed).toBeLessThan(2000)
      expect(yield* Ref.get(interrupted)).toBe(1)
      expect((yield* cache.stats).tierErrors).toEqual({ slow: 1 })
    }).pipe(Effect.scoped)
  )

  it.live("a caller interrupted during the call interrupts it, and no timeout is counted afterwards", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const { cache } = yield* build(hung(interrupted), "100 millis")
      const reader = yield* Effect.fork(cache.get("k"))
      yield* Effect.sleep("20 millis")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(reader))).toBe(true)
      expect(yield* Ref.get(interrupted)).toBe(1)
      yield* Effect.sleep("200 millis")
      expect((yield* cache.stats).tierErrors).toEqual({})
    }).pipe(Effect.scoped)
  )

  it.live("a read that answers in time answers its entry; a failing read is a recorded error", () =>
    Effect.gen(function* () {
      let fail = false
      const { cache, inner } = yield* build(
        (inner) => (key) =>
          fail
            ? Effect.fail(new CacheError.TierError({ tier: "slow", operation: "get", reason: "down" }))
            : Effect.zipRight(Effect.sleep("10 millis"), inner.get(key)),
        "500 millis"
      )
      yield* inner.set("k", Entry.make({ value: "v", now: Date.now(), ttlMs: 60_000 }))
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect((yield* cache.stats).tierErrors).toEqual({})
      fail = true
      expect(yield* cache.get("other")).toEqual(Option.none())
      expect((yield* cache.stats).tierErrors).toEqual({ slow: 1 })
    }).pipe(Effect.scoped)
  )

  it.scoped("under TestClock the timeout follows the TestClock", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const { cache } = yield* build(hung(interrupted), "50 millis")
      const reader = yield* Effect.fork(cache.get("k"))
      yield* Effect.yieldNow()
      yield* TestClock.adjust("49 millis")
      expect(reader.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(reader)).toEqual(Option.none())
      expect(yield* Ref.get(interrupted)).toBe(1)
    })
  )
})

/** A cache over a TestTier, with `options`. */
const plain = (options?: TieredCache.Options) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const l2 = yield* TestTier.make()
    return yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
  })

describe("the hard timeout on the live clock", () => {
  it.live(
    "without a stale value: a CacheTimeoutError at the timeout; the value is stored when computed",
    () =>
      Effect.gen(function* () {
        const cache = yield* plain()
        const computed = yield* Ref.make(false)
        const compute = Effect.sleep("300 millis").pipe(
          Effect.zipRight(Ref.set(computed, true)),
          Effect.as("v")
        )
        const start = Date.now()
        const exit = yield* Effect.exit(cache.getOrCompute("k", compute, { timeouts: { hard: "50 millis" } }))
        // Not before the timeout, and while the computation still runs.
        expect(Date.now() - start).toBeGreaterThanOrEqual(49)
        expect(yield* Ref.get(computed)).toBe(false)
        expect(exit).toEqual(Exit.fail(new CacheTimeoutError({ key: "k", timeoutMs: 50 })))
        expect((yield* cache.stats).timeouts).toBe(1)
        yield* Effect.sleep("400 millis")
        expect(yield* Ref.get(computed)).toBe(true)
        expect(yield* cache.get("k")).toEqual(Option.some("v"))
      }).pipe(Effect.scoped)
  )

  it.live("with a stale value: the stale value at the timeout", () =>
    Effect.gen(function* () {
      const cache = yield* plain({ staleWhileRevalidate: false })
      yield* cache.set("k", "old", { ttl: "1 millis", grace: "1 minute" })
      yield* Effect.sleep("5 millis")
      const value = yield* cache.getOrCompute("k", Effect.as(Effect.sleep("300 millis"), "new"), {
        timeouts: { hard: "50 millis" }
      })
      expect(value).toBe("old")
      const s = yield* cache.stats
      expect([s.timeouts, s.failSafeHits]).toEqual([1, 1])
    }).pipe(Effect.scoped)
  )

  it.live("200 waiters of one computation that ends in time all get its value; no timeout", () =>
    Effect.gen(function* () {
      const cache = yield* plain()
      const computations = yield* Ref.make(0)
      const compute = Effect.zipRight(
        Ref.update(computations, (n) => n + 1),
        Effect.as(Effect.sleep("20 millis"), 7)
      )
      const values = yield* Effect.forEach(
        Array.from({ length: 200 }),
        () => cache.getOrCompute("k", compute, { timeouts: { hard: "150 millis" } }),
        { concurrency: "unbounded" }
      )
      expect(values).toEqual(Array.from({ length: 200 }, () => 7))
      expect(yield* Ref.get(computations)).toBe(1)
      yield* Effect.sleep("200 millis")
      expect((yield* cache.stats).timeouts).toBe(0)
    }).pipe(Effect.scoped)
  )

  it.live("a waiter interrupted before the timeout leaves the others waiting", () =>
    Effect.gen(function* () {
      const cache = yield* plain()
      const compute = Effect.as(Effect.sleep("100 millis"), "v")
      const opts: TieredCache.ComputeOptions = { timeouts: { hard: "1 second" } }
      const first = yield* Effect.fork(cache.getOrCompute("k", compute, opts))
      const second = yield* Effect.fork(cache.getOrCompute("k", compute, opts))
      yield* Effect.sleep("20 millis")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(second))).toBe(true)
      expect(yield* Fiber.join(first)).toBe("v")
      expect((yield* cache.stats).timeouts).toBe(0)
    }).pipe(Effect.scoped)
  )
})

describe("the soft timeout on the live clock", () => {
  it.live(
    "a joining caller's soft timeout: the stale value at the timeout (a Node timer), for it alone",
    () =>
      Effect.gen(function* () {
        const cache = yield* plain({ staleWhileRevalidate: false })
        yield* cache.set("k", "old", { ttl: "1 millis", grace: "1 minute" })
        yield* Effect.sleep("5 millis")
        const slow = Effect.as(Effect.sleep("400 millis"), "new")
        const leader = yield* Effect.fork(cache.getOrCompute("k", slow))
        yield* Effect.sleep("20 millis")
        const start = Date.now()
        expect(yield* cache.getOrCompute("k", slow, { timeouts: { soft: "50 millis" } })).toBe("old")
        expect(Date.now() - start).toBeGreaterThanOrEqual(49)
        // The leader, which gave no soft timeout, waits for the computation.
        expect(yield* Fiber.join(leader)).toBe("new")
        yield* Effect.sleep("500 millis")
        expect(yield* cache.get("k")).toEqual(Option.some("new"))
      }).pipe(Effect.scoped)
  )
})

// A Node timer keeps at most 2^31 - 1 ms (about 24.8 days): a longer one fires at once. A timeout
// that long (a hard timeout or a tier timeout of a month: "never, in practice") must not cut a
// call after a millisecond on the live clock, where a timer stands in for the clock.
describe("a timeout longer than a Node timer keeps, on the live clock", () => {
  it.live("30 days: the hard timeout and the tier timeout wait for their call", () =>
    Effect.gen(function* () {
      const month = "30 days"
      const { cache, inner } = yield* build(
        (inner) => (key) => Effect.zipRight(Effect.sleep("30 millis"), inner.get(key)),
        month
      )
      yield* inner.set("k", Entry.make({ value: "in L2", now: Date.now(), ttlMs: 60_000 }))
      expect(yield* cache.get("k")).toEqual(Option.some("in L2"))
      const computed = cache.getOrCompute("c", Effect.as(Effect.sleep("30 millis"), "v"), {
        timeouts: { hard: month }
      })
      expect(yield* computed).toBe("v")
      const s = yield* cache.stats
      expect([s.tierErrors, s.timeouts]).toEqual([{}, 0])
    }).pipe(Effect.scoped)
  )
})

describe("a computation that fails with a CacheTimeoutError of its own", () => {
  const ownTimeout = new CacheTimeoutError({ key: "elsewhere", timeoutMs: 1 })
  const check = Effect.gen(function* () {
    const cache = yield* plain()
    yield* cache.set("k", "old", { ttl: "1 millis", grace: "1 minute" })
    const exit = yield* Effect.exit(
      cache.getOrCompute("other", Effect.fail(ownTimeout), { timeouts: { hard: "1 second" } })
    )
    // The computation's failure, not the wait's timeout: no timeout counted.
    expect(exit).toEqual(Exit.fail(ownTimeout))
    expect((yield* cache.stats).timeouts).toBe(0)
  }).pipe(Effect.scoped)
  it.live("is that failure on the live clock", () => check)
  it.effect("is that failure under TestClock", () => check)
})
