/**
 * @since 0.1.0
 */

/**
 * Connections to Redis (ioredis).
 *
 * @since 0.1.0
 */
export * as RedisConnection from "./RedisConnection.js"
/**
 * The invalidation bus over Redis Pub/Sub.
 *
 * @since 0.1.0
 */
export * as RedisInvalidationBus from "./RedisInvalidationBus.js"
/**
 * Event streams on Redis Streams.
 *
 * @since 0.1.0
 */
export * as RedisStreams from "./RedisStreams.js"
/**
 * Redis as a cache tier.
 *
 * @since 0.1.0
 */
export * as RedisTier from "./RedisTier.js"
