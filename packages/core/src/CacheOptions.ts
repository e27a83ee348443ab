/**
 * The options of a cache and of its calls: how a cache is built (`Options`, with its
 * `RecoveryOptions` and `Timeouts`), and what a read, a write and a computation take. Each is
 * also named by TieredCache (`TieredCache.Options`, ...).
 *
 * @since 0.2.0
 */
import type { Duration, Schema } from "effect"
import type { CacheStrategy } from "./CacheStrategy.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"

/**
 * How a cache is built. An option of the wrong type or out of range (from plain JavaScript:
 * `staleWhileRevalidate: "false"`, `name: 42`) fails the build with a `CacheConfigError`
 * naming it. Only an absent (`undefined`) option takes its default: `null` is such a wrong value.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /**
   * The TTL of writes that give none: a duration or a strategy (default: `CacheStrategy.Default`,
   * 5 min); at least 1 ms.
   */
  readonly defaultTtl?: Duration.DurationInput | CacheStrategy | undefined
  /** The grace window of writes that give none (default: none); 0 or at least 1 ms. */
  readonly defaultGrace?: Duration.DurationInput | undefined
  /**
   * L1 keeps entries for this fraction of their remaining lifetime, in (0, 1] (default 1, when
   * absent; anything else, `null` from plain JavaScript included, is a `CacheConfigError`).
   * A smaller L1 lifetime bounds how long an instance can serve a value another instance
   * changed while the bus was unreachable.
   */
  readonly l1TtlScale?: number | undefined
  /** This instance's id on the bus (default: a random UUID). */
  readonly instanceId?: string | undefined
  /**
   * The cache's name, tagged (`cache`) on its Effect metrics (default `default`): give each
   * cache of a process its own name, or their metrics add up. A non-empty string.
   */
  readonly name?: string | undefined
  /**
   * How often the counters are pushed into Effect Metrics (`tiercache_requests_total`,
   * `tiercache_events_total`, `tiercache_tier_errors_total`, `tiercache_bus_messages_total`,
   * `tiercache_in_flight`, `tiercache_breaker_open`); they are also pushed whenever `stats` is
   * read and when the cache closes (default 10 seconds).
   */
  readonly metricsInterval?: Duration.DurationInput | undefined
  /**
   * How long a tag's invalidation time is kept in the lower tiers (default 7 days). It bounds
   * the lifetime (TTL + grace) of a tagged entry: a tagged write or computation with a longer one
   * is a `CacheInputError` (`InvalidTtl`), since once the time expires the entry would be read
   * as valid again.
   */
  readonly tagRetention?: Duration.DurationInput | undefined
  /**
   * Within an entry's grace window, getOrCompute answers the stale value at once and refreshes
   * it in the background, once per key (default true). When false, the grace window only
   * serves the fail-safe and soft timeouts.
   */
  readonly staleWhileRevalidate?: boolean | undefined
  /**
   * When a computation fails and a stale value exists, the stale value answers and is kept in
   * L1 as fresh for this long, so that a failing source is not hammered (default 5 seconds;
   * 0 turns the fail-safe off; otherwise at least 1 ms).
   */
  readonly failSafeThrottle?: Duration.DurationInput | undefined
  /** Default computation timeouts (default: none). */
  readonly timeouts?: Timeouts | undefined
  /**
   * A timeout on every call to the tiers below L1 and a circuit breaker per tier (default:
   * 1 second, open after 5 consecutive failures, for 10 seconds); `false` turns both off.
   */
  readonly breaker?: CircuitBreaker.Options | false | undefined
  /**
   * Spans on the slow paths (`tiercache.tier.*` per call to a tier below L1,
   * `tiercache.getOrCompute` and `tiercache.compute` per computation, `tiercache.bus.publish`):
   * `true` always, `false` never (no tracing code on those paths), unset (the default) only
   * when the calling fiber's Tracer is not Effect's native one (one comparison per call, no
   * span otherwise). L1 hits never open a span.
   */
  readonly spans?: boolean | undefined
  /**
   * Whether cache keys, patterns and tags may be span attributes (`tiercache.key`,
   * `tiercache.pattern`, `tiercache.tag`), and keys as the `key` annotation of the cache's log
   * lines (a log line inside a span is one of its events); default false, since keys can hold
   * personal data.
   */
  readonly keysInSpans?: boolean | undefined
  /**
   * Auto-recovery of changes made while a lower tier or the bus was unreachable (default on:
   * `{ maxChanges: 10_000, retryInterval: "5 seconds" }`; `false` turns it off). Such a change
   * is kept (the last per key) and replayed, in order, when the connection reports ready
   * (or every `retryInterval`); past `maxChanges`, one clear of the namespace replaces them.
   */
  readonly recovery?: RecoveryOptions | false | undefined
}

