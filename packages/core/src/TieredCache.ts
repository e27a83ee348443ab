/**
 * The user-facing cache: reads fall through L1, L2 and any further tiers and promote what they
 * find; writes go to every tier; concurrent misses of one key run one computation; instances
 * keep their L1s coherent over the invalidation bus.
 *
 * @since 0.1.0
 */
import type { Schema, Scope } from "effect"
import { Context, type Effect, Layer, type Option } from "effect"

import type {
  BusError,
  CacheConfigError,
  CacheInputError,
  CacheTimeoutError,
  CacheWriteError
} from "./CacheError.js"
import type { ComputeOptions, Options, ReadOptions, TypedWriteOptions } from "./CacheOptions.js"
import type { CacheHealth, CacheStats, InvalidationStats } from "./CacheStats.js"
import { make as makeInternal } from "./internal/tieredCache.js"
import type { L1, L2 } from "./Tier.js"

export type {
  /**
   * Options of getOrCompute (see `CacheOptions.ComputeOptions`).
   *
   * @category options
   * @since 0.1.0
   */
  ComputeOptions,
  /**
   * How a cache is built (see `CacheOptions.Options`).
   *
   * @category options
   * @since 0.1.0
   */
  Options,
  /**
   * Options of a read (see `CacheOptions.ReadOptions`).
   *
   * @category options
   * @since 0.1.0
   */
  ReadOptions,
  /**
   * Options of auto-recovery (see `CacheOptions.RecoveryOptions`).
   *
   * @category options
   * @since 0.1.0
   */
  RecoveryOptions,
  /**
   * Computation timeouts (see `CacheOptions.Timeouts`).
   *
   * @category options
   * @since 0.1.0
   */
  Timeouts,
  /**
   * Options of a typed write (see `CacheOptions.TypedWriteOptions`).
   *
   * @category options
   * @since 0.1.0
   */
  TypedWriteOptions,
  /**
   * Options of a write (see `CacheOptions.WriteOptions`).
   *
   * @category options
   * @since 0.1.0
   */
  WriteOptions
} from "./CacheOptions.js"

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
