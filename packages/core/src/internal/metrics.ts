import { Effect, Metric } from "effect"
import { breakerOpen, busMessages, events, inFlight, requests, tierErrors } from "../CacheMetrics.js"
import type { CacheStats, InvalidationStats } from "../CacheStats.js"

/**
 * Pushes the growth of the plain counters since the last flush into Effect Metrics, tagged by
 * cache name. The hit path only bumps plain numbers; this runs when stats are read and
 * periodically.
 *
 * @internal
 */
export const makeFlusher = (cacheName: string) => {
  const last = new Map<string, number>()
  const delta = (id: string, value: number) => {
    const d = value - (last.get(id) ?? 0)
    last.set(id, value)
    return d
  }
  const ids = new Map<Metric.Metric.Counter<number>, string>([
    [requests, "requests"],
    [events, "events"],
    [tierErrors, "tierErrors"],
    [busMessages, "busMessages"]
  ])
  const bump = (metric: Metric.Metric.Counter<number>, tag: string, value: string, total: number) => {
    const d = delta(`${ids.get(metric)}:${tag}:${value}`, total)
    return d === 0
      ? Effect.void
      : Metric.incrementBy(metric.pipe(Metric.tagged("cache", cacheName), Metric.tagged(tag, value)), d)
  }
  return (s: CacheStats, b: InvalidationStats): Effect.Effect<void> =>
    Effect.all(
      [
        bump(requests, "outcome", "l1_hit", s.l1Hits),
        ...s.tierHits.map((n, i) => bump(requests, "outcome", `l${i + 2}_hit`, n)),
        bump(requests, "outcome", "coalesced", s.coalesced),
        bump(requests, "outcome", "miss", s.misses),
        bump(events, "kind", "promotion", s.promotions),
        bump(events, "kind", "computation", s.computations),
        bump(events, "kind", "compute_error", s.computeErrors),
        bump(events, "kind", "decode_error", s.decodeErrors),
        bump(events, "kind", "write_failure", s.writeFailures),
        bump(events, "kind", "discarded_write", s.discardedWrites),
        bump(events, "kind", "stale_served", s.staleServed),
        bump(events, "kind", "fail_safe", s.failSafeHits),
        bump(events, "kind", "timeout", s.timeouts),
        bump(events, "kind", "breaker_rejection", s.breakerRejections),
        ...Object.entries(s.tierErrors).map(([tier, n]) => bump(tierErrors, "tier", tier, n)),
        bump(busMessages, "kind", "sent", b.messagesSent),
        bump(busMessages, "kind", "publish_failure", b.publishFailures),
        bump(busMessages, "kind", "publish_skipped", b.publishesSkipped),
        bump(busMessages, "kind", "received", b.messagesReceived),
        bump(busMessages, "kind", "own", b.ownMessagesIgnored),
        bump(busMessages, "kind", "malformed", b.malformedMessages),
        bump(busMessages, "kind", "applied", b.messagesApplied),
        bump(busMessages, "kind", "resync", b.resyncs),
        Metric.set(inFlight.pipe(Metric.tagged("cache", cacheName)), s.inFlight),
        ...Object.entries(s.breakers).map(([tier, state]) =>
          Metric.set(
            breakerOpen.pipe(Metric.tagged("cache", cacheName), Metric.tagged("tier", tier)),
            state === "closed" ? 0 : 1
          )
        )
      ],
      { discard: true }
    )
}
