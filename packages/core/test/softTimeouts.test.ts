import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { Effect, Exit, Fiber, Option, Schema, TestClock } from "effect"

// README (Semantics, Computation timeouts): each timeout "bounds the caller that gave it (or
// every caller, given to the cache), counted from its call, a slow read of the lower tiers
// included. Past its `soft`, a caller gets the stale value if one exists ... The other callers
// of the same computation, a caller that joins it later included, wait on for its value, each
// bounded by its own timeouts". A caller's soft timeout answered every waiter of the computation
// with the stale value: a caller that gave no soft timeout, or a longer one, got a stale value
// early because another caller passed a short one on its own call.

const build = (options?: TieredCache.Options, l2?: Tier.Tier.Service) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const inner = yield* TestTier.make()
    const cache = yield* TieredCache.make({ staleWhileRevalidate: false, ...options }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2 ?? inner)
    )
    return cache
  })

/** Lets forked fibers run until they block. */
const settle = Effect.forEach(Array.from({ length: 20 }), () => Effect.yieldNow(), { discard: true })

/** A computation of `ms` on the clock answering `value`. */
const slow = <A>(value: A, ms: number) => Effect.as(Effect.sleep(ms), value)

/** Puts "v1" under "k" for a second with an hour's grace, then moves the clock past it: "k" is stale. */
const staleV1 = (cache: TieredCache.TieredCache.Service) =>
  Effect.zipRight(cache.set("k", "v1", { ttl: "1 second", grace: "1 hour" }), TestClock.adjust("1 second"))

/** A cache whose only copy of "k" is a stale one in L2, whose reads answer in 900 ms. */
const staleInSlowL2 = Effect.gen(function* () {
  const inner = yield* TestTier.make()
  const l2 = yield* ChaosTier.wrap(inner)
  const cache = yield* build({}, l2)
  yield* inner.plant("k", Entry.make({ value: "v1 in L2", now: 0, ttlMs: 1000, graceMs: 3_600_000 }))
  yield* TestClock.adjust("1 second")
  yield* l2.delay("get", "900 millis")
  return cache
})

const soft = (ms: number): TieredCache.ComputeOptions => ({ timeouts: { soft: `${ms} millis` } })

/** The statistics a test of one computation checks. */
const counts = (cache: TieredCache.TieredCache.Service) =>
  Effect.map(cache.stats, (s) => ({
    requests: s.requests,
    misses: s.misses,
    coalesced: s.coalesced,
    staleServed: s.staleServed,
    failSafeHits: s.failSafeHits,
    timeouts: s.timeouts,
    computations: s.computations
  }))

const oneComputation = { requests: 2, misses: 1, coalesced: 1, failSafeHits: 0, timeouts: 0, computations: 1 }

