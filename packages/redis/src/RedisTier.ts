/**
 * Redis as a cache tier (by default the L2). Each key is stored as `<prefix><key>` holding the
 * entry's wire envelope, with a Redis expiry (PX) at the entry's `staleUntil`; reads take the
 * remaining lifetime from Redis's own countdown (PTTL), read in the same transaction as the
 * value, so clock skew between machines cannot stretch or shorten an entry (a copy read from
 * Redis ends at most one round trip before Redis's expiry, never after it; that expiry is
 * counted from when Redis received the write, so it can end later than the writer's `staleUntil`
 * by the write's way to Redis: a few milliseconds).
 *
 * Every command is bounded by the connection's command timeout, and every failure is a
 * {@link CacheError.TierError}. Patterns are matched with SCAN (never KEYS), inside the prefix
 * only: keys outside the namespace (default `tiercache:`) are never read, written or deleted.
 *
 * Large values (see the connection's `largeValueBytes`, default 1 MiB) are written and read on
 * a connection of their own with a timeout scaled to their size: a small key read or written
 * meanwhile is neither held up nor failed by them. The read script and a lone read ask Redis
 * for at most `largeValueBytes` of a value; a larger one is then fetched on that connection.
 *
 * @since 0.1.0
 */
import { type CacheError, CacheMetrics, Tier } from "@tiercache/core"
import { Duration, Effect, Layer, type Metric } from "effect"
import * as LargeValues from "./internal/largeValues.js"
import { resolvePrefix } from "./internal/namespace.js"
import {
  given,
  notABoolean,
  notANonEmptyString,
  notAnObject,
  notAPositiveInteger
} from "./internal/optionsObject.js"
import * as Recovery from "./internal/recovery.js"
import * as TierReads from "./internal/tierReads.js"
import * as TierRunner from "./internal/tierRunner.js"
import * as TierWrites from "./internal/tierWrites.js"
import { RedisConnection } from "./RedisConnection.js"

/**
 * Options of a Redis tier. Only an absent (`undefined`) option takes its default: `null` from
 * plain JavaScript, or a value of the wrong type or out of range, fails the build with a
 * `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The tier's name in logs, metrics and errors (default `redis`). */
  readonly name?: string | undefined
  /**
   * The key prefix (namespace) of this tier (default: the connection's `keyPrefix`, itself
   * `tiercache:` by default). If you set it, give RedisInvalidationBus the same `namespace`.
   */
  readonly prefix?: string | undefined
  /** Allow `prefix: ""`: `clear` then deletes every string key of the database. Default false. */
  readonly allowEmptyPrefix?: boolean | undefined
  /** Keys asked for per SCAN step when removing by pattern (default 500). */
  readonly scanCount?: number | undefined
}

/**
 * Values under the tier's prefix that are no cache entry (foreign JSON, a plain string, a hash
 * or a list: anything the cache did not write), each read as a miss and counted here, tagged
 * `tier` with the tier's name, once per read that meets one (every such key of a `getMany`
 * counts once, a large one too, and so does the read `writeIfNewer` makes before it overwrites
 * one); `getOrCompute` then overwrites it. The metric
 * `tiercache_tier_foreign_values_total`, the same as `CacheMetrics.foreignValues`.
 *
 * @category metrics
 * @since 0.2.0
 */
export const foreignValues: Metric.Metric.Counter<number> = CacheMetrics.foreignValues

