import { describe, expect, it } from "@effect/vitest"
import { CacheMetrics, MemoryTier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Layer, Metric } from "effect"

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
