/**
 * A consumer of RedisStreams (`consume`): a long-lived loop of XREADGROUP on a connection of its
 * own, first this consumer's pending entries (delivered before, never acknowledged), then new
 * ones, and with `claimIdleMs` the entries other consumers left unacknowledged that long. A read that fails for want of a connection is made again once the connection is back,
 * and a consumer started while Redis is unreachable opens its connection once Redis is back;
 * an error answered by Redis ends the stream, and so does the connection layer closing (it closes
 * the consumer's connection).
 * A read (XREADGROUP) fails when it has no answer within `blockMs` plus the command timeout (a
 * claim's XPENDING or XCLAIM: within the command timeout) and then nothing arrived on the connection for a command timeout
 * (receiving.ts): an answer of tens of MB (a large entry, or `count` of them) on a slow link is
 * not cut short. With a fixed bound it was, every time: the consumer read the same pending
 * entries again, forever, and the stream never moved past them. Nothing is asked beyond the
 * read itself, so the usual read costs what it did.
 */
import { CacheError, type CacheStreams } from "@tiercache/core"
import { Duration, Effect, Schedule, Stream } from "effect"
import { ReplyError } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"
import { isLayerClosed, type RedisConnectionError } from "./connectionError.js"
import { given } from "./optionsObject.js"
import * as StreamClaim from "./streamClaim.js"
import { type Commands, call, fromRead, isPositiveInteger } from "./streamCommands.js"
import { countRead, logAnnotations, type Traced } from "./streamSpans.js"

type StreamError = CacheError.StreamError
const { StreamError } = CacheError

/** An error answered by Redis itself (NOGROUP, WRONGTYPE...): asking again will not help. */
const isReplyError = (error: CacheError.StreamError): boolean => error.cause instanceof ReplyError

/**
 * The options' fields, read once here; undefined when reading throws (from plain JavaScript, a
 * Proxy or a getter that throws: a StreamError, not a defect).
 */
const readOptions = (options: CacheStreams.ConsumeOptions): CacheStreams.ConsumeOptions | undefined => {
  try {
    const { count, blockMs, claimIdleMs } = options
    return { count, blockMs, claimIdleMs }
  } catch {
    return undefined
  }
}

/**
 * Whether a consumer's connection that failed to open may open later: Redis unreachable or not
 * answering, not Redis refusing it (a ReplyError) nor the connection layer closed.
 */
const mayOpenLater = (error: RedisConnectionError): boolean =>
  !(error.cause instanceof ReplyError) && !isLayerClosed(error)

/** Between a consumer's attempts to read again after losing its connection: 50 ms doubling to 1 s. */
const RECONNECT = Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("1 second")))

/**
 * The `consume` of a streams service on `connection`, stream keys under `prefix`; its log lines
 * name the stream only with `namesInSpans` (they are events of the caller's span).
 */
