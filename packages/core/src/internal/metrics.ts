import { Effect, Metric } from "effect"
import { breakerOpen, busMessages, events, inFlight, requests, tierErrors } from "../CacheMetrics.js"
import type { CacheStats, InvalidationStats } from "../CacheStats.js"

/**
 * What each cache last reported to a gauge series, by series (the cache's name and the gauge's
 * tags): caches of one process that share a name share its series, and their gauges add up as
 * their counters do (a count summed, a breaker's state taken as open while any cache's is).
 */
const gaugeShares = new Map<string, Map<object, number>>()

/** The series `id`'s value once `owner` reports `value` (undefined: it leaves the series). */
const shareOf = (id: string, owner: object, value: number | undefined, combine: "sum" | "max"): number => {
  let shares = gaugeShares.get(id)
  if (shares === undefined) {
    shares = new Map()
    gaugeShares.set(id, shares)
  }
  if (value === undefined) shares.delete(owner)
  else shares.set(owner, value)
  if (shares.size === 0) gaugeShares.delete(id)
  let total = 0
  for (const v of shares.values()) total = combine === "sum" ? total + v : Math.max(total, v)
  return total
}

/** A cache's metrics flush, and its leaving of the gauge series it reported to (on close). */
export interface Flusher {
  readonly flush: (s: CacheStats, b: InvalidationStats) => Effect.Effect<void>
  readonly release: Effect.Effect<void>
}

/**
 * Pushes the growth of the plain counters since the last flush into Effect Metrics, tagged by
 * cache name, and sets the gauges to what every open cache of that name reports. The hit path
 * only bumps plain numbers; this runs when stats are read, periodically and on close.
 *
 * @internal
 */
export const makeFlusher = (cacheName: string): Flusher => {
  const owner = {}
  let released = false
  /** The gauge series this cache reported to, with how their shares combine. */
  const reported = new Map<
    string,
    { readonly gauge: Metric.Metric.Gauge<number>; readonly combine: "sum" | "max" }
  >()
  const setGauge = (
    id: string,
    gauge: Metric.Metric.Gauge<number>,
    combine: "sum" | "max",
    value: number | undefined
  ) =>
    // Combined when set, not when the flush is built: another cache's flush may come between.
    Effect.suspend(() => {
      // A flush after the release (a periodic one ending as the cache closes) is not reported.
      if (released && value !== undefined) return Effect.void
      if (value !== undefined) reported.set(id, { gauge, combine })
      return Metric.set(gauge, shareOf(`${cacheName}\u0000${id}`, owner, value, combine))
    })
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
  // The growth is taken when its increment runs, not when the flush is built, and a flush runs
  // whole (uninterruptible): a caller of `stats` interrupted meanwhile loses no counts.
  const bump = (metric: Metric.Metric.Counter<number>, tag: string, value: string, total: number) =>
    Effect.suspend(() => {
      const d = delta(`${ids.get(metric)}:${tag}:${value}`, total)
      return d === 0
        ? Effect.void
        : Metric.incrementBy(metric.pipe(Metric.tagged("cache", cacheName), Metric.tagged(tag, value)), d)
    })
  const flush = (s: CacheStats, b: InvalidationStats): Effect.Effect<void> =>
    Effect.uninterruptible(
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
          setGauge("inFlight", inFlight.pipe(Metric.tagged("cache", cacheName)), "sum", s.inFlight),
          ...Object.entries(s.breakers).map(([tier, state]) =>
            setGauge(
              `breaker\u0000${tier}`,
              breakerOpen.pipe(Metric.tagged("cache", cacheName), Metric.tagged("tier", tier)),
              "max",
              state === "closed" ? 0 : 1
            )
          )
        ],
        { discard: true }
      )
    )
  const release = Effect.suspend(() => {
    released = true
    const left = [...reported]
    reported.clear()
    return Effect.forEach(left, ([id, { gauge, combine }]) => setGauge(id, gauge, combine, undefined), {
      discard: true
    })
  })
  return { flush, release }
}
