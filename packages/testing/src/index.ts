/**
 * @since 0.1.0
 */

/**
 * An invalidation bus wrapper that injects failures, delays, losses and reconnections.
 *
 * @since 0.1.0
 */
export * as ChaosBus from "./ChaosBus.js"

/**
 * A tier wrapper that injects failures, delays and data loss.
 *
 * @since 0.1.0
 */
export * as ChaosTier from "./ChaosTier.js"

/**
 * Interrupts an effect at each step of its run and checks what it leaves behind.
 *
 * @since 0.1.0
 */
export * as Interruptions from "./Interruptions.js"

/**
 * Several cache instances sharing an L2 and a bus.
 *
 * @since 0.1.0
 */
export * as MultiInstance from "./MultiInstance.js"

/**
 * A real redis-server per test suite.
 *
 * @since 0.1.0
 */
export * as RedisServer from "./RedisServer.js"

/**
 * An in-memory invalidation bus hub.
 *
 * @since 0.1.0
 */
export * as TestBus from "./TestBus.js"

/**
 * In-memory event streams (CacheStreams) on the Effect Clock.
 *
 * @since 0.1.0
 */
export * as TestStreams from "./TestStreams.js"

/**
 * An in-memory tier on the Effect Clock.
 *
 * @since 0.1.0
 */
export * as TestTier from "./TestTier.js"
