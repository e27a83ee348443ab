/**
 * Connections to Redis (ioredis): one for commands, plus dedicated ones for Pub/Sub and for
 * blocking stream reads, so that neither a subscription nor a blocked read ever delays a cache
 * command.
 *
 * Building the layer connects and PINGs under `connectTimeout`: a wrong password or an
 * unreachable server is a {@link RedisConnectionError} then, never a hang. Afterwards every
 * connection reconnects by itself in the background (capped exponential backoff), and a
 * command sent while its connection is down fails at once instead of waiting in a queue.
 *
 * @since 0.1.0
 */
import type { ConnectionOptions } from "node:tls"
import { CacheError } from "@tiercache/core"
import type { ConfigError } from "effect"
import {
  Config,
  Context,
  Duration,
  Effect,
  Exit,
  Layer,
  Option,
  Redacted,
  Runtime,
  Schema,
  Scope,
  SynchronizedRef
} from "effect"
import { Redis, type RedisOptions } from "ioredis"
import { READ_COMMAND } from "./internal/commands.js"

const { CacheConfigError } = CacheError
type CacheConfigError = CacheError.CacheConfigError

/**
 * A connection could not be opened (unreachable server, wrong credentials, timeout).
 *
 * @category errors
 * @since 0.1.0
 */
export class RedisConnectionError extends Schema.TaggedError<RedisConnectionError>(
  "@tiercache/redis/RedisConnectionError"
)("RedisConnectionError", {
  /** What went wrong, for people (never contains credentials). */
  reason: Schema.String,
  /** The underlying failure, when there is one. */
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `redis connection failed: ${this.reason}`
  }
}

/**
 * How to reach Redis.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /**
   * A `redis://` or `rediss://` URL. Fields present in the URL win over the separate options;
   * give it as `Redacted` when it carries a password.
   */
  readonly url?: string | Redacted.Redacted<string> | undefined
  /** The host (default `localhost`), when no URL is given. */
  readonly host?: string | undefined
  /** The port (default 6379), when no URL is given. */
  readonly port?: number | undefined
  /** The ACL user name. */
  readonly username?: Redacted.Redacted<string> | undefined
  /** The password (unwrapped only when handed to the driver; never logged). */
  readonly password?: Redacted.Redacted<string> | undefined
  /** The database index (default 0). */
  readonly db?: number | undefined
  /** TLS options for the socket (as for `tls.connect`); presence enables TLS. */
  readonly tls?: ConnectionOptions | undefined
  /** A prefix put before every key this package writes, read or scans (default `""`). */
  readonly keyPrefix?: string | undefined
  /** Bound on opening a connection, including its first PING (default 2 seconds). */
  readonly connectTimeout?: Duration.DurationInput | undefined
  /** Bound on every command (default 500 millis). */
  readonly commandTimeout?: Duration.DurationInput | undefined
  /**
   * Batch the commands issued in one tick into one write (ioredis auto-pipelining; default
   * true). RedisTier's reads batch themselves and are always sent at once.
   */
  readonly enableAutoPipelining?: boolean | undefined
  /** Longest wait between two reconnection attempts (default 1 second). */
  readonly reconnectMaxDelay?: Duration.DurationInput | undefined
  /** The connection names shown by CLIENT LIST are `<name>:<role>` (default `tiercache`). */
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
     * while disconnected).
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
     */
    readonly blocking: <A, E, R>(
      use: (client: Redis) => Effect.Effect<A, E, R>
    ) => Effect.Effect<A, E | RedisConnectionError, R>
    /**
     * Opens a new connection without a command timeout, for a long-lived blocking loop (a
     * consumer group reader), closed with the scope.
     */
    readonly dedicated: (role: string) => Effect.Effect<Redis, RedisConnectionError, Scope.Scope>
    /** The prefix of every key. */
    readonly keyPrefix: string
    /** The bound on every command. */
    readonly commandTimeout: Duration.Duration
    /** The bound on opening a connection. */
    readonly connectTimeout: Duration.Duration
  }
}