describe("a caller's soft timeout answers that caller only (TestClock)", () => {
  it.scoped(
    "a joiner's soft timeout: it gets the stale value; the first caller, without one, the computed value",
    () =>
      Effect.gen(function* () {
        const cache = yield* build()
        yield* staleV1(cache)
        const first = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 200)))
        yield* settle
        const joiner = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 200), soft(10)))
        yield* settle
        yield* TestClock.adjust("9 millis")
        expect(joiner.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        yield* settle
        expect(joiner.unsafePoll()).toEqual(Exit.succeed("v1"))
        expect(first.unsafePoll()).toBeNull()
        yield* TestClock.adjust("189 millis")
        yield* settle
        expect(first.unsafePoll()).toBeNull()
        yield* TestClock.adjust("1 millis")
        expect(yield* Fiber.join(first)).toBe("v2")
        expect(yield* cache.get("k")).toEqual(Option.some("v2"))
        expect(yield* counts(cache)).toEqual({ ...oneComputation, requests: 3, staleServed: 1 })
      })
  )

  it.scoped(
    "the first caller's soft timeout: it gets the stale value; joiners without one, the computed value",
    () =>
      Effect.gen(function* () {
        const cache = yield* build()
        yield* staleV1(cache)
        const first = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 200), soft(10)))
        yield* settle
        const before = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 200)))
        const longer = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 200), soft(150)))
        yield* settle
        yield* TestClock.adjust("10 millis")
        yield* settle
        expect(first.unsafePoll()).toEqual(Exit.succeed("v1"))
        expect([before.unsafePoll(), longer.unsafePoll()]).toEqual([null, null])
        // A caller that joins once the first was answered stale waits for the computation too,
        // bounded by its own soft timeout.
        const after = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 200)))
        const afterSoft = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 200), soft(20)))
        yield* settle
        yield* TestClock.adjust("20 millis")
        yield* settle
        expect(afterSoft.unsafePoll()).toEqual(Exit.succeed("v1"))
        expect([before.unsafePoll(), longer.unsafePoll(), after.unsafePoll()]).toEqual([null, null, null])
        // 150 ms: the longer soft timeout.
        yield* TestClock.adjust("120 millis")
        yield* settle
        expect(longer.unsafePoll()).toEqual(Exit.succeed("v1"))
        expect([before.unsafePoll(), after.unsafePoll()]).toEqual([null, null])
        yield* TestClock.adjust("50 millis")
        expect([yield* Fiber.join(before), yield* Fiber.join(after)]).toEqual(["v2", "v2"])
        // staleServed counts the computation once, however many callers its soft timeouts answered.
        expect(yield* counts(cache)).toEqual({ ...oneComputation, requests: 5, coalesced: 4, staleServed: 1 })
      })
  )

  it.scoped("a cache's soft timeout: each caller answered at its own, counted from its call", () =>
    Effect.gen(function* () {
      const cache = yield* build({ timeouts: { soft: "100 millis" } })
      yield* staleV1(cache)
      const first = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 1000)))
      yield* settle
      yield* TestClock.adjust("50 millis")
      const second = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 1000)))
      yield* settle
      yield* TestClock.adjust("50 millis")
      yield* settle
      expect([first.unsafePoll(), second.unsafePoll()]).toEqual([Exit.succeed("v1"), null])
      yield* TestClock.adjust("49 millis")
      yield* settle
      expect(second.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      yield* settle
      expect(second.unsafePoll()).toEqual(Exit.succeed("v1"))
      yield* TestClock.adjust("850 millis")
      yield* settle
      expect(yield* cache.get("k")).toEqual(Option.some("v2"))
      expect(yield* counts(cache)).toEqual({ ...oneComputation, requests: 3, staleServed: 1 })
    })
  )

  it.scoped(
    "a soft timeout that passes during a slow lookup answers its caller alone, once the lookup ends",
    () =>
      Effect.gen(function* () {
        const cache = yield* staleInSlowL2
        const first = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 1000), soft(100)))
        yield* settle
        const plain = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 1000)))
        const shortSoft = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 1000), soft(50)))
        const longSoft = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 1000), soft(1000)))
        yield* settle
        yield* TestClock.adjust("899 millis")
        yield* settle
        expect([first, plain, shortSoft, longSoft].map((f) => f.unsafePoll())).toEqual([
          null,
          null,
          null,
          null
        ])
        // 900 ms: the lookup ends with the stale copy; the two soft timeouts that passed answer.
        yield* TestClock.adjust("1 millis")
        yield* settle
        expect([first, shortSoft].map((f) => f.unsafePoll())).toEqual([
          Exit.succeed("v1 in L2"),
          Exit.succeed("v1 in L2")
        ])
        expect([plain.unsafePoll(), longSoft.unsafePoll()]).toEqual([null, null])
        // 1000 ms: the longer soft timeout.
        yield* TestClock.adjust("100 millis")
        yield* settle
        expect(longSoft.unsafePoll()).toEqual(Exit.succeed("v1 in L2"))
        expect(plain.unsafePoll()).toBeNull()
        // 1900 ms: the computation.
        yield* TestClock.adjust("900 millis")
        expect(yield* Fiber.join(plain)).toBe("v2")
        expect(yield* counts(cache)).toEqual({ ...oneComputation, requests: 4, coalesced: 3, staleServed: 1 })
      })
  )

  it.scoped(
    "a caller interrupted after its soft timeout passed during a slow lookup is not served stale",
    () =>
      Effect.gen(function* () {
        const cache = yield* staleInSlowL2
        const gone = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 1000), soft(100)))
        yield* settle
        const plain = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 1000)))
        yield* settle
        // Its soft timeout passes while the lookup is under way; then it leaves.
        yield* TestClock.adjust("100 millis")
        yield* settle
        yield* Fiber.interrupt(gone)
        // The lookup ends with the stale copy: nobody is left to take it, nothing counts it.
        yield* TestClock.adjust("800 millis")
        yield* settle
        yield* TestClock.adjust("1 second")
        expect(yield* Fiber.join(plain)).toBe("v2")
        expect((yield* counts(cache)).staleServed).toBe(0)
      })
  )

  it.scoped("a stale copy in L1 answers a caller's soft timeout during a slow lookup; the others wait", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make()
      const l2 = yield* ChaosTier.wrap(inner)
      const cache = yield* build({}, l2)
      yield* staleV1(cache)
      yield* l2.delay("get", "900 millis")
      const first = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 1000)))
      yield* settle
      const joiner = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 1000), soft(100)))
      yield* settle
      yield* TestClock.adjust("100 millis")
      yield* settle
      expect([joiner.unsafePoll(), first.unsafePoll()]).toEqual([Exit.succeed("v1"), null])
      yield* TestClock.adjust("1800 millis")
      expect(yield* Fiber.join(first)).toBe("v2")
      expect(yield* counts(cache)).toEqual({ ...oneComputation, staleServed: 1 })
    })
  )

  it.scoped("a joiner of another schema: the stale value if it decodes for it, else the computed value", () =>
    Effect.gen(function* () {
      const cache = yield* build()
      yield* staleV1(cache)
      const first = yield* Effect.fork(cache.getOrCompute("k", slow(2, 200)))
      yield* settle
      const asString = yield* Effect.fork(
        cache.getOrComputeTyped("k", Schema.String, slow("v3", 200), soft(10))
      )
      const asNumber = yield* Effect.fork(cache.getOrComputeTyped("k", Schema.Number, slow(3, 200), soft(10)))
      yield* settle
      yield* TestClock.adjust("10 millis")
      yield* settle
      expect([asString.unsafePoll(), asNumber.unsafePoll(), first.unsafePoll()]).toEqual([
        Exit.succeed("v1"),
        null,
        null
      ])
      yield* TestClock.adjust("190 millis")
      expect([yield* Fiber.join(first), yield* Fiber.join(asNumber)]).toEqual([2, 2])
      expect(yield* counts(cache)).toEqual({ ...oneComputation, requests: 3, coalesced: 2, staleServed: 1 })
    })
  )

  it.scoped("a caller that left before its soft timeout is answered nothing and counted nothing", () =>
    Effect.gen(function* () {
      const cache = yield* build()
      yield* staleV1(cache)
      const first = yield* Effect.fork(cache.getOrCompute("k", slow("v2", 200)))
      yield* settle
      const leaving = yield* Effect.fork(cache.getOrCompute("k", slow("v3", 200), soft(100)))
      yield* settle
      yield* TestClock.adjust("50 millis")
      yield* Fiber.interrupt(leaving)
      yield* TestClock.adjust("150 millis")
      expect(yield* Fiber.join(first)).toBe("v2")
      expect(yield* counts(cache)).toEqual({ ...oneComputation, staleServed: 0 })
    })
  )
})

