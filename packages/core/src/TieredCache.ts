/**
 * The user-facing cache: reads fall through L1, L2 and any further tiers and promote what they
 * find; writes go to every tier; concurrent misses of one key run one computation; instances
 * keep their L1s coherent over the invalidation bus.
 *
 * @since 0.1.0
 */
import type { Duration, Schema, Scope } from "effect"
import { Context, type Effect, Layer, type Option } from "effect"

import type {
  BusError,
  CacheConfigError,
  CacheInputError,
  CacheTimeoutError,
  CacheWriteError
} from "./CacheError.js"
import type { CacheHealth, CacheStats, InvalidationStats } from "./CacheStats.js"
import type { CacheStrategy } from "./CacheStrategy.js"
import type * as CircuitBreaker from "./CircuitBreaker.js"
import { make as makeInternal } from "./internal/tieredCache.js"
import type { L1, L2 } from "./Tier.js"

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
 * Computation timeouts. Past `soft`, waiters get the stale value if there is one while the
 * computation goes on and stores its result; past `hard`, waiters get the stale value if there
 * is one, else a `CacheTimeoutError` (the computation still goes on and stores its result).
 *
 * @category options
 * @since 0.1.0
 */
export interface Timeouts {
  /** Answer with the stale value after this long (only when one exists). */
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
  /** Timeouts of this call (default: the cache's `timeouts`). */
  readonly timeouts?: Timeouts | undefined
}

/**
 * The cache service.
 *
 * @example
 * `getOrComputeTyped`: one computation per key per instance however many callers
 * miss at once, the value encoded with the schema on the way in and decoded on the way out.
 *
 * ```ts
 * import { MemoryTier, TieredCache } from "@tiercache/core"
 * import { TestTier } from "@tiercache/testing"
 * import { Effect, Layer, Schema } from "effect"
 *
 * const User = Schema.Struct({ id: Schema.Number, since: Schema.DateFromString })
 * const loadUser = (id: number) => Effect.succeed({ id, since: new Date() })
 *
 * const program = Effect.gen(function* () {
 *   const cache = yield* TieredCache.TieredCache
 *   // user: { readonly id: number; readonly since: Date }
 *   const user = yield* cache.getOrComputeTyped("user:1", User, loadUser(1), { ttl: "10 minutes" })
 *   return user.since.getTime()
 * })
 *
 * program.pipe(
 *   Effect.provide(
 *     TieredCache.layer().pipe(
 *       Layer.provide(MemoryTier.layer({ maxEntries: 1_000 })),
 *       Layer.provide(TestTier.layer())
 *     )
 *   )
 * )
 * ```
 *
 * @category tags
 * @since 0.1.0
 */
export class TieredCache extends Context.Tag("@tiercache/core/TieredCache")<
  TieredCache,
  TieredCache.Service
