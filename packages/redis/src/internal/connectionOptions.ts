/**
 * RedisConnection's options resolved (RedisConnection.ts `make`): each checked, with its
 * default, before any connection is opened; a bad one is a `CacheConfigError` naming it.
 */

import type { ConnectionOptions } from "node:tls"
import { CacheError } from "@tiercache/core"
import { Duration, Effect } from "effect"
import type { Options } from "../RedisConnection.js"
import { credentialProblem } from "./credentials.js"
import { DEFAULT_PREFIX, resolvePrefix } from "./namespace.js"
import {
  decodeDuration,
  given,
  notABoolean,
  notANonEmptyString,
  notAPositiveInteger
} from "./optionsObject.js"
import { urlProblem } from "./redisUrl.js"

const CacheConfigError = CacheError.CacheConfigError
type CacheConfigError = CacheError.CacheConfigError

/**
 * The longest delay (ms) a Node timer keeps: a longer one fires after 1 ms instead, with a
 * TimeoutOverflowWarning on stderr. With a command timeout of 30 days every command timed out
 * at once, and the command connection's deadline timer (deadlines.ts) fired every millisecond
 * while a command waited, with a warning each time.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1

/** A duration option: positive, finite, and a delay a Node timer keeps. */
const timerDuration = (
  input: unknown,
  fallback: Duration.DurationInput,
  option: string
): Effect.Effect<Duration.Duration, CacheConfigError> => {
  const decoded = decodeDuration(given(input, fallback), option)
  if (decoded instanceof CacheConfigError) return Effect.fail(decoded)
  return Duration.isFinite(decoded) &&
    Duration.toMillis(decoded) > 0 &&
    Duration.toMillis(decoded) <= MAX_TIMER_MS
    ? Effect.succeed(decoded)
    : Effect.fail(
        new CacheConfigError({
          option,
          reason: `must be a positive, finite duration of at most ${MAX_TIMER_MS} millis (about 24.8 days, the longest timer Node keeps)`
        })
      )
}

/** The options a connection layer keeps, resolved. */
export interface Resolved {
  readonly connectTimeout: Duration.Duration
  readonly commandTimeout: Duration.Duration
  readonly reconnectMaxDelay: Duration.Duration
  readonly keyPrefix: string
  readonly connectionName: string
  /**
   * The driver's TLS settings: the `tls` object as given; from plain JavaScript, `true` as `{}`
   * (TLS with the defaults) and `false` as absent, as ioredis itself reads them.
   */
  readonly tls: ConnectionOptions | undefined
  readonly largeValueBytes: number
  /** The bound (ms) on a command carrying `bytes` bytes: `commandTimeout` plus the per-MiB allowance. */
  readonly timeoutFor: (bytes: number) => number
}

/** Checks `options` and resolves their defaults. */
export const resolveOptions = (options: Options): Effect.Effect<Resolved, CacheConfigError> =>
  Effect.gen(function* () {
    const connectTimeout = yield* timerDuration(options.connectTimeout, "2 seconds", "connectTimeout")
    const commandTimeout = yield* timerDuration(options.commandTimeout, "500 millis", "commandTimeout")
    const reconnectMaxDelay = yield* timerDuration(options.reconnectMaxDelay, "1 second", "reconnectMaxDelay")
    if (options.host !== undefined) {
      const badHost = notANonEmptyString(options.host, "host")
      if (badHost) return yield* badHost
    }
    // Any object of tls.connect options (`{}` for the defaults); presence turns TLS on. From
    // plain JavaScript, `true` and `false` are read as ioredis reads them.
    const givenTls: unknown = options.tls
    if (
      givenTls !== undefined &&
      typeof givenTls !== "boolean" &&
      (typeof givenTls !== "object" || givenTls === null || Array.isArray(givenTls))
    ) {
      return yield* new CacheConfigError({
        option: "tls",
        reason: "must be an object of tls.connect options ({} for the defaults)"
      })
    }
    const tls = givenTls === true ? {} : givenTls === false ? undefined : options.tls
    for (const option of ["allowEmptyPrefix", "enableAutoPipelining"] as const) {
      const bad = notABoolean(options[option], option)
      if (bad) return yield* bad
    }
    if (
      options.port !== undefined &&
      !(Number.isInteger(options.port) && options.port > 0 && options.port < 65536)
    ) {
      return yield* new CacheConfigError({ option: "port", reason: "must be an integer in 1..65535" })
    }
    if (options.db !== undefined && !(Number.isInteger(options.db) && options.db >= 0)) {
      return yield* new CacheConfigError({ option: "db", reason: "must be a non-negative integer" })
    }
    const badUrl = options.url === undefined ? undefined : urlProblem(options.url)
    if (badUrl !== undefined) return yield* new CacheConfigError({ option: "url", reason: badUrl })
    for (const option of ["username", "password"] as const) {
      const bad = options[option] === undefined ? undefined : credentialProblem(options[option])
      if (bad !== undefined) return yield* new CacheConfigError({ option, reason: bad })
    }
    const keyPrefix = yield* resolvePrefix(
      "keyPrefix",
      options.keyPrefix,
      options.allowEmptyPrefix,
      DEFAULT_PREFIX
    )
    const connectionName: unknown = given<unknown>(options.connectionName, "tiercache")
    // What CLIENT SETNAME accepts: with anything else Redis refused it, and the driver went on
    // with the connection unnamed (nothing in CLIENT LIST told the cache's connections apart).
    if (!(typeof connectionName === "string" && /^[!-~]+$/.test(connectionName))) {
      return yield* new CacheConfigError({
        option: "connectionName",
        reason:
          "must be a non-empty string of printable ASCII without spaces (Redis refuses any other client name)"
      })
    }
    const largeValueBytes = given(options.largeValueBytes, 1024 * 1024)
    const badLarge = notAPositiveInteger(largeValueBytes, "largeValueBytes")
    if (badLarge) return yield* badLarge
    const perMegabyte = yield* timerDuration(options.timeoutPerMegabyte, "100 millis", "timeoutPerMegabyte")
    const commandMs = Duration.toMillis(commandTimeout)
    const perMegabyteMs = Duration.toMillis(perMegabyte)
    const timeoutFor = (bytes: number) =>
      Math.min(MAX_TIMER_MS, Math.ceil(commandMs + (perMegabyteMs * bytes) / (1024 * 1024)))
    return {
      connectTimeout,
      commandTimeout,
      reconnectMaxDelay,
      keyPrefix,
      connectionName,
      tls,
      largeValueBytes,
      timeoutFor
    }
  })
