/**
 * Opens ioredis connections for RedisConnection: the driver options of each role, connect and
 * PING under the connect timeout, the driver's events turned into Effect log lines (its console
 * notices included, see quiet.ts), and a close with the scope.
 */
import type { ConnectionOptions } from "node:tls"
import { Duration, Effect, Redacted, Runtime, type Scope } from "effect"
import { Redis, type RedisOptions } from "ioredis"
import type { Options } from "../RedisConnection.js"
import { READ_COMMAND } from "./commands.js"
import { RedisConnectionError } from "./connectionError.js"
import { keepDeadlines } from "./deadlines.js"
import { given } from "./optionsObject.js"
import { quiet } from "./quiet.js"
import { urlFields } from "./redisUrl.js"
import { sanitize, withoutUser } from "./sanitize.js"
import { STALL_LIMIT, watch, watchStalls } from "./stalls.js"

/** What a connection is for: its driver options follow from it. */
export type Role = "command" | "subscriber" | "blocking" | "dedicated" | "bulk" | "streams"

/** Opens connections. */
export interface Opener {
  readonly open: (role: Role, label?: string) => Effect.Effect<Redis, RedisConnectionError, Scope.Scope>
}

/** A driver error's text, for a reason or a log line (without the ACL user a refusal names). */
const describeError = (error: unknown): string =>
  withoutUser(error instanceof Error ? error.message : typeof error === "string" ? error : "unknown error")

/** The opener of one RedisConnection. */
export const makeOpener = (settings: {
  readonly options: Options
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly reconnectMaxDelay: Duration.Duration
  readonly connectionName: string
  /** The driver's TLS settings, resolved (connectionOptions.ts). */
  readonly tls: ConnectionOptions | undefined
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
        enableAutoPipelining:
          (role === "command" || role === "streams") && given(options.enableAutoPipelining, true),
        autoPipeliningIgnoredCommands: [READ_COMMAND],
        autoResubscribe: false,
        // How long a closed connection's socket may take to end before ioredis destroys it.
        // Its timer is only cleared by the socket's "close", which a socket that had already
        // closed (Redis down, a failed open) never emits again: with ioredis's 2 s, a program
        // whose connection was down kept running 2 s after it had finished. Nothing is left to
        // send when a connection is closed (a graceful close has its QUIT answered first).
        disconnectTimeout: 0
      }
      // The command connection keeps its commands' deadlines itself, with one timer (deadlines.ts).
      if (role === "subscriber") base.commandTimeout = commandMs
      if (options.host !== undefined) base.host = options.host
      if (options.port !== undefined) base.port = options.port
      if (options.db !== undefined) base.db = options.db
      if (settings.tls !== undefined) base.tls = settings.tls
      if (options.username !== undefined) base.username = Redacted.value(options.username)
      if (options.password !== undefined) base.password = Redacted.value(options.password)
      return base
    }

    const create = (role: Role, label: string): Redis => {
      const driver = driverOptions(role, label)
      if (options.url === undefined) return new Redis(driver)
      // Read here (redisUrl.ts), never handed to ioredis as text; its fields win.
      return new Redis({ ...driver, ...urlFields(options.url, driver.tls) })
    }

    const close = (client: Redis, graceful: boolean) =>
      Effect.gen(function* () {
        if (graceful && client.status === "ready") {
          // Interruptible, or the timeout could not end it: a finalizer runs uninterruptibly, and
          // the QUIT of a connection without a command timeout of its own (streams) that answers
          // nothing held the layer's close for good.
          yield* Effect.tryPromise(() => client.quit()).pipe(
            Effect.interruptible,
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
        /** Sets the command connection's timeout of the commands sent from then on. */
        let setDeadline: (timeoutMs: number) => void = () => {}
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
            const onCut = () =>
              runFork(
                annotate(
                  Effect.logWarning(
                    `redis ${label} connection read nothing for ${STALL_LIMIT} command timeouts while its commands timed out; reconnecting`
                  )
                )
              )
            // Its first commands (the driver's ready check, the PING) are bounded by the connect
            // timeout, as the whole open is: a server slow to answer them (a proxy that connects
            // upstream on the first command) failed the open at the command timeout.
            if (role === "command")
              setDeadline = keepDeadlines(client, connectMs, watchStalls(client, commandMs, onCut))
            // Their commands, bounded by the stream commands (receiving.ts), tell of timeouts.
            if (role === "streams" || role === "blocking" || role === "dedicated")
              watch(client, commandMs, onCut)
            client.on("ready", () => {
              if (live) return
              live = true
              runFork(annotate(Effect.logDebug("redis connection ready")))
            })
            quiet(client, (notice) => runFork(annotate(Effect.logWarning(`redis: ${notice}`))))
            return client
          }),
          (client) =>
            Effect.suspend(() => {
              closing = true
              return close(client, role === "command" || role === "subscriber" || role === "streams")
            })
        )
        yield* Effect.tryPromise({
          try: () => client.connect(),
          catch: (cause) => lastError ?? cause
        }).pipe(
          Effect.zipRight(Effect.tryPromise({ try: () => client.ping(), catch: (cause) => cause })),
          // ioredis selects the database itself but goes on in database 0 when the server refuses
          // it (an index out of range): selected again here, so that a refusal fails the open.
          Effect.zipRight(
            client.options.db
              ? Effect.tryPromise({ try: () => client.select(client.options.db!), catch: (cause) => cause })
              : Effect.void
          ),
          Effect.mapError(
            (cause) =>
              new RedisConnectionError({
                reason: `${label} connection: ${describeError(cause)}`,
                cause: sanitize(cause)
              })
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
        // Open: every command from now on (a reconnect's ready check too) gets the command timeout.
        setDeadline(commandMs)
        return client
      })

    return { open }
  })