/**
 * Options of auto-recovery (see {@link Options.recovery}).
 *
 * @category options
 * @since 0.1.0
 */
export interface RecoveryOptions {
  /** Most changes kept; past it one clear of the whole namespace replaces them (default 10,000). */
  readonly maxChanges?: number | undefined
  /** How often a replay is tried while changes are kept, through the breakers (default 5 seconds). */
  readonly retryInterval?: Duration.DurationInput | undefined
}

/**
 * Computation timeouts, each bounding the caller that gives it, from its call (other callers
 * wait on). Past `soft`, it gets the stale value if there is one; past `hard`, the stale value
 * if there is one, else a `CacheTimeoutError`. The computation goes on and stores its result.
 *
 * @category options
 * @since 0.1.0
 */
export interface Timeouts {
  /** Answer this caller with the stale value after this long (only when one exists). */
  readonly soft?: Duration.DurationInput | undefined
  /** Stop waiting after this long. */
  readonly hard?: Duration.DurationInput | undefined
}

/**
 * Options of a read.
 *
 * @category options
 * @since 0.1.0
 */
export interface ReadOptions {
  /** Answer with an expired value still inside its grace window rather than a miss. */
  readonly allowStale?: boolean | undefined
}

/**
 * Options of a write: a TTL (`ttl`, or a `strategy`; not both), a grace window during which
 * the expired value may still be served as stale, and tags. A TTL is at least 1 ms and a grace
 * window 0 or at least 1 ms (expiry times are epoch milliseconds: at today's epoch a TTL of a
 * nanosecond would expire as it is written); TTL plus grace is at most 2^52 ms (about 142,000
 * years, so that every expiry time is an exact epoch-ms integer any tier stores). Anything else
 * is a `CacheInputError` (`InvalidTtl`, naming the option and the value) before anything is
 * written.
 *
 * @category options
 * @since 0.1.0
 */
export interface WriteOptions {
  /** How long the value is fresh (at least 1 ms). */
  readonly ttl?: Duration.DurationInput | undefined
  /** A TTL preset (instead of `ttl`). */
  readonly strategy?: CacheStrategy | undefined
  /** How long after expiry the value may still be served as stale (default: the cache's; 0 or at least 1 ms). */
  readonly grace?: Duration.DurationInput | undefined
  /** Tags stored with the entry. */
  readonly tags?: ReadonlyArray<string> | undefined
}

/**
 * Options of a typed write: the schema encodes the value before it is stored.
 *
 * @category options
 * @since 0.1.0
 */
export interface TypedWriteOptions<A, I> extends WriteOptions {
  /**
   * Encodes the value (its Encoded side must be JSON-safe, and must decode back with this
   * schema: a value whose encoded form does not is a `CacheInputError`, `UnencodableValue`).
   */
  readonly schema?: Schema.Schema<A, I, never> | undefined
}

/**
 * Options of getOrCompute: those of a write, plus timeouts of the computation.
 *
 * @category options
 * @since 0.1.0
 */
export interface ComputeOptions extends WriteOptions {
  /** Timeouts of this call, bounding this caller only (default: the cache's `timeouts`). */
  readonly timeouts?: Timeouts | undefined
}
