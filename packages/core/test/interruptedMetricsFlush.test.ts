/**
 * A `stats` read pushes the counters' growth into Effect Metrics (README, Observability). A
 * caller interrupted while that push was under way (a timeout or a race around `stats`, as a
 * `/metrics` handler may have) must not lose counts: the metrics must agree with `stats` once
 * it is read again.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheMetrics, MemoryTier, TieredCache } from "@tiercache/core"
import { Interruptions, TestTier } from "@tiercache/testing"
import { Effect, Layer, Metric } from "effect"

const counter = (metric: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
  Effect.map(
    Metric.value(Object.entries(tags).reduce((m, [k, v]) => m.pipe(Metric.tagged(k, v)), metric)),
    (state) => state.count
  )

describe("a stats read interrupted while it pushes the metrics", () => {
  it.scoped("loses no counts: the metrics agree with stats once read again", () =>
    Effect.gen(function* () {
      const name = `interrupted-flush-${Math.random().toString(36).slice(2)}`
      const cache = yield* TieredCache.make({ name }).pipe(
        Effect.provide(Layer.merge(MemoryTier.layer({ maxEntries: 100 }), TestTier.layer()))
      )
      const agree = Effect.gen(function* () {
        const s = yield* cache.stats
        const figures = [
          [yield* counter(CacheMetrics.requests, { cache: name, outcome: "l1_hit" }), s.l1Hits],
          [yield* counter(CacheMetrics.requests, { cache: name, outcome: "miss" }), s.misses],
          [yield* counter(CacheMetrics.events, { cache: name, kind: "computation" }), s.computations]
        ]
        return figures.every(([metric, stat]) => metric === stat)
      })
      const result = yield* Interruptions.atEachStep(
        (_run, padding) => Effect.zipRight(padding, cache.stats),
        () => agree,
        {
          // Every run has new counts to push: a miss, a computation, a hit.
          // Enough waits that the last runs complete before the interruption comes.
          waits: 64,
          pads: 4,
          prepare: (run) =>
            Effect.zipRight(cache.getOrCompute(`k${run}`, Effect.succeed(1)), cache.get(`k${run}`))
        }
      )
      expect(result.interrupted).toBeGreaterThan(0)
      expect(result.completed).toBeGreaterThan(0)
      expect(result.failed).toEqual([])
    })
  )
})