/**
 * Builds a Redis tier on the connection in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<Tier.Tier.Service, CacheError.CacheConfigError, RedisConnection> =>
  Effect.gen(function* () {
    const badOptions = notAnObject(options)
    if (badOptions) return yield* badOptions
    const connection = yield* RedisConnection
    const clock = yield* Effect.clock
    const client = connection.client
    const name = given(options.name, "redis")
    const badName =
      notANonEmptyString(name, "name") ?? notABoolean(options.allowEmptyPrefix, "allowEmptyPrefix")
    if (badName) return yield* badName
    const prefix = yield* resolvePrefix(
      "prefix",
      options.prefix,
      options.allowEmptyPrefix,
      connection.keyPrefix
    )
    const large = LargeValues.make(connection, prefix, () => clock.unsafeCurrentTimeMillis())
    // SCAN's COUNT: Redis refuses anything but an integer (NaN, Infinity, 1e30), and would then
    // fail every clear and pattern invalidation rather than the build.
    const scanCount = given(options.scanCount, 500)
    const badCount = notAPositiveInteger(scanCount, "scanCount")
    if (badCount) return yield* badCount
    const timeout = connection.commandTimeout
    const runner = TierRunner.make(name, timeout)
    const { fail, run } = runner
    const reads = TierReads.make({ client, large, prefix, name, clock, runner })
    const writes = TierWrites.make({ client, large, prefix, scanCount, clock, runner })
    const conditional = Recovery.writeIfNewer(
      client,
      large,
      prefix,
      () => clock.unsafeCurrentTimeMillis(),
      (cause) => fail("writeIfNewer", cause),
      name
    )

    const tier: Tier.Tier.Service = {
      name,
      // TieredCache's `tiercache.tier.*` spans carry it as `db.system.name`; RedisTier opens no
      // spans of its own (one span per tier call, not two nested ones).
      system: "redis",
      // ioredis fails every command past the connection's command timeout (and at once while
      // disconnected); batches are bounded here as well.
      callTimeout: timeout,
      get: reads.get,
      getMany: reads.getMany,
      set: writes.set,
      // The command connection: RedisInvalidationBus publishes on it too, so the cache sends a
      // write or a removal and its bus message together (`setThen`, `removeThen`), the message
      // after it.
      sequence: client,
      setThen: writes.setThen,
      removeThen: writes.removeThen,
      removeNow: writes.removeNow,
      setNow: writes.setNow,
      setMany: writes.setMany,
      remove: writes.remove,
      removeMatching: writes.removeMatching,
      clear: writes.clear,

      // Auto-recovery: a createdAt-guarded write (one Lua script), in its keys' order with the
      // other writes (a large change travels on the large-value connection), and word of a
      // reconnection.
      writeIfNewer: (changes) =>
        writes.inOrder(
          changes.map((change) => prefix + change.key),
          (landing) => conditional(changes, landing),
          Effect.fail(fail("writeIfNewer", "an earlier large write of the key has not landed"))
        ),
      ready: Recovery.ready(client),

      health: run("health", () => client.ping()).pipe(
        Effect.timed,
        Effect.map(([elapsed]) => ({
          name,
          healthy: true,
          detail: `PING ${Duration.toMillis(elapsed).toFixed(2)} ms`
        })),
        Effect.catchAll((error) => Effect.succeed({ name, healthy: false, detail: error.reason }))
      )
    }
    // Arguments from plain JavaScript are checked before the tier runs; a key with a lone
    // surrogate too, which Redis would store as U+FFFD (one key for "k\uD800" and "k\uDBFF").
    return Tier.withInputChecks(tier, { wellFormedKeys: true })
  })

/**
 * A Redis tier as the cache's L2.
 *
 * @example
 * ```ts
 * import { MemoryTier, TieredCache } from "@tiercache/core"
 * import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
 * import { Layer } from "effect"
 *
 * // Keys are written as `myapp:<key>`; the bus keeps other instances' L1 coherent. A prefix of
 * // the tier's own is the bus's namespace too: without it the bus would stamp the connection's
 * // keyPrefix, and another app doing the same would put its updates into this app's L1.
 * const CacheLive = TieredCache.layer().pipe(
 *   Layer.provide(MemoryTier.layer({ maxEntries: 50_000 })),
 *   Layer.provide(
 *     Layer.merge(RedisTier.layer({ prefix: "myapp:" }), RedisInvalidationBus.layer({ namespace: "myapp:" }))
 *   ),
 *   Layer.provide(RedisConnection.layer({ host: "127.0.0.1", port: 6379 }))
 * )
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<Tier.L2, CacheError.CacheConfigError, RedisConnection> => Layer.effect(Tier.L2, make(options))
