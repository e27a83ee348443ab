/**
 * How RedisStreams sends its commands and reads their replies: each command bounded by a
 * timeout (the connection's command timeout unless given), every failure a
 * {@link CacheError.StreamError} of the stream; stream names and counts checked before sending;
 * XREAD / XREADGROUP / XREVRANGE entries decoded.
 */
import { CacheError, type CacheStreams } from "@tiercache/core"
import { Duration, Effect } from "effect"
import type { Redis } from "ioredis"
import { describe } from "./describe.js"
import { sanitize } from "./sanitize.js"

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

/** A command on `conn`, its name first in `args`. */
export const call = (conn: Redis, args: ReadonlyArray<string | number>) => () =>
  conn.call(String(args[0]), ...args.slice(1)) as Promise<unknown>

/** The commands of one streams service, bounded by `commandTimeout` unless told otherwise. */
export const make = (commandTimeout: Duration.Duration) => {
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

  const checkStream = (operation: string, stream: string) =>
    typeof stream === "string" && stream.length > 0
      ? Effect.void
      : invalid(operation, String(stream), "the stream name must be a non-empty string")

  return { invalid, send, checkStream }
}

/** The commands of one streams service. */
export type Commands = ReturnType<typeof make>
