/**
 * How RedisStreams sends its commands and reads their replies: each command bounded by a
 * timeout (the connection's command timeout unless given), every failure a
 * {@link CacheError.StreamError} of the stream; stream, group and consumer names, ids, fields
 * (well-formed UTF-16 text) and counts checked before sending;
 * XREAD / XREADGROUP / XREVRANGE entries decoded.
 *
 * The commands that are neither blocking reads nor a consumer's (`publish`, `readLatest`, a
 * non-blocking `read`, `createGroup`, `ack`) go on the connection's streams connection
 * (`exchange`), never on the command connection: an entry of 8 MB on a link of 10 MB/s failed
 * every `readLatest` and `publish` of it there (its fixed command timeout), and the cache's
 * reads sent meanwhile waited behind its transfer and timed out too.
 */
import { CacheError, type CacheStreams } from "@tiercache/core"
import { Duration, Effect } from "effect"
import type { Redis } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"
import { describe } from "./describe.js"
import { enqueue } from "./queuedBytes.js"
import { NoReply, reply } from "./receiving.js"
import { sanitize } from "./sanitize.js"
import { timedOut } from "./stalls.js"
import { isWellFormed } from "./wellFormed.js"

type StreamError = CacheError.StreamError
const { StreamError } = CacheError

/** A stream entry as Redis answers it. */
export type RawEntry = [id: string, fields: Array<string> | null]

/** An entry as the service answers it. */
export const toEntry = ([id, flat]: RawEntry): CacheStreams.StreamEntry => {
  const fields: Array<readonly [string, string]> = []
  // A pending entry that was deleted since comes back with no fields.
  if (flat !== null) for (let i = 0; i + 1 < flat.length; i += 2) fields.push([flat[i]!, flat[i + 1]!])
  return { id, fields }
}

/** XREAD / XREADGROUP on one stream: `null` or `[[key, entries]]`. */
export const fromRead = (reply: unknown): ReadonlyArray<CacheStreams.StreamEntry> => {
  if (reply === null || reply === undefined) return []
  const streams = reply as Array<[string, Array<RawEntry>]>
  return (streams[0]?.[1] ?? []).map(toEntry)
}

/** Whether `n` is a positive integer (a count, a block time). */
export const isPositiveInteger = (n: unknown): n is number =>
  typeof n === "number" && Number.isSafeInteger(n) && n > 0

/** Whether `value` is a non-empty, well-formed string: a stream name, an id, a group, a consumer. */
const isName = (value: unknown): value is string =>
  typeof value === "string" && value.length > 0 && isWellFormed(value)

/** Why `value` is not a name (see {@link isName}). */
const notAName = (what: string, value: unknown): string =>
  typeof value === "string" && value.length > 0
    ? `${what} must be well-formed UTF-16, got ${JSON.stringify(value)} with a lone surrogate, which Redis cannot hold apart from U+FFFD`
    : `${what} must be a non-empty string, got ${typeof value}`

/** The reason of an argument whose reading threw `cause` (a Proxy, a throwing getter). */
const unreadable = (what: string, cause: unknown): string =>
  `${what} could not be read: ${cause instanceof Error ? cause.message : typeof cause}`

/**
 * A command on `conn`, its name first in `args`. The arguments go to ioredis as one array,
 * never spread as a function's arguments: an entry of many fields, or an ack of many ids, would
 * pass V8's limit on those (some 120,000) and fail with "Maximum call stack size exceeded".
 */
export const call = (conn: Redis, args: ReadonlyArray<string | number>) => () =>
  conn.call(String(args[0]), args.slice(1)) as Promise<unknown>

/** The bytes a command's arguments take on the wire (about: without the protocol's framing). */
const bytesOf = (args: ReadonlyArray<string | number>): number => {
  let bytes = 0
  for (const arg of args) bytes += typeof arg === "string" ? Buffer.byteLength(arg) : 16
  return bytes
}

