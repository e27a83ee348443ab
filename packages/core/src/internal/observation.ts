/**
 * What the cache shows of itself: request statistics, bus statistics, health, and the counters
 * pushed into Effect Metrics (every `metricsInterval`, on each `stats` read and on close).
 */
import { Effect, Schedule, type Scope } from "effect"
import type { CacheHealth, CacheStats, InvalidationStats } from "../CacheStats.js"
import { allAtOnce } from "./allAtOnce.js"
import type { Publisher } from "./bus.js"
import type { Counters } from "./counters.js"
import { makeFlusher } from "./metrics.js"
import type { Recovery } from "./replay.js"
import type { TierAccess } from "./tierAccess.js"

/** What observation needs. */
export interface Deps {
  readonly counters: Counters
  readonly access: TierAccess
  /** How many flights are under way (Flights.underWay). */
  readonly underWay: () => number
  readonly publisher: Publisher
  readonly recovery: Recovery
  readonly cacheName: string
  readonly metricsInterval: number
}

/** The cache's observation. */
export interface Observation {
  readonly stats: Effect.Effect<CacheStats>
  readonly invalidationStats: Effect.Effect<InvalidationStats>
  readonly health: Effect.Effect<CacheHealth>
}

/** Builds the observation; pushes the metrics in a fiber of the scope and on close. */
export const make = (deps: Deps): Effect.Effect<Observation, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { counters: c, access, underWay, publisher } = deps
    const snapshot = (): CacheStats => {
      const lowerHits = c.lowerHits.reduce((a, b) => a + b, 0)
      const requests = c.l1Hits + lowerHits + c.coalesced + c.misses
      return {
        requests,
        l1Hits: c.l1Hits,
        l2Hits: c.lowerHits[0] ?? 0,
        tierHits: [...c.lowerHits],
        coalesced: c.coalesced,
        misses: c.misses,
        hitRate: requests === 0 ? 0 : (c.l1Hits + lowerHits) / requests,
        l1HitRate: requests === 0 ? 0 : c.l1Hits / requests,
        promotions: c.promotions,
        computations: c.computations,
        computeErrors: c.computeErrors,
        decodeErrors: c.decodeErrors,
        tierErrors: Object.fromEntries(c.tierErrors),
        writeFailures: c.writeFailures,
        discardedWrites: c.discardedWrites,
        staleServed: c.staleServed,
        failSafeHits: c.failSafeHits,
        timeouts: c.timeouts,
        breakerRejections: c.breakerRejections,
        breakers: Object.fromEntries(
          (access.guards ?? []).map((tier, i) => [access.labels[i + 1]!, tier.state()] as const)
        ),
        inFlight: underWay(),
        pendingChanges: deps.recovery.pending(),
        replayedChanges: c.replayed,
        recoveryClears: c.recoveryClears
      }
    }
    const busSnapshot = (): InvalidationStats => ({
      enabled: publisher.enabled,
      messagesSent: c.bus.sent,
      publishFailures: c.bus.publishFailures,
      publishesSkipped: c.bus.skipped,
      breaker: publisher.breakerState(),
      messagesReceived: c.bus.received,
      ownMessagesIgnored: c.bus.own,
      malformedMessages: c.bus.malformed,
      messagesApplied: c.bus.applied,
      resyncs: c.bus.resyncs
    })

    const { flush, release } = makeFlusher(deps.cacheName)
    const flushMetrics = Effect.suspend(() => flush(snapshot(), busSnapshot()))
    yield* Effect.forkScoped(Effect.repeat(flushMetrics, Schedule.spaced(deps.metricsInterval)))
    // On close: the last counts, then this cache leaves the gauges it shares with caches of its name.
    yield* Effect.addFinalizer(() => Effect.zipRight(flushMetrics, release))

    const tiers = [access.l1, ...access.lower]
    return {
      stats: Effect.suspend(() => {
        const s = snapshot()
        return Effect.as(flush(s, busSnapshot()), s)
      }),
      invalidationStats: Effect.sync(busSnapshot),
      health: Effect.map(
        allAtOnce(tiers, (tier) => tier.health),
        (health) => ({
          status: !health[0]!.healthy ? "unhealthy" : health.every((t) => t.healthy) ? "healthy" : "degraded",
          tiers: health,
          bus: publisher.enabled
        })
      )
    }
  })