describe("a caller's soft timeout answers that caller only (live clock)", () => {
  const live = Effect.gen(function* () {
    const cache = yield* build()
    yield* cache.set("k", "v1", { ttl: "1 millis", grace: "1 minute" })
    yield* Effect.sleep("5 millis")
    return cache
  })
  /** How long `effect` takes, in ms of real time, and its answer. */
  const timed = <A, E>(effect: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      const start = Date.now()
      return Effect.map(effect, (a) => [a, Date.now() - start] as const)
    })

  it.live("a joiner's soft timeout answers it at its time; the first caller gets the computed value", () =>
    Effect.gen(function* () {
      const cache = yield* live
      const first = yield* Effect.fork(timed(cache.getOrCompute("k", slow("v2", 200))))
      yield* Effect.sleep("20 millis")
      const [joined, took] = yield* timed(cache.getOrCompute("k", slow("v3", 200), soft(10)))
      expect(joined).toBe("v1")
      expect(took).toBeGreaterThanOrEqual(9)
      expect(took).toBeLessThan(150)
      const [computed, firstTook] = yield* Fiber.join(first)
      expect(computed).toBe("v2")
      expect(firstTook).toBeGreaterThanOrEqual(199)
      expect(yield* counts(cache)).toEqual({ ...oneComputation, staleServed: 1 })
    }).pipe(Effect.scoped)
  )

  it.live("the first caller's soft timeout answers it; a joiner without one gets the computed value", () =>
    Effect.gen(function* () {
      const cache = yield* live
      const first = yield* Effect.fork(timed(cache.getOrCompute("k", slow("v2", 200), soft(10))))
      yield* Effect.sleep("1 millis")
      const [joined, took] = yield* timed(cache.getOrCompute("k", slow("v3", 200)))
      const [stale, firstTook] = yield* Fiber.join(first)
      expect(stale).toBe("v1")
      expect(firstTook).toBeGreaterThanOrEqual(9)
      expect(firstTook).toBeLessThan(150)
      expect(joined).toBe("v2")
      expect(took).toBeGreaterThanOrEqual(150)
      expect(yield* counts(cache)).toEqual({ ...oneComputation, staleServed: 1 })
    }).pipe(Effect.scoped)
  )

  it.live("a cache's soft timeout: two callers, each answered at its own time", () =>
    Effect.gen(function* () {
      const cache = yield* build({ timeouts: { soft: "60 millis" } })
      yield* cache.set("k", "v1", { ttl: "1 millis", grace: "1 minute" })
      yield* Effect.sleep("5 millis")
      const start = Date.now()
      const answeredAt = (effect: Effect.Effect<string, unknown>) =>
        Effect.map(effect, (a) => [a, Date.now() - start] as const)
      const first = yield* Effect.fork(answeredAt(cache.getOrCompute("k", slow("v2", 400))))
      yield* Effect.sleep("40 millis")
      const second = yield* Effect.fork(answeredAt(cache.getOrCompute("k", slow("v3", 400))))
      const [a, atA] = yield* Fiber.join(first)
      const [b, atB] = yield* Fiber.join(second)
      expect([a, b]).toEqual(["v1", "v1"])
      expect(atA).toBeGreaterThanOrEqual(59)
      // The second caller's own soft timeout: 60 ms from its call, at 100 ms or later.
      expect(atB).toBeGreaterThanOrEqual(99)
      expect(atB).toBeLessThan(350)
      expect(yield* counts(cache)).toEqual({ ...oneComputation, staleServed: 1 })
    }).pipe(Effect.scoped)
  )
})