export const make = (
  connection: RedisConnection.Service,
  prefix: string,
  commands: Commands,
  traced: Traced,
  namesInSpans: boolean
) => {
  const { send, receive, invalid, checkStream, checkText } = commands
  const annotations = logAnnotations(namesInSpans)
  const commandTimeout = connection.commandTimeout
  return (
    stream: string,
    group: string,
    consumer: string,
    consumeOptions: CacheStreams.ConsumeOptions = {}
  ): Stream.Stream<CacheStreams.StreamEntry, StreamError> =>
    Stream.unwrapScoped(
      Effect.gen(function* () {
        yield* checkStream("consume", stream)
        yield* checkText("consume", stream, "group", group)
        yield* checkText("consume", stream, "consumer", consumer)
        if (typeof consumeOptions !== "object" || consumeOptions === null)
          return yield* invalid("consume", stream, "options must be an object")
        const fields = readOptions(consumeOptions)
        if (fields === undefined) return yield* invalid("consume", stream, "options could not be read")
        const count = given(fields.count, 10)
        const blockMs = given(fields.blockMs, 1000)
        if (!isPositiveInteger(count))
          return yield* invalid("consume", stream, "count must be a positive integer")
        if (!isPositiveInteger(blockMs))
          return yield* invalid("consume", stream, "blockMs must be a positive integer")
        const claimIdleMs = fields.claimIdleMs
        if (claimIdleMs !== undefined && !isPositiveInteger(claimIdleMs))
          return yield* invalid("consume", stream, "claimIdleMs must be a positive integer")
        // A consumer started while Redis is unreachable waits for it, as one already reading
        // does (RECONNECT); it ends when Redis refuses the connection itself (a ReplyError:
        // credentials, ACL) or the connection layer is closed.
        const conn = yield* connection.dedicated("consumer").pipe(
          Effect.tapError((error) =>
            mayOpenLater(error)
              ? Effect.logWarning("stream consumer could not connect; trying again").pipe(
                  Effect.annotateLogs(annotations(stream, { group, consumer }, error.reason))
                )
              : Effect.void
          ),
          Effect.retry({ schedule: RECONNECT, while: mayOpenLater }),
          Effect.mapError(
            (error) => new StreamError({ operation: "consume", stream, reason: error.reason, cause: error })
          )
        )
        const key = prefix + stream
        const within = Duration.sum(Duration.millis(blockMs), commandTimeout)
        // First this consumer's own pending entries (delivered before, never acknowledged:
        // at-least-once after a restart), then new ones. A read that fails for want of a
        // connection is made again once the connection is back, from the pending entries
        // again (an answer lost with the connection was delivered all the same); an error
        // answered by Redis (say NOGROUP) ends the stream.
        let cursor = "0"
        const read = Effect.gen(function* () {
          const reply = yield* receive(
            "consume",
            stream,
            conn,
            call(conn, [
              "XREADGROUP",
              "GROUP",
              group,
              consumer,
              "COUNT",
              count,
              "BLOCK",
              blockMs,
              "STREAMS",
              key,
              cursor
            ]),
            within
          )
          const entries = fromRead(reply)
          if (cursor === ">") return entries
          cursor = entries.length === 0 ? ">" : entries[entries.length - 1]!.id
          // A pending entry deleted from the stream since (XDEL, a trim) comes back with no
          // fields (an entry always has one): nothing to deliver. It is acknowledged, leaving the
          // group as a claimed one does (XCLAIM drops it), instead of coming back on every start.
          const gone = entries.filter((entry) => entry.fields.length === 0).map((entry) => entry.id)
          if (gone.length === 0) return entries
          yield* send("consume", stream, call(conn, ["XACK", key, group, ...gone]))
          return entries.filter((entry) => entry.fields.length > 0)
        }).pipe(
          Effect.tap(countRead),
          traced("consume", stream, { command: "XREADGROUP", type: "receive", group })
        )
        // With claimIdleMs, the entries other consumers left unacknowledged that long are
        // claimed between reads of new ones (streamClaim.ts), once this consumer's own pending
        // entries were delivered.
        const claimer =
          claimIdleMs === undefined
            ? undefined
            : StreamClaim.make({
                conn,
                key,
                group,
                consumer,
                idleMs: claimIdleMs,
                count,
                send: (run) => receive("consume", stream, conn, run)
              })
        // The claim's span only when a pass sends something (not one per read between passes).
        const next =
          claimer === undefined
            ? read
            : Effect.suspend(() =>
                cursor !== ">"
                  ? read
                  : Effect.flatMap(claimer.due, (due) =>
                      due
                        ? claimer.next.pipe(
                            Effect.tap(countRead),
                            traced("consume", stream, { command: "XCLAIM", type: "receive", group })
                          )
                        : read
                    )
              )
        // Ended (status "end") only when closed: with the connection layer, the consumer with it.
        const ended = () => conn.status === "end"
        const reading = next.pipe(
          Effect.catchIf(
            () => ended(),
            () =>
              Effect.fail(
                new StreamError({
                  operation: "consume",
                  stream,
                  reason: "consumer connection: the connection layer is closed"
                })
              )
          ),
          Effect.tapError((error) =>
            isReplyError(error) || ended()
              ? Effect.void
              : Effect.zipRight(
                  Effect.sync(() => {
                    cursor = "0"
                    claimer?.reset()
                  }),
                  Effect.logWarning("stream consumer could not read; trying again").pipe(
                    Effect.annotateLogs(annotations(stream, { group, consumer }, error.reason))
                  )
                )
          ),
          Effect.retry({ schedule: RECONNECT, while: (error) => !isReplyError(error) && !ended() })
        )
        return Stream.repeatEffect(reading).pipe(Stream.flattenIterables)
      })
    )
}
