/**
 * Connections to Redis (ioredis): one for commands, plus dedicated ones for Pub/Sub, for
 * large values, for stream commands and for blocking stream reads, so that neither a
 * subscription, a large value, a stream entry nor a blocked read ever delays a cache command.
 *
 * Building the layer connects and PINGs under `connectTimeout` (its first commands get that
 * bound, not `commandTimeout`): a wrong password or an unreachable server is a
 * {@link RedisConnectionError} then, never a hang. Afterwards every
 * connection reconnects by itself in the background (capped exponential backoff), and a
 * command sent while its connection is down fails at once instead of waiting in a queue.
 *
 * @since 0.1.0
 */
import type { ConnectionOptions } from "node:tls"
import type { CacheError } from "@tiercache/core"
import type { ConfigError } from "effect"
import {
  Config,
  Context,
  type Duration,
  Effect,
  ExecutionStrategy,
  Layer,
  type Redacted,
  Scope
} from "effect"
import type { Redis } from "ioredis"
import { makeBlocking } from "./internal/blocking.js"
import { layerClosed, type RedisConnectionError } from "./internal/connectionError.js"
import { resolveOptions } from "./internal/connectionOptions.js"
import { makeOpener } from "./internal/opener.js"
import { openOnce } from "./internal/openOnce.js"

type CacheConfigError = CacheError.CacheConfigError

export {
  /**
   * A connection could not be opened (unreachable server, wrong credentials, timeout).
   *
   * @category errors
   * @since 0.1.0
   */
  RedisConnectionError
} from "./internal/connectionError.js"

/**
 * How to reach Redis. Only an absent (`undefined`) option takes its default: `null` from plain
 * JavaScript, or a value of the wrong type or out of range, fails the build with a
 * `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /**
   * A `redis://` or `rediss://` URL with a host, and optionally a port, a user name and
   * password (percent-encoded) and a database number (`/2`); `rediss://` turns TLS on. Fields
   * present in the URL win over the separate options; give it as `Redacted` when it carries a
   * password. Anything else (another scheme, no host, query options, a URL that does not parse)
   * is a `CacheConfigError` for `url` before any connection, whose reason never quotes the URL.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** The host (default `localhost`), when no URL is given (a URL always gives one). */
  readonly host?: string | undefined
  /** The port (default 6379), unless the URL gives one. */
  readonly port?: number | undefined
  /** The ACL user name (a `Redacted` string; anything else is a `CacheConfigError`). */
  readonly username?: Redacted.Redacted<string> | undefined
  /**
   * The password, a `Redacted` string (unwrapped only when handed to the driver; never logged):
   * a plain string (from JavaScript) is a `CacheConfigError` that does not quote it.
   */
  readonly password?: Redacted.Redacted<string> | undefined
  /** The database index (default 0). */
  readonly db?: number | undefined
  /**
   * TLS options for the socket, an object (as for `tls.connect`; `{}` for the defaults); presence
   * enables TLS. From plain JavaScript, `true` is read as `{}` and `false` as absent, as ioredis
   * reads them; any other value is a `CacheConfigError`.
   */
  readonly tls?: ConnectionOptions | undefined
  /**
   * The namespace: a prefix put before every key RedisTier and RedisStreams write, read or
   * scan, and the namespace RedisInvalidationBus stamps on its messages (default
   * `tiercache:`). `clear` and `invalidatePattern` only ever reach keys under it. An empty
   * prefix is refused unless `allowEmptyPrefix` is `true`.
   */
  readonly keyPrefix?: string | undefined
  /**
   * Allow `keyPrefix: ""`: the cache's keys are then bare, and `clear` and
   * `invalidatePattern("*")` delete every string key of the database (give the cache a database of
   * its own, `db`). Default false.
   */
  readonly allowEmptyPrefix?: boolean | undefined
  /**
   * Bound on opening a connection, including its first commands (the ready check, the PING),
   * which get it rather than `commandTimeout` (default 2 seconds).
   */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Bound on every command (default 500 millis); large values get more, see below. */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /**
   * Values of at least this many bytes (encoded) are large (default 1 MiB): they are written
   * and read on a connection of their own (opened on first use), so that they never hold up
   * the commands of other keys, and each such command is bounded by `commandTimeout` plus
   * `timeoutPerMegabyte` per MiB it carries and per MiB of the large-value commands still on
   * their way ahead of it (Redis answers them in order). RedisInvalidationBus sends an `update`'s
   * message (`Update`, the value in it) of this many bytes or more as a `Remove` of its key: the
   * other instances read the value from Redis instead of receiving it over Pub/Sub.
   */
  readonly largeValueBytes?: number | undefined
  /** Extra time a command carrying a large value gets per MiB (default 100 millis). */
  readonly timeoutPerMegabyte?: Duration.DurationInput | undefined
  /**
   * Batch the commands issued in one tick into one write (ioredis auto-pipelining; default
   * true). It applies to the commands the cache sends rarely (patterns, removals, streams):
   * RedisTier's reads batch themselves, and its writes and the bus's messages are corked on
   * the socket, so that those of one moment leave in one write either way.
   */
  readonly enableAutoPipelining?: boolean | undefined
  /** Longest wait between two reconnection attempts (default 1 second). */
  readonly reconnectMaxDelay?: Duration.DurationInput | undefined
  /**
   * The connection names shown by CLIENT LIST are `<name>:<role>` (default `tiercache`). Redis
   * takes printable ASCII only: a name with a space, a newline or any other character is a
   * `CacheConfigError`.
   */
  readonly connectionName?: string | undefined
}

