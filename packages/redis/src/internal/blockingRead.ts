/**
 * A blocking `read` of RedisStreams (XREAD ... BLOCK), bounded as a whole by its `blockMs`.
 *
 * Blocking reads take turns on the connection's one shared blocking connection, so a read may
 * first wait for its turn. Two things keep that wait from changing what the read means:
 * - `"$"` ("only entries published from now on") is resolved when the read is called, to the id
 *   of the stream's last entry (`"0-0"` for an empty or absent stream, which is what Redis
 *   makes of `"$"` for a key that does not exist): entries published while the read waited for
 *   its turn are still its entries.
 * - The wait for the turn counts against `blockMs`: a read whose turn has not come by then
 *   stops waiting and answers the entries there are, read without blocking on the streams
 *   connection (none: `[]`, as a blocking read that found none); one whose turn comes late
 *   blocks only for the time left. Once its XREAD is sent, the read waits for the answer
 *   (bounded by the time left plus the command timeout, and past that for as long as the
 *   answer keeps arriving, as a consumer's read is: receiving.ts), so entries Redis found are
 *   never dropped, however large (a fixed bound cut an answer of many MB short every time). A
 *   read queued behind another so answers entries published while it waited at the end of its
 *   `blockMs`, not at once.
 * XREAD only reads (nothing is delivered or acknowledged, unlike a group's XREADGROUP), so a
 * read that gives up loses nothing that a later read from the same id would not return.
 */
import type { CacheStreams } from "@tiercache/core"
import { CacheError } from "@tiercache/core"
import { Clock, Duration, Effect } from "effect"
import type { Redis } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"
import { type Commands, call, fromRead, type RawEntry } from "./streamCommands.js"

type StreamError = CacheError.StreamError
const { StreamError } = CacheError

/** What the race of a read answers when its turn did not come in time. */
const missed: unique symbol = Symbol("missed")

/** The blocking reads of a streams service on `connection`. */
export const make = (connection: RedisConnection.Service, commands: Commands) => {
  const { receive, exchange } = commands
  const commandTimeout = connection.commandTimeout

  /** The id `"$"` stands for now: the id of the stream's last entry, or `"0-0"`. */
  const lastIdNow = (stream: string, key: string): Effect.Effect<string, StreamError> =>
    Effect.map(
      exchange("read", stream, ["XREVRANGE", key, "+", "-", "COUNT", 1]),
      (reply) => (reply as Array<RawEntry>)[0]?.[0] ?? "0-0"
    )

  /** Up to `count` entries of `key` after `lastId`, waiting at most `blockMs` (>= 1) for them. */
  return (
    stream: string,
    key: string,
    lastId: string,
    count: number,
    blockMs: number
  ): Effect.Effect<ReadonlyArray<CacheStreams.StreamEntry>, StreamError> =>
    Effect.gen(function* () {
      const deadline = (yield* Clock.currentTimeMillis) + blockMs
      const after = lastId === "$" ? yield* lastIdNow(stream, key) : lastId
      /** XREAD on the blocking connection `conn`, blocking for `block` ms when given. */
      const xread = (conn: Redis, block?: number) =>
        receive(
          "read",
          stream,
          conn,
          call(
            conn,
            block === undefined
              ? ["XREAD", "COUNT", count, "STREAMS", key, after]
              : ["XREAD", "COUNT", count, "BLOCK", block, "STREAMS", key, after]
          ),
          block === undefined ? commandTimeout : Duration.sum(Duration.millis(block), commandTimeout)
        )
      // Set once the read has its turn: from then on it runs to its answer.
      let started = false
      const reading = connection.blocking((conn) =>
        Effect.suspend(() => {
          started = true
          return Effect.flatMap(Clock.currentTimeMillis, (now) => {
            const left = Math.floor(deadline - now)
            return left < 1 ? xread(conn) : xread(conn, left)
          })
        })
      )
      const late = Effect.flatMap(Clock.currentTimeMillis, (now) =>
        Effect.zipRight(
          Effect.sleep(Duration.millis(Math.max(0, deadline - now))),
          Effect.suspend(() => (started ? Effect.never : Effect.succeed(missed)))
        )
      )
      const reply = yield* Effect.raceFirst(reading, late).pipe(
        Effect.catchTag("RedisConnectionError", (error) =>
          Effect.fail(new StreamError({ operation: "read", stream, reason: error.reason, cause: error }))
        )
      )
      // Its turn did not come in time: what is there now, read without waiting.
      return fromRead(
        reply === missed
          ? yield* exchange("read", stream, ["XREAD", "COUNT", count, "STREAMS", key, after])
          : reply
      )
    })
}
