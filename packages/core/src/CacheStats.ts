/**
 * What a cache counts, and its health. Every request counts exactly once, as an L1 hit, a hit
 * of a lower tier, a coalesced wait or a miss, so `requests` is always the sum of those. A tier's
 * defect (a throw, an `Effect.die`: a tier breaking its contract) is that tier's failure, counted
 * in `tierErrors` as any: the read goes on as a miss.
 *
 * @since 0.1.0
 */
import type { TierHealth } from "./Tier.js"

/**
 * A snapshot of a cache's request statistics.
 *
 * @category models
 * @since 0.1.0
 */
export interface CacheStats {
  /**
   * Reads (get, getTyped, getMany keys, getOrCompute...): `l1Hits` + the sum of `tierHits` (L2's
   * is `l2Hits`) + `coalesced` + `misses`.
   */
  readonly requests: number
  /** Answered by L1. */
  readonly l1Hits: number
  /** Answered by L2. */
  readonly l2Hits: number
  /** Answered by each tier below L1, in order (index 0 is L2). */
  readonly tierHits: ReadonlyArray<number>
  /** Joined a computation or lookup already under way for the same key. */
  readonly coalesced: number
  /** Found in no tier. */
  readonly misses: number
  /** Fraction of requests answered by some tier (0 when there were none). */
  readonly hitRate: number
  /** Fraction of requests answered by L1. */
  readonly l1HitRate: number
  /** Entries copied into the tiers above the one that had them. */
  readonly promotions: number
  /** Computations run (by getOrCompute on a miss). */
  readonly computations: number
  /** Computations that failed, or answered a value that cannot be stored (a CacheInputError to their callers). */
  readonly computeErrors: number
  /**
   * Stored copies that did not decode under the requested schema, one per tier's copy: each is
   * skipped as a miss of its tier and the read goes on to the next tier, so a read finding the
   * same undecodable value in L1 and in L2 counts two (and, as a request, one miss).
   */
  readonly decodeErrors: number
  /** Failed tier operations, by tier name. */
  readonly tierErrors: Readonly<Record<string, number>>
  /** Writes (set, computed values, removals) that every tier failed. */
  readonly writeFailures: number
  /** Computed or promoted values not stored because the key changed while they were fetched. */
  readonly discardedWrites: number
  /**
   * Stale values handed out: requests answered at once from a stale L1 copy
   * (stale-while-revalidate, `allowStale`), and computations whose waiters got a stale value
   * (a stale lower-tier copy, a soft or hard timeout, the fail-safe).
   */
  readonly staleServed: number
  /** Failed or timed-out computations answered with a stale value. */
  readonly failSafeHits: number
  /** Callers whose hard timeout expired. */
  readonly timeouts: number
  /** Tier calls refused because a circuit breaker was open (not counted in `tierErrors`). */
  readonly breakerRejections: number
  /** Each lower tier's circuit breaker state, by tier name. */
  readonly breakers: Readonly<Record<string, "closed" | "open" | "half-open">>
  /**
   * Computations under way now, until their lower-tier writes are done, including one that a
   * write or invalidation of its key detached (its result then goes to its callers only).
   */
  readonly inFlight: number
  /**
   * Changes (writes, invalidations, clears) that did not reach a lower tier or the bus and wait
   * to be replayed (see the `recovery` option).
   */
  readonly pendingChanges: number
  /** Kept changes replayed to the lower tiers and the bus so far. */
  readonly replayedChanges: number
  /** Times more than `recovery.maxChanges` changes were kept and one clear replaced them. */
  readonly recoveryClears: number
}

/**
 * A snapshot of a cache's invalidation bus statistics.
 *
 * @category models
 * @since 0.1.0
 */
export interface InvalidationStats {
  /** Whether the cache has a bus at all. */
  readonly enabled: boolean
  /**
   * Messages this instance published. A bus may carry several in one message on the wire
   * (RedisInvalidationBus sends the removes of one moment as one `RemoveBulk`).
   */
  readonly messagesSent: number
  /** Messages this instance failed to publish. */
  readonly publishFailures: number
  /** Of those, messages not even tried because the bus's circuit breaker was open. */
  readonly publishesSkipped: number
  /** The bus's circuit breaker (publishes go through one), when there is a bus and breakers are on. */
  readonly breaker: "closed" | "open" | "half-open" | undefined
  /** Messages received as they arrived on the bus (own ones and malformed ones included). */
  readonly messagesReceived: number
  /** Received messages that were this instance's own (ignored). */
  readonly ownMessagesIgnored: number
  /** Received messages that did not decode (skipped). */
  readonly malformedMessages: number
  /** Received messages applied to L1. */
  readonly messagesApplied: number
  /** Times L1 was cleared because the bus connection came back (messages may have been lost). */
  readonly resyncs: number
}

/**
 * Overall health: `healthy` when every tier answers, `degraded` when L1 answers but a lower
 * tier does not (the cache keeps serving), `unhealthy` when L1 does not answer.
 *
 * @category models
 * @since 0.1.0
 */
export interface CacheHealth {
  /** The summary. */
  readonly status: "healthy" | "degraded" | "unhealthy"
  /** Each tier's own health, L1 first. */
  readonly tiers: ReadonlyArray<TierHealth>
  /** Whether a bus is configured. */
  readonly bus: boolean
}
