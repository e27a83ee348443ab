/**
 * The Effect Metrics a TieredCache reports, each tagged with `cache` (the cache's name). The
 * hit path only bumps plain numbers; they reach these metrics when `stats` is read, every
 * `metricsInterval`, and when the cache closes. `foreignValues` is the tiers' own: a tier
 * counts it as it reads, tagged with its name.
 *
 * @since 0.1.0
 */
import { Metric } from "effect"

/**
 * Reads, by `outcome`: `l1_hit`, `l2_hit`, `l3_hit`..., `coalesced`, `miss`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const requests = Metric.counter("tiercache_requests_total", {
  description: "Cache reads, by outcome (l1_hit, l2_hit, l3_hit..., coalesced, miss)",
  incremental: true
})
/**
 * Events, by `kind`: `promotion`, `computation`, `compute_error`, `decode_error`, `write_failure`, `discarded_write`, `stale_served`, `fail_safe`, `timeout`, `breaker_rejection`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const events = Metric.counter("tiercache_events_total", {
  description: "Cache events, by kind (promotion, computation, compute_error, decode_error, ...)",
  incremental: true
})
/**
 * Failed tier operations, by `tier`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const tierErrors = Metric.counter("tiercache_tier_errors_total", {
  description: "Failed tier operations, by tier",
  incremental: true
})
/**
 * Bus traffic, by `kind`: `sent`, `publish_failure`, `publish_skipped`, `received`, `own`, `malformed`, `applied`, `resync`.
 *
 * @category metrics
 * @since 0.1.0
 */
export const busMessages = Metric.counter("tiercache_bus_messages_total", {
  description:
    "Invalidation bus traffic, by kind (sent, received, own, malformed, applied, publish_failure, resync)",
  incremental: true
})
/**
 * Computations under way (summed over the open caches that share the name).
 *
 * @category metrics
 * @since 0.1.0
 */
export const inFlight = Metric.gauge("tiercache_in_flight", { description: "Computations under way" })
/**
 * 1 while a tier's (`tier`) circuit breaker is open or half-open, in any open cache that shares
 * the name, else 0.
 *
 * @category metrics
 * @since 0.1.0
 */
export const breakerOpen = Metric.gauge("tiercache_breaker_open", {
  description: "1 while a tier's circuit breaker is open or half-open, else 0"
})
/**
 * Values a tier's reads found under its namespace that are no cache entry (foreign JSON, a plain
 * string, a Redis hash or list...), read as misses, by `tier` (the tier's name): counted by
 * RedisTier and KeyValueStoreTier on each read that meets one (every key of a `getMany` that
 * holds one counts once, and so does the read `writeIfNewer` makes of a key it overwrites), not
 * by the cache (an L1 hit never reaches a tier). A value that is an
 * entry but does not decode with the reader's Schema is the cache's `decode_error` instead.
 *
 * @category metrics
 * @since 0.2.0
 */
export const foreignValues = Metric.counter("tiercache_tier_foreign_values_total", {
  description: "Values under a tier's namespace that are no cache entry, read as misses, by tier",
  incremental: true
})
