/**
 * README (Observability): the counters reach the Effect Metrics "when `stats` is read, every
 * `metricsInterval` and when the cache closes". A bus message that arrived as the cache closed
 * was counted in `invalidationStats` after that last push, so the metrics never had it.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheMetrics, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Effect, Exit, Metric, Scope } from "effect"

const busSeries = (cache: string, kind: string) =>
  Effect.map(
    Metric.value(CacheMetrics.busMessages.pipe(Metric.tagged("cache", cache), Metric.tagged("kind", kind))),
    (state) => state.count
  )

describe("the metrics pushed when the cache closes", () => {
  it.scoped("agree with invalidationStats about a bus message that arrived as it closed", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const name = `at-close-${Math.random().toString(36).slice(2)}`
      const scope = yield* Scope.make()
      const cache = yield* TieredCache.make({ name }).pipe(
        Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 10 })),
        Effect.provideService(Tier.L2, yield* TestTier.make()),
        Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub)),
        Scope.extend(scope)
      )
      while ((yield* hub.subscribers) === 0) yield* Effect.yieldNow()
      // Published, and the cache closed before its subscriber has had a turn to take it.
      yield* hub.publishRaw("not a message")
      yield* Scope.close(scope, Exit.void)
      const stats = yield* cache.invalidationStats
      // Taken before the subscriber stopped (counted) or not at all: the metrics say the same.
      expect([yield* busSeries(name, "received"), yield* busSeries(name, "malformed")]).toEqual([
        stats.messagesReceived,
        stats.malformedMessages
      ])
    })
  )
})
