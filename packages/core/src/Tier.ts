/**
 * The storage contract every tier implements, and the tags that place tiers in a cache.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Option } from "effect"
import { Context } from "effect"
import type { TierError } from "./CacheError.js"
import type { Entry } from "./Entry.js"

/**
 * What a tier says of its own health.
 *
 * @category models
 * @since 0.1.0
 */
export interface TierHealth {
  /** The tier's name. */
  readonly name: string
  /** Whether the tier answers. */
  readonly healthy: boolean
  /** Why it does not, or extra state (a breaker's state, a latency...). */
  readonly detail?: string | undefined
}

/**
 * A storage tier. Keys are strings; values are {@link Entry} records. A tier returns an entry
 * until its `staleUntil` and never after; it reports lifetimes from what it stored (or from
 * the server's own countdown, e.g. Redis PTTL), never a guessed default. Every failure is a
 * typed {@link TierError}.
 *
 * @category tags
 * @since 0.1.0
 */
export class Tier extends Context.Tag("@tiercache/core/Tier")<Tier, Tier.Service>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace Tier {
  /**
   * The operations of a tier.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** A short name for logs, metrics and errors (`memory`, `redis`, `test`). */
    readonly name: string
    /** The entry under `key`, if it is there and not gone. */
    readonly get: (key: string) => Effect.Effect<Option.Option<Entry>, TierError>
    /** The entries under `keys`, in the same order. */
    readonly getMany: (
      keys: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<Option.Option<Entry>>, TierError>
    /** Stores `entry` under `key` until its `staleUntil`. */
    readonly set: (key: string, entry: Entry) => Effect.Effect<void, TierError>
    /** Stores several entries at once. */
    readonly setMany: (entries: ReadonlyArray<readonly [string, Entry]>) => Effect.Effect<void, TierError>
    /** Removes the given keys (absent keys are no error). */
    readonly remove: (keys: ReadonlyArray<string>) => Effect.Effect<void, TierError>
    /** Removes every key matching a Redis-style glob; answers how many were removed. */
    readonly removeMatching: (glob: string) => Effect.Effect<number, TierError>
    /** Removes every key of this tier (of its namespace only, for shared stores). */
    readonly clear: Effect.Effect<void, TierError>
    /** Whether the tier answers now. */
    readonly health: Effect.Effect<TierHealth>
    /**
     * Optional: the bound the tier itself puts on every call (e.g. a driver's command
     * timeout). A circuit breaker whose timeout is not shorter adds no timer of its own.
     */
    readonly callTimeout?: Duration.Duration | undefined
    /**
     * Optional: the store's OpenTelemetry `db.system.name` (e.g. `redis`), set on the cache's
     * spans of this tier's calls.
     */
    readonly system?: string | undefined
  }
}

/**
 * The first tier: in-process and fast (by default {@link MemoryTier}).
 *
 * @category tags
 * @since 0.1.0
 */
export class L1 extends Context.Tag("@tiercache/core/L1")<L1, Tier.Service>() {}

/**
 * The second tier: shared between instances (by default Redis).
 *
 * @category tags
 * @since 0.1.0
 */
export class L2 extends Context.Tag("@tiercache/core/L2")<L2, Tier.Service>() {}

/**
 * Further tiers behind L2 (L3, L4...), in the order reads fall through them. Optional: a cache
 * built without it has two tiers.
 *
 * @category tags
 * @since 0.1.0
 */
export class Tiers extends Context.Tag("@tiercache/core/Tiers")<Tiers, ReadonlyArray<Tier.Service>>() {}