const decodeDuration = (
  input: Duration.DurationInput | undefined,
  fallback: Duration.DurationInput,
  option: string
): Effect.Effect<Duration.Duration, CacheConfigError> =>
  Effect.try({
    try: () => Duration.decode(input ?? fallback),
    catch: () => new CacheConfigError({ option, reason: 'must be a duration such as "500 millis"' })
  }).pipe(
    Effect.filterOrFail(
      (d) => Duration.isFinite(d) && Duration.toMillis(d) > 0,
      () => new CacheConfigError({ option, reason: "must be a positive, finite duration" })
    )
  )

type Role = "command" | "subscriber" | "blocking" | "dedicated"

interface Opener {
  readonly open: (role: Role, label?: string) => Effect.Effect<Redis, RedisConnectionError, Scope.Scope>
}

const describeError = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : "unknown error"

const makeOpener = (settings: {
  readonly options: Options
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly reconnectMaxDelay: Duration.Duration
  readonly connectionName: string
}): Effect.Effect<Opener> =>
  Effect.gen(function* () {
    const runtime = yield* Effect.runtime<never>()
    const runFork = Runtime.runFork(runtime)
    const { options } = settings
    const connectMs = Duration.toMillis(settings.connectTimeout)
    const commandMs = Duration.toMillis(settings.commandTimeout)
    const maxDelayMs = Duration.toMillis(settings.reconnectMaxDelay)

    const driverOptions = (role: Role, label: string): RedisOptions => {
      const base: RedisOptions = {
        lazyConnect: true,
        connectTimeout: connectMs,
        // Fail a command at once while disconnected instead of queueing it (and sending it
        // late, after its caller gave up); reject in-flight commands when the socket closes.
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        autoResendUnfulfilledCommands: false,
        retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times - 1, 16), maxDelayMs),
        connectionName: `${settings.connectionName}:${label}`,
        enableAutoPipelining: role === "command" && (options.enableAutoPipelining ?? true),
        autoPipeliningIgnoredCommands: [READ_COMMAND],
        autoResubscribe: false
      }
      if (role === "command" || role === "subscriber") base.commandTimeout = commandMs
      if (options.host !== undefined) base.host = options.host
      if (options.port !== undefined) base.port = options.port
      if (options.db !== undefined) base.db = options.db
      if (options.tls !== undefined) base.tls = options.tls
      if (options.username !== undefined) base.username = Redacted.value(options.username)
      if (options.password !== undefined) base.password = Redacted.value(options.password)
      return base
    }

    const create = (role: Role, label: string): Redis => {
      const driver = driverOptions(role, label)
      const url =
        options.url === undefined
          ? undefined
          : Redacted.isRedacted(options.url)
            ? Redacted.value(options.url)
            : options.url
      return url === undefined ? new Redis(driver) : new Redis(url, driver)
    }

    const close = (client: Redis, graceful: boolean) =>
      Effect.gen(function* () {
        if (graceful && client.status === "ready") {
          yield* Effect.tryPromise(() => client.quit()).pipe(
            Effect.timeout(settings.commandTimeout),
            Effect.ignore
          )
        }
        client.disconnect()
      })

    const open = (role: Role, label: string = role) =>
      Effect.gen(function* () {
        let lastError: unknown
        let live = false
        let closing = false
        const client = yield* Effect.acquireRelease(
          Effect.sync(() => {
            const client = create(role, label)
            const where = `${client.options.host}:${client.options.port}`
            const annotate = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
              Effect.annotateLogs(effect, { redis: where, connection: label })
            // A listener must always be there: ioredis prints unhandled "error" events itself.
            client.on("error", (error: unknown) => {
              lastError = error
              runFork(annotate(Effect.logDebug(`redis connection error: ${describeError(error)}`)))
            })
            client.on("close", () => {
              if (!live) return
              live = false
              if (closing) return
              runFork(annotate(Effect.logWarning("redis connection lost; reconnecting in the background")))
            })
            client.on("ready", () => {
              if (live) return
              live = true
              runFork(annotate(Effect.logDebug("redis connection ready")))
            })
            return client
          }),
          (client) =>
            Effect.suspend(() => {
              closing = true
              return close(client, role === "command" || role === "subscriber")
            })
        )
        yield* Effect.tryPromise({
          try: () => client.connect(),
          catch: (cause) => lastError ?? cause
        }).pipe(
          Effect.zipRight(Effect.tryPromise({ try: () => client.ping(), catch: (cause) => cause })),
          Effect.mapError(
            (cause) =>
              new RedisConnectionError({ reason: `${label} connection: ${describeError(cause)}`, cause })
          ),
          Effect.timeoutFail({
            duration: settings.connectTimeout,
            onTimeout: () =>
              new RedisConnectionError({
                reason: `${label} connection: no answer within ${Duration.format(settings.connectTimeout)}${
                  lastError === undefined ? "" : ` (last error: ${describeError(lastError)})`
                }`
              })
          }),
          // Stop the background retries of a connection that never came up.
          Effect.tapError(() => Effect.sync(() => client.disconnect()))
        )
        return client
      })

    return { open }
  })

