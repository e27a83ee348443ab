/**
 * tiercache's core: the cache service, the tier contract, the default L1 and the bus protocol.
 * `KeyValueStoreTier` (which needs `@effect/platform`, an optional peer) is not re-exported here:
 * import it from `@tiercache/core/KeyValueStoreTier`.
 *
 * @since 0.1.0
 */

/**
 * Typed errors of tiercache.
 *
 * @since 0.1.0
 */
export * as CacheError from "./CacheError.js"
/**
 * The Effect Metrics a cache reports.
 *
 * @since 0.1.0
 */
export * as CacheMetrics from "./CacheMetrics.js"

/**
 * Options of a cache and of its calls.
 *
 * @since 0.2.0
 */
export * as CacheOptions from "./CacheOptions.js"

/**
 * Statistics and health shapes.
 *
 * @since 0.1.0
 */
export * as CacheStats from "./CacheStats.js"

/**
 * TTL presets.
 *
 * @since 0.1.0
 */
export * as CacheStrategy from "./CacheStrategy.js"
/**
 * Event streams beside the cache.
 *
 * @since 0.1.0
 */
export * as CacheStreams from "./CacheStreams.js"
/**
 * Tier timeouts and circuit breakers.
 *
 * @since 0.1.0
 */
export * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * The record every tier stores.
 *
 * @since 0.1.0
 */
export * as Entry from "./Entry.js"
/**
 * Redis-style glob patterns.
 *
 * @since 0.1.0
 */
export * as Glob from "./Glob.js"
/**
 * The invalidation bus service.
 *
 * @since 0.1.0
 */
export * as InvalidationBus from "./InvalidationBus.js"
/**
 * The invalidation bus wire protocol.
 *
 * @since 0.1.0
 */
export * as InvalidationMessage from "./InvalidationMessage.js"
/**
 * The default L1.
 *
 * @since 0.1.0
 */
export * as MemoryTier from "./MemoryTier.js"
/**
 * The storage contract and the tier tags.
 *
 * @since 0.1.0
 */
export * as Tier from "./Tier.js"

/**
 * The cache service.
 *
 * @since 0.1.0
 */
export * as TieredCache from "./TieredCache.js"
