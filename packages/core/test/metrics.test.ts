import { describe, expect, it } from "@effect/vitest"
import { CacheMetrics, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Exit, Fiber, Layer, Metric, Scope, TestClock } from "effect"

const metricsByName = {
  tiercache_requests_total: CacheMetrics.requests,
  tiercache_events_total: CacheMetrics.events
} as const

const count = (name: keyof typeof metricsByName, tags: Record<string, string>) =>
  Effect.map(
    Metric.value(
      Object.entries(tags).reduce((m, [k, v]) => m.pipe(Metric.tagged(k, v)), metricsByName[name])
    ),
    (state) => state.count
  )

describe("Effect metrics", () => {
  it.scoped("the counters reach Effect Metrics, tagged by cache and outcome, when stats are read", () =>
    Effect.gen(function* () {
      const name = `metrics-${Math.random().toString(36).slice(2)}`
      const cache = yield* TieredCache.make({ name }).pipe(
        Effect.provide(Layer.merge(MemoryTier.layer({ maxEntries: 10 }), TestTier.layer()))
      )
      yield* cache.getOrCompute("a", Effect.succeed(1)) // miss + computation
      yield* cache.get("a") // L1 hit
      yield* cache.get("a") // L1 hit
      yield* cache.get("b") // miss
      expect(yield* count("tiercache_requests_total", { cache: name, outcome: "l1_hit" })).toBe(0)
      const s = yield* cache.stats
      expect(yield* count("tiercache_requests_total", { cache: name, outcome: "l1_hit" })).toBe(s.l1Hits)
      expect(yield* count("tiercache_requests_total", { cache: name, outcome: "miss" })).toBe(2)
      expect(yield* count("tiercache_events_total", { cache: name, kind: "computation" })).toBe(1)
      // Deltas, not totals: reading stats again adds nothing new.
      yield* cache.stats
      expect(yield* count("tiercache_requests_total", { cache: name, outcome: "l1_hit" })).toBe(2)
      yield* cache.get("a")
      yield* cache.stats
      expect(yield* count("tiercache_requests_total", { cache: name, outcome: "l1_hit" })).toBe(3)
    })
  )
})

describe("Effect metrics without a stats read", () => {
  // README (Statistics): they reach Effect Metrics "when `stats` is read, every `metricsInterval`
  // and at close"; only the first was tested.
  it.scoped("are pushed every metricsInterval of the cache's clock, and at close", () =>
    Effect.gen(function* () {
      const name = `interval-${Math.random().toString(36).slice(2)}`
      const scope = yield* Scope.make()
      const cache = yield* TieredCache.make({ name, metricsInterval: "1 second" }).pipe(
        Effect.provide(Layer.merge(MemoryTier.layer({ maxEntries: 10 }), TestTier.layer())),
        Scope.extend(scope)
      )
      const misses = count("tiercache_requests_total", { cache: name, outcome: "miss" })
      yield* cache.get("a")
      yield* TestClock.adjust("999 millis")
      expect(yield* misses).toBe(0)
      yield* TestClock.adjust("1 millis")
      expect(yield* misses).toBe(1)
      yield* cache.get("b")
      yield* cache.get("c")
      yield* TestClock.adjust("999 millis")
      expect(yield* misses).toBe(1)
      yield* Scope.close(scope, Exit.void)
      expect(yield* misses).toBe(3)
    })
  )
})

/**
 * Caches of one process that share a name share its metric series (documented: their metrics add
 * up). The counters did; the gauges did not: each cache set them to its own value on each flush,
 * so the series showed whichever cache flushed last (in flight 0 while the other cache computed,
 * a breaker shown closed while the other cache's was open).
 */
describe("caches sharing a name", () => {
  const gauge = (metric: typeof CacheMetrics.inFlight, tags: Record<string, string>) =>
    Effect.map(
      Metric.value(Object.entries(tags).reduce((m, [k, v]) => m.pipe(Metric.tagged(k, v)), metric)),
      (state) => state.value
    )

  it.scoped("add up their gauges too: computations in flight summed, a breaker open while any is", () =>
    Effect.gen(function* () {
      const name = `shared-${Math.random().toString(36).slice(2)}`
      const store = yield* TestTier.make()
      const broken = yield* TestTier.make()
      const scopeB = yield* Scope.make()
      const instance = (l2: Tier.Tier.Service) =>
        Effect.flatMap(MemoryTier.make({ maxEntries: 10 }), (l1) =>
          TieredCache.make({ name, breaker: { failureThreshold: 1, openFor: "1 hour" } }).pipe(
            Effect.provideService(Tier.L1, l1),
            Effect.provideService(Tier.L2, l2)
          )
        )
      const a = yield* instance(store)
      const b = yield* Scope.extend(instance(broken), scopeB)
      // a computes (in flight until the clock moves); b's L2 fails once: its breaker opens.
      const computing = yield* Effect.fork(a.getOrCompute("k", Effect.as(TestClock.sleep(100), 1)))
      yield* Effect.yieldNow()
      yield* broken.failOn(["get"])
      yield* b.get("x")
      yield* a.stats
      yield* b.stats
      expect([(yield* a.stats).inFlight, (yield* b.stats).inFlight]).toEqual([1, 0])
      expect((yield* b.stats).breakers).toEqual({ test: "open" })
      expect(yield* gauge(CacheMetrics.inFlight, { cache: name })).toBe(1)
      expect(yield* gauge(CacheMetrics.breakerOpen, { cache: name, tier: "test" })).toBe(1)
      // The counters add up, as before.
      expect(yield* count("tiercache_requests_total", { cache: name, outcome: "miss" })).toBe(2)
      // b closes: what it reported leaves the series.
      yield* Scope.close(scopeB, Exit.void)
      yield* a.stats
      expect(yield* gauge(CacheMetrics.breakerOpen, { cache: name, tier: "test" })).toBe(0)
      expect(yield* gauge(CacheMetrics.inFlight, { cache: name })).toBe(1)
      yield* TestClock.adjust(100)
      yield* Fiber.join(computing)
      yield* a.stats
      expect(yield* gauge(CacheMetrics.inFlight, { cache: name })).toBe(0)
    })
  )
})