interface BlockingConnection {
  readonly client: Redis
  /** The server-side id of the connection now (it changes on reconnect). */
  id: string | undefined
}

const makeBlocking = (
  opener: Opener,
  commands: Redis,
  commandTimeout: Duration.Duration
): Effect.Effect<RedisConnection.Service["blocking"], never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const lock = yield* Effect.makeSemaphore(1)
    const ref = yield* SynchronizedRef.make(Option.none<BlockingConnection>())
    const readId = (conn: BlockingConnection) =>
      conn.client.client("ID").then(
        (id) => {
          conn.id = String(id)
        },
        () => {
          conn.id = undefined
        }
      )
    const get = SynchronizedRef.modifyEffect(ref, (current) =>
      Option.match(current, {
        onSome: (conn) => Effect.succeed([conn, current] as const),
        onNone: () =>
          Effect.gen(function* () {
            const client = yield* Scope.extend(opener.open("blocking"), scope)
            const conn: BlockingConnection = { client, id: undefined }
            client.on("ready", () => void readId(conn))
            yield* Effect.promise(() => readId(conn))
            return [conn, Option.some(conn)] as const
          })
      })
    )
    const unblock = (conn: BlockingConnection) =>
      conn.id === undefined
        ? Effect.void
        : Effect.tryPromise(() => commands.client("UNBLOCK", conn.id!)).pipe(
            Effect.timeout(commandTimeout),
            Effect.ignore
          )
    return <A, E, R>(use: (client: Redis) => Effect.Effect<A, E, R>) =>
      lock.withPermits(1)(
        Effect.flatMap(get, (conn) =>
          // Whether interrupted or failed (e.g. timed out), the command may still be blocked
          // on the connection: wake it so that the next use does not queue behind it.
          use(conn.client).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : unblock(conn))))
        )
      )
  })

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
    const connectTimeout = yield* decodeDuration(options.connectTimeout, "2 seconds", "connectTimeout")
    const commandTimeout = yield* decodeDuration(options.commandTimeout, "500 millis", "commandTimeout")
    const reconnectMaxDelay = yield* decodeDuration(
      options.reconnectMaxDelay,
      "1 second",
      "reconnectMaxDelay"
    )
    if (
      options.port !== undefined &&
      !(Number.isInteger(options.port) && options.port > 0 && options.port < 65536)
    ) {
      return yield* new CacheConfigError({ option: "port", reason: "must be an integer in 1..65535" })
    }
    if (options.db !== undefined && !(Number.isInteger(options.db) && options.db >= 0)) {
      return yield* new CacheConfigError({ option: "db", reason: "must be a non-negative integer" })
    }
    const opener = yield* makeOpener({
      options,
      connectTimeout,
      commandTimeout,
      reconnectMaxDelay,
      connectionName: options.connectionName ?? "tiercache"
    })
    const client = yield* opener.open("command")
    const blocking = yield* makeBlocking(opener, client, commandTimeout)
    return {
      client,
      subscriber: opener.open("subscriber"),
      blocking,
      dedicated: (role) => opener.open("dedicated", role),
      keyPrefix: options.keyPrefix ?? "",
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