>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace TieredCache {
  /**
   * @since 0.1.0
   */
  export interface Service {
    /** This instance's id on the bus. */
    readonly instanceId: string
    /**
     * The stored (encoded) value under `key`, if fresh in some tier. A bad key, or options that
     * are not an object, are a `CacheInputError`.
     */
    readonly get: (
      key: string,
      options?: ReadOptions
    ) => Effect.Effect<Option.Option<unknown>, CacheInputError>
    /**
     * The value under `key` decoded with `schema`; a stored value that does not decode is a
     * miss (counted), never an error. L1 keeps the decoded value, so a repeated hit with the
     * same schema does not decode again. The value is decoded from the stored one on every tier
     * (the writer's L1 too), so every instance answers the same.
     */
    readonly getTyped: <A, I>(
      key: string,
      schema: Schema.Schema<A, I, never>,
      options?: ReadOptions
    ) => Effect.Effect<Option.Option<A>, CacheInputError>
    /**
     * Several keys at once (batched below L1); decoded when a schema is given. The answers are in
     * the order of `keys`. A key listed more than once gets the same answer at each of its
     * positions: read once from each tier below L1 (and from an L1 that is not a MemoryTier) and
     * decided once; a fresh MemoryTier slot answers each listing (a lookup, nothing decoded
     * again). Each listing counts as one request, as the tier that answered the key (or a miss),
     * as that many `get`s counted alone would, once the call has its answers (interrupted before,
     * it counts no request, as an interrupted `get`); a promotion, a decode error (one per tier's
     * copy read) or a discarded write counts once per key.
     */
    readonly getMany: {
      (keys: ReadonlyArray<string>): Effect.Effect<ReadonlyArray<Option.Option<unknown>>, CacheInputError>
      <A, I>(
        keys: ReadonlyArray<string>,
        schema: Schema.Schema<A, I, never>
      ): Effect.Effect<ReadonlyArray<Option.Option<A>>, CacheInputError>
    }
    /**
     * Writes every tier and tells the other instances to drop their L1 copy. Fails only when
     * every tier failed, or on bad input (before anything is written). Uninterruptible, as every
     * write and invalidation: it runs to its end, each tier's call bounded by its timeout.
     */
    readonly set: <A, I = A>(
      key: string,
      value: A,
      options?: TypedWriteOptions<A, I>
    ) => Effect.Effect<void, CacheInputError | CacheWriteError>
    /**
     * Writes every tier and broadcasts the value itself, so that other instances' L1 hold it
     * without a miss (the seed's `update_cache`).
     */
    readonly update: <A, I = A>(
      key: string,
      value: A,
      options?: TypedWriteOptions<A, I>
    ) => Effect.Effect<void, CacheInputError | CacheWriteError>
    /**
     * The cached value, or the result of `compute`, stored in every tier. Concurrent calls for
     * one key run one computation (per instance); all receive its value or its error (errors
     * are not cached). The computation runs in a fiber of the cache's scope: interrupting a
     * caller never cancels the others' result. Options are checked on every call an L1 hit
     * does not answer.
     * A call made from inside the computation of its own key (directly, through another key's
     * computation, or in a fiber the computation forked) would wait for itself: it fails with a
     * `CacheInputError` (`ReentrantComputation`), as does a call that would close a cycle of
     * computations waiting for each other's keys.
     */
    readonly getOrCompute: <A, E, R>(
      key: string,
      compute: Effect.Effect<A, E, R>,
      options?: ComputeOptions
    ) => Effect.Effect<A, E | CacheInputError | CacheTimeoutError, R>
    /**
     * getOrCompute with Schema: stored values are decoded (bad data = recompute and overwrite).
     * A computed value is answered as the schema decodes its stored form (what it holds beyond
     * the schema, dropped by encoding, is not answered), as every instance reads it. One whose
     * stored form the schema does not decode (a schema that does not round-trip) fails every
     * caller with a `CacheInputError` (`UnencodableValue`), and is not stored.
     */
    readonly getOrComputeTyped: <A, I, E, R>(
      key: string,
      schema: Schema.Schema<A, I, never>,
      compute: Effect.Effect<A, E, R>,
      options?: ComputeOptions
    ) => Effect.Effect<A, E | CacheInputError | CacheTimeoutError, R>
    /** Removes `key` from every tier and every instance's L1. */
    readonly invalidate: (key: string) => Effect.Effect<void, CacheInputError | CacheWriteError>
    /** Removes `keys` from every tier and every instance's L1. */
    readonly invalidateMany: (
      keys: ReadonlyArray<string>
    ) => Effect.Effect<void, CacheInputError | CacheWriteError>
    /** Removes every key matching a Redis-style glob from every tier and every instance's L1. */
    readonly invalidatePattern: (glob: string) => Effect.Effect<void, CacheInputError | CacheWriteError>
    /**
     * Invalidates every entry written with `tag` before now, in every tier and instance. The
     * invalidation time is stored in the lower tiers under a reserved key (kept `tagRetention`)
     * and broadcast; an entry carrying the tag and created at or before that time is a miss.
     * Computed entries are dated from the start of their computation.
     */
    readonly invalidateTag: (tag: string) => Effect.Effect<void, CacheInputError | CacheWriteError>
    /** Empties every tier (of this cache's namespace) and every instance's L1. */
    readonly clear: Effect.Effect<void, CacheWriteError>
    /** Request statistics. */
    readonly stats: Effect.Effect<CacheStats>
    /** Bus statistics. */
    readonly invalidationStats: Effect.Effect<InvalidationStats>
    /** Each tier's health and a summary. */
    readonly health: Effect.Effect<CacheHealth>
  }
}

/**
 * Builds a cache from the `L1` and `L2` tiers (and `Tiers`, and an `InvalidationBus`, when
 * present in the context). The bus subscriber and every computation run in fibers of the
 * scope: closing it stops them.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make: (
  options?: Options
) => Effect.Effect<TieredCache.Service, CacheConfigError | BusError, L1 | L2 | Scope.Scope> = makeInternal

/**
 * How building a cache can fail: a bad option, or a bus that cannot subscribe.
 *
 * @category errors
 * @since 0.1.0
 */
export type LayerError = CacheConfigError | BusError

/**
 * The cache as a layer.
 *
 * @example
 * ```ts
 * import { MemoryTier, TieredCache } from "@tiercache/core"
 * import { TestTier } from "@tiercache/testing"
 * import { Effect, Layer } from "effect"
 *
 * // An L1 in memory in front of an L2 (here the in-memory TestTier; RedisTier.layer() in production).
 * const CacheLive = TieredCache.layer({ defaultTtl: "5 minutes" }).pipe(
 *   Layer.provide(MemoryTier.layer({ maxEntries: 10_000 })),
 *   Layer.provide(TestTier.layer())
 * )
 *
 * const program = Effect.gen(function* () {
 *   const cache = yield* TieredCache.TieredCache
 *   return yield* cache.getOrCompute("answer", Effect.succeed(42))
 * })
 *
 * Effect.runPromise(program.pipe(Effect.provide(CacheLive))).then(console.log) // 42
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<TieredCache, CacheConfigError | BusError, L1 | L2> =>
  Layer.scoped(TieredCache, make(options))
