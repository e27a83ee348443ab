/**
 * The storage contract every tier implements, and the tags that place tiers in a cache.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Option, Stream } from "effect"
import { Context } from "effect"
import type { TierError } from "./CacheError.js"
import type { Entry } from "./Entry.js"
import * as TierInput from "./internal/tierInput.js"

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
   * Called directly (outside `TieredCache`, which checks its callers' input itself), every tier
   * of tiercache checks its arguments before it runs, for callers that ignore the types (plain
   * JavaScript): a key that is not a string (on a tier that stores UTF-8 text, as RedisTier, one
   * with a lone surrogate too), keys or entries that are not an array or hold a bad member, an
   * entry that is not a well-formed {@link Entry} (`expiresAt`, `staleUntil` and `createdAt`
   * finite numbers, `staleUntil` not before `expiresAt`, `tags` an array of strings, a `value`
   * JSON can hold), a glob that is not a string, a change of `writeIfNewer` that is not
   * `{ key, entry, at }` with a finite `at`. Such a call fails with a `TierError` of its
   * operation whose `reason` names the argument (`keys[1] must be a string, got 1`), and the
   * tier does nothing: nothing is written or removed, no batch in part (`setThen` and
   * `removeThen` answer the error and run `then`, once). {@link withInputChecks} gives a tier of
   * your own the same checks.
   *
   * A tier fails with a `TierError`. `TieredCache` takes a defect of a tier's (a throw, an
   * `Effect.die`, a method that throws when called) as that tier's `TierError` too, with the
   * defect in its `cause`: counted, logged and fed to its breaker, never ending the cache's call;
   * and so is a read's answer this contract does not allow (an entry that is not well-formed,
   * something else than an `Option`, a `getMany` answer of another length than its keys), and a
   * `writeIfNewer` answer that is not an array of one boolean per change.
   *
   * @since 0.1.0
   */
  export interface Service {
    /** A short name for logs, metrics and errors (`memory`, `redis`, `test`). */
    readonly name: string
    /** The entry under `key`, if it is there and not gone. */
    readonly get: (key: string) => Effect.Effect<Option.Option<Entry>, TierError>
    /**
     * The entries under `keys`: one answer per key, in the same order (a key given twice is
     * answered twice, no keys get no answers).
     */
    readonly getMany: (
      keys: ReadonlyArray<string>
    ) => Effect.Effect<ReadonlyArray<Option.Option<Entry>>, TierError>
    /**
     * Stores `entry` under `key` until its `staleUntil`. The writes and removals of one key land
     * in the order they were called (the cache does not wait for one to land before the next).
     */
    readonly set: (key: string, entry: Entry) => Effect.Effect<void, TierError>
    /** Stores several entries at once. */
    readonly setMany: (entries: ReadonlyArray<readonly [string, Entry]>) => Effect.Effect<void, TierError>
    /** Removes the given keys (absent keys are no error). */
    readonly remove: (keys: ReadonlyArray<string>) => Effect.Effect<void, TierError>
    /**
     * Removes every key matching a Redis-style glob, except the cache's own keys (see
     * {@link isReservedKey}: a tag's invalidation time must outlive a pattern that happens to
     * match it); answers how many were removed.
     */
    readonly removeMatching: (glob: string) => Effect.Effect<number, TierError>
    /** Removes every key of this tier (of its namespace only, for shared stores). */
    readonly clear: Effect.Effect<void, TierError>
    /** Whether the tier answers now. */
    readonly health: Effect.Effect<TierHealth>
    /**
     * Optional: the bound the tier itself puts on every call (e.g. a driver's command
     * timeout). A circuit breaker whose timeout is not shorter adds no timer of its own; its
     * timer costs each call a fiber, so declare the bound when the tier has one.
     */
    readonly callTimeout?: Duration.Duration | undefined
    /**
     * Optional: the store's OpenTelemetry `db.system.name` (e.g. `redis`), set on the cache's
     * spans of this tier's calls.
     */
    readonly system?: string | undefined
    /**
     * Optional: applies each change unless the tier holds an entry of its key created after
     * it (`createdAt` greater than the change's `at`): a write stores `entry`, a removal
     * (`entry` undefined) deletes the key; answers, in order, whether each was applied. The
     * check and the change are one atomic step per key. The cache replays changes made during
     * an outage with it (see its `recovery` option); a tier without it gets a read, a
     * comparison and a write instead (not atomic).
     */
    readonly writeIfNewer?:
      | ((changes: ReadonlyArray<Tier.Change>) => Effect.Effect<ReadonlyArray<boolean>, TierError>)
      | undefined
    /**
     * Optional: emits each time the tier's connection is ready again after it was lost (not
     * for the first connection). The cache then probes the tier's breaker and replays the
     * changes it kept during the outage at once, instead of waiting out the breaker's window.
     * A stream that ends while the cache is open (it fails, dies, interrupts itself or
     * completes) is logged at Error level and run again: after 100 ms, doubling up to 30 s
     * while runs end without a signal. Leave it undefined for a tier without such a signal.
     */
    readonly ready?: Stream.Stream<void> | undefined
    /**
     * Optional: names the ordered stream of calls this tier's writes travel on (e.g. one Redis
     * connection). An `InvalidationBus` with the same `sequence` publishes on that stream,
     * so a message published after a write was sent reaches its receivers only after the write
     * took effect. With both set alike (and `setThen`), the cache sends a write and its bus
     * message together instead of waiting for the write's reply in between; with `removeThen`,
     * an `invalidate` or `invalidateMany` and its messages.
     */
    readonly sequence?: unknown
    /**
     * Optional, with `sequence`: stores `entry` as `set` does and runs `then` as soon as the write
     * is sent on the stream named by `sequence` (after its reply when the write goes elsewhere,
     * e.g. a large value on another connection), without waiting for the reply in between.
     * `then` runs exactly once, also when the write fails; answers the write's failure
     * (undefined when it succeeded) and `then`'s result.
     */
    readonly setThen?:
      | (<A>(
          key: string,
          entry: Entry,
          then: Effect.Effect<A>
        ) => Effect.Effect<readonly [TierError | undefined, A]>)
      | undefined
    /**
     * Optional, with `sequence`: removes `keys` as `remove` does and runs `then` as soon as the
     * removal is sent on the stream named by `sequence` (after its reply when it goes otherwise,
     * e.g. in several commands, or behind an earlier write of a key still on its way elsewhere),
     * without waiting for the reply in between. `then` runs exactly once, also when the removal
     * fails; answers the removal's failure (undefined when it succeeded) and `then`'s result.
     */
    readonly removeThen?:
      | (<A>(
          keys: ReadonlyArray<string>,
          then: Effect.Effect<A>
        ) => Effect.Effect<readonly [TierError | undefined, A]>)
      | undefined
    /**
     * Optional, with `setThen`: the same write started at once, outside Effect, for the cache's
     * hot path (a set then takes one Effect step in all). Answers false, having done nothing,
     * when the write cannot start that way (e.g. a large value, or one that must wait for an
     * earlier write of its key): the cache then calls `setThen`. Answering true, the write has
     * been sent on `sequence` (anything sent on it afterwards follows the write), and `done` is
     * called exactly once, after `setNow` has returned, with the write's failure (undefined
     * when it succeeded). Never throws. The cache calls it only with keys and entries it made.
     */
    readonly setNow?:
      | ((key: string, entry: Entry, done: (error: TierError | undefined) => void) => boolean)
      | undefined
    /**
     * Optional, with `removeThen`: the same removal started at once, outside Effect, for the
     * cache's hot path (an `invalidate` then takes one Effect step in all). Answers false, having
     * done nothing, when the removal cannot start that way (e.g. more keys than one command
     * takes, or a key behind an earlier write still on its way): the cache then calls
     * `removeThen`. Answering true, the removal has been sent on `sequence` (anything sent on it
     * afterwards follows it), and `done` is called exactly once, after `removeNow` has returned,
     * with the removal's failure (undefined when it succeeded). Never throws. The cache calls it
     * only with keys it checked.
     */
    readonly removeNow?:
      | ((keys: ReadonlyArray<string>, done: (error: TierError | undefined) => void) => boolean)
      | undefined
  }

  /**
   * A change for {@link Tier.Service.writeIfNewer}: store `entry` under `key` (or remove the
   * key when `entry` is undefined) unless the tier holds an entry of it created after `at`.
   *
   * @since 0.1.0
   */
  export interface Change {
    /** The key. */
    readonly key: string
    /** The entry to store; undefined removes the key. */
    readonly entry: Entry | undefined
    /** When the change was made (epoch ms; a write's is its entry's `createdAt`). */
    readonly at: number
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

/**
 * The start of the keys the cache keeps for itself in its tiers, such as a tag's invalidation
 * time (`__tiercache:tag:<tag>`). Callers' keys never start with it: every operation refuses
 * such a key with a `CacheInputError`.
 *
 * @category reserved keys
 * @since 0.1.0
 */
export const reservedPrefix = "__tiercache:"

/**
 * Whether `key` is one of the cache's own keys (it starts with {@link reservedPrefix}). A tier's
 * `removeMatching` leaves such keys in place whatever the glob; `clear` removes them too, after
 * the other keys (a tag's record removed first lets the entries it refuses answer meanwhile).
 *
 * @category reserved keys
 * @since 0.1.0
 */
export const isReservedKey = (key: string): boolean => key.startsWith(reservedPrefix)

/**
 * Options of {@link withInputChecks}.
 *
 * @category input
 * @since 0.1.0
 */
export type InputCheckOptions = TierInput.Options

/**
 * Wraps a tier so that every call checks its arguments first, for callers that ignore the types
 * (plain JavaScript): a bad argument fails the call with a `TierError` of the operation naming
 * it, and the tier is not called (see {@link Tier.Service}). Every tier of tiercache is built
 * with it; a tier of your own can be too. Other fields of the tier are kept as they are.
 * `TieredCache` calls the tier inside, unchecked: it checks its own callers' input first, so its
 * writes do not pay for a second walk of each value.
 *
 * @example
 * ```ts
 * import { type Entry, Tier } from "@tiercache/core"
 * import { Effect, Option } from "effect"
 *
 * // A tier of your own, over a Map.
 * const map = new Map<string, Entry.Entry>()
 * const myTier: Tier.Tier.Service = {
 *   name: "map",
 *   get: (key) => Effect.sync(() => Option.fromNullable(map.get(key))),
 *   getMany: (keys) => Effect.sync(() => keys.map((key) => Option.fromNullable(map.get(key)))),
 *   set: (key, entry) => Effect.sync(() => void map.set(key, entry)),
 *   setMany: (entries) => Effect.sync(() => entries.forEach(([key, entry]) => map.set(key, entry))),
 *   remove: (keys) => Effect.sync(() => keys.forEach((key) => map.delete(key))),
 *   removeMatching: () => Effect.succeed(0),
 *   clear: Effect.sync(() => map.clear()),
 *   health: Effect.succeed({ name: "map", healthy: true })
 * }
 * // Keys stored as UTF-8 text elsewhere: refuse lone surrogates too.
 * const checked = Tier.withInputChecks(myTier, { wellFormedKeys: true })
 *
 * // Called from plain JavaScript with a key that is not a string: a TierError, map untouched.
 * Effect.runPromise(Effect.flip(checked.get(42 as unknown as string))).then((error) =>
 *   console.log(error.reason) // "key must be a string, got 42"
 * )
 * ```
 *
 * @category input
 * @since 0.1.0
 */
export const withInputChecks: <T extends Tier.Service>(tier: T, options?: InputCheckOptions) => T =
  TierInput.withInputChecks