/** The commands of one streams service on `connection`, bounded by its `commandTimeout` unless told otherwise. */
export const make = (connection: RedisConnection.Service) => {
  const commandTimeout = connection.commandTimeout
  const commandMs = Duration.toMillis(commandTimeout)
  const invalid = (operation: string, stream: string, reason: string) =>
    Effect.fail(new StreamError({ operation, stream, reason }))

  const send = <A>(
    operation: string,
    stream: string,
    run: () => Promise<A>,
    within: Duration.Duration = commandTimeout
  ): Effect.Effect<A, StreamError> =>
    Effect.tryPromise({
      try: run,
      catch: (cause) =>
        new StreamError({ operation, stream, reason: describe(cause), cause: sanitize(cause) })
    }).pipe(
      Effect.timeoutFail({
        duration: within,
        onTimeout: () =>
          new StreamError({ operation, stream, reason: `no answer within ${Duration.format(within)}` })
      })
    )

  /**
   * `send` of a command on `conn`, a connection of the stream commands, whose reply may be large
   * (a consumer's reads and claims, a blocking read's): bounded by `within`, and past it for as
   * long as replies keep arriving on `conn` (receiving.ts), until nothing was read for a command
   * timeout.
   */
  const receive = <A>(
    operation: string,
    stream: string,
    conn: Redis,
    run: () => Promise<A>,
    within: Duration.Duration = commandTimeout
  ): Effect.Effect<A, StreamError> =>
    Effect.mapError(reply(conn, run, Duration.toMillis(within), commandMs), (cause) => {
      // A connection whose commands keep having no reply is cut, and made again (stalls.ts).
      if (cause instanceof NoReply) timedOut(conn)
      return new StreamError(
        cause instanceof NoReply
          ? {
              operation,
              stream,
              reason: `no answer within ${Duration.format(within)} (nothing received for ${Duration.format(commandTimeout)})`
            }
          : { operation, stream, reason: describe(cause), cause: sanitize(cause) }
      )
    })

  /** The streams connection, once open (it is kept, and closed with the layer). */
  let opened: Redis | undefined

  /**
   * A command on the streams connection (its name first in `args`), whose arguments (a
   * publish's entry) or reply (a read's entries) may be large: bounded by `commandTimeout` plus
   * `timeoutPerMegabyte` per MiB of its arguments and of those of the commands still on their
   * way ahead of it there (queuedBytes.ts), and past that for as long as replies keep arriving
   * on the connection (its own, or one ahead of it: `receive`), until nothing was read for a
   * command timeout.
   */
  const exchange = (
    operation: string,
    stream: string,
    args: ReadonlyArray<string | number>
  ): Effect.Effect<unknown, StreamError> =>
    Effect.flatMap(
      opened === undefined
        ? Effect.mapError(
            Effect.tap(connection.streams, (conn) => {
              opened = conn
            }),
            (error) => new StreamError({ operation, stream, reason: error.reason, cause: error })
          )
        : Effect.succeed(opened),
      (conn) =>
        Effect.suspend(() => {
          // Only a large command gets more time, as a large value does (RedisTier).
          const size = bytesOf(args)
          const bytes = size >= connection.largeValueBytes ? size : 0
          let sent: Promise<unknown>
          try {
            sent = call(conn, args)()
          } catch (cause) {
            sent = Promise.reject(cause)
          }
          const within = Duration.millis(connection.timeoutFor(enqueue(conn, bytes, sent) + bytes))
          return receive(operation, stream, conn, () => sent, within)
        })
    )

  /** Fails unless `stream` is a name (see {@link isName}); the error names it escaped. */
  const checkStream = (operation: string, stream: string) =>
    isName(stream)
      ? Effect.void
      : invalid(
          operation,
          typeof stream === "string" ? JSON.stringify(stream) : `(${typeof stream})`,
          notAName("the stream name", stream)
        )

  /** Fails unless `value` (an id, a group or consumer name) is a name (see {@link isName}). */
  const checkText = (operation: string, stream: string, what: string, value: unknown) =>
    isName(value) ? Effect.void : invalid(operation, stream, notAName(what, value))

  /**
   * The fields of an entry to publish as pairs, read once here: names strings, values strings
   * or finite numbers (from plain JavaScript anything else, or fields that throw when read, fail).
   */
  const pairsOf = (
    operation: string,
    stream: string,
    fields: unknown
  ): Effect.Effect<ReadonlyArray<readonly [string, string | number]>, StreamError> => {
    const bad = (why: string) => invalid(operation, stream, why)
    try {
      if (typeof fields !== "object" || fields === null) {
        return bad(`fields must be pairs or a record, got ${fields === null ? "null" : typeof fields}`)
      }
      const given: ReadonlyArray<unknown> = Array.isArray(fields) ? fields : Object.entries(fields)
      const pairs: Array<readonly [string, string | number]> = []
      for (const pair of given) {
        if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string") {
          return bad("each field must be a [name, value] pair with a string name")
        }
        const [name, value]: ReadonlyArray<unknown> = pair
        if (typeof value !== "string" && !(typeof value === "number" && Number.isFinite(value))) {
          return bad(`the value of field ${JSON.stringify(name)} must be a string or a finite number`)
        }
        // Redis would store U+FFFD for a lone surrogate: the entry would read back altered, and
        // two field names could become one.
        if (!isWellFormed(name as string) || (typeof value === "string" && !isWellFormed(value))) {
          return bad(
            `field ${JSON.stringify(name)} must be well-formed UTF-16 (no lone surrogate), name and value`
          )
        }
        pairs.push([name as string, value])
      }
      return Effect.succeed(pairs)
    } catch (cause) {
      return bad(unreadable("fields", cause))
    }
  }

  /** The ids to acknowledge, read once here: an array of names (see {@link isName}). */
  const idsOf = (
    operation: string,
    stream: string,
    ids: unknown
  ): Effect.Effect<ReadonlyArray<string>, StreamError> => {
    try {
      if (Array.isArray(ids) && ids.every(isName)) return Effect.succeed([...ids] as ReadonlyArray<string>)
      return invalid(operation, stream, "ids must be an array of non-empty, well-formed strings")
    } catch (cause) {
      return invalid(operation, stream, unreadable("ids", cause))
    }
  }

  return { invalid, send, receive, exchange, checkStream, checkText, pairsOf, idsOf }
}

/** The commands of one streams service. */
export type Commands = ReturnType<typeof make>