/**
 * The connections of one Redis client.
 *
 * @category tags
 * @since 0.1.0
 */
export class RedisConnection extends Context.Tag("@tiercache/redis/RedisConnection")<
  RedisConnection,
  RedisConnection.Service
>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace RedisConnection {
  /**
   * @since 0.1.0
   */
  export interface Service {
    /**
     * The command connection (auto-pipelined, bounded by `commandTimeout`, failing at once
     * while disconnected). Every command sent on it, your own too, fails with "Command timed
     * out" when it has no reply within `commandTimeout`; the connection keeps that bound itself,
     * with one timer, so the driver's own `options.commandTimeout` is not set (and a
     * `duplicate()` of the client has no timeout).
     */
    readonly client: Redis
    /**
     * Opens a new connection for Pub/Sub, closed with the scope. It does not resubscribe by
     * itself after a reconnect: the subscriber does it (and so knows when it is live again).
     */
    readonly subscriber: Effect.Effect<Redis, RedisConnectionError, Scope.Scope>
    /**
     * Runs `use` with exclusive use of the shared connection for blocking reads (opened on
     * first use, closed with the layer). Uses are serialized; a use that is interrupted or
     * fails has its command woken with `CLIENT UNBLOCK`, so the next one does not wait behind it.
     * Once the layer has closed, a `RedisConnectionError`.
     */
    readonly blocking: <A, E, R>(
      use: (client: Redis) => Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | RedisConnectionError, R>
    /**
     * Opens a new connection without a command timeout, for a long-lived blocking loop (a
     * consumer group reader), closed with the scope or with the layer, whichever closes first.
     * Once the layer has closed, a `RedisConnectionError`.
     */
    readonly dedicated: (role: string) => Effect.Effect<Redis, RedisConnectionError, Scope.Scope>
    /**
     * The connection for large values (see `largeValueBytes`), opened on first use and closed
     * with the layer; its commands have no timeout of their own: bound them with `timeoutFor`.
     * Once the layer has closed, a `RedisConnectionError`.
     */
    readonly bulk: Effect.Effect<Redis, RedisConnectionError>
    /**
     * The connection for RedisStreams' commands other than blocking reads and consumers
     * (`publish`, `readLatest`, non-blocking `read`, `createGroup`, `ack`), opened on first use
     * and closed with the layer, so that an entry of many MB never holds up a cache command;
     * its commands have no timeout of their own: RedisStreams bounds them.
     * Once the layer has closed, a `RedisConnectionError`.
     */
    readonly streams: Effect.Effect<Redis, RedisConnectionError>
    /** The threshold (bytes) from which a value is large. */
    readonly largeValueBytes: number
    /** The bound (ms) on a command carrying `bytes` bytes: `commandTimeout` plus the per-MiB allowance. */
    readonly timeoutFor: (bytes: number) => number
    /** The namespace (prefix of every key; the bus's namespace), never empty unless allowed. */
    readonly keyPrefix: string
    /** The bound on every command. */
    readonly commandTimeout: Duration.Duration
    /** The bound on opening a connection. */
    readonly connectTimeout: Duration.Duration
  }
}

/**
 * Opens the command connection (connect + PING under `connectTimeout`) for the life of the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisConnection.Service, RedisConnectionError | CacheConfigError, Scope.Scope> =>
  Effect.gen(function* () {
    const {
      connectTimeout,
      commandTimeout,
      reconnectMaxDelay,
      keyPrefix,
      connectionName,
      tls,
      largeValueBytes,
      timeoutFor
    } = yield* resolveOptions(options)
    const opener = yield* makeOpener({
      options,
      connectTimeout,
      commandTimeout,
      reconnectMaxDelay,
      connectionName,
      tls
    })
    const client = yield* opener.open("command")
    const blocking = yield* makeBlocking(opener, client, commandTimeout, () => layerClosed("blocking"))
    const scope = yield* Effect.scope
    // Opened on first use and kept, even when the large value that opened it gave up meanwhile
    // (openOnce.ts); a failed attempt is not kept (the next large value tries again).
    const bulk = yield* openOnce(Scope.extend(opener.open("bulk"), scope), scope, () => layerClosed("bulk"))
    const streams = yield* openOnce(Scope.extend(opener.open("streams"), scope), scope, () =>
      layerClosed("streams")
    )
    // A dedicated connection lives in a scope of the layer's, closed with the caller's scope:
    // closing the layer closes it too (a consumer then ends), and none is opened afterwards.
    let closed = false
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        closed = true
      })
    )
    const dedicated = (role: string) =>
      Effect.gen(function* () {
        if (closed) return yield* layerClosed(role)
        const own = yield* Scope.fork(scope, ExecutionStrategy.sequential)
        yield* Effect.addFinalizer((exit) => Scope.close(own, exit))
        return yield* Scope.extend(opener.open("dedicated", role), own)
      })
    return {
      client,
      subscriber: opener.open("subscriber"),
      blocking,
      dedicated,
      bulk,
      streams,
      largeValueBytes,
      timeoutFor,
      keyPrefix,
      commandTimeout,
      connectTimeout
    } satisfies RedisConnection.Service
  })

/**
 * The connections as a layer; they are closed when the layer's scope closes.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<RedisConnection, RedisConnectionError | CacheConfigError> =>
  Layer.scoped(RedisConnection, make(options))

/**
 * The connections from configuration, e.g. `{ url: Config.redacted("REDIS_URL") }`.
 *
 * @example
 * ```ts
 * import { RedisConnection } from "@tiercache/redis"
 * import { Config, Duration } from "effect"
 *
 * // REDIS_URL (e.g. redis://:secret@redis.internal:6379/0) is read when the layer is built and
 * // stays Redacted: it never appears in logs or errors.
 * const RedisLive = RedisConnection.layerConfig({
 *   url: Config.redacted("REDIS_URL"),
 *   commandTimeout: Config.duration("REDIS_COMMAND_TIMEOUT").pipe(Config.withDefault(Duration.seconds(1)))
 * })
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layerConfig = (
  config: Config.Config.Wrap<Options>
): Layer.Layer<RedisConnection, RedisConnectionError | CacheConfigError | ConfigError.ConfigError> =>
  Layer.scoped(RedisConnection, Effect.flatMap(Config.unwrap(config), make))
