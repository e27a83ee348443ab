/**
 * Event streams on Redis Streams. Stream keys get the connection's key prefix (or this
 * module's `prefix` option), like cache keys.
 *
 * Connections: `publish`, `readLatest`, `ack`, `createGroup` and non-blocking `read`s use the
 * command connection. A `read` with `blockMs` runs on the shared blocking connection, so a
 * blocked read never delays a cache command; blocking reads take turns on it (a semaphore),
 * each one bounded by its own `blockMs`, and one that is interrupted or times out is woken with
 * CLIENT UNBLOCK so the next does not wait behind it. Each `consume` stream, a long-lived
 * loop, opens a connection of its own for its lifetime.
 *
 * Tracing: every operation runs in a span named `tiercache.streams.<operation>` (`publish`,
 * `readLatest`, `read`, `createGroup`, `ack`, and `consume` for each XREADGROUP a consumer
 * sends) with OpenTelemetry messaging attributes: `messaging.system` (`redis`),
 * `messaging.operation.type` (`send`, `receive`, `settle`), `messaging.operation.name` (the
 * Redis command), `messaging.consumer.group.name`, `messaging.message.id` (of a published entry)
 * and `messaging.batch.message_count` (entries read). Stream names can hold personal data (a
 * stream per user), so `messaging.destination.name` is set only with `streamNamesInSpans`.
 *
 * @since 0.1.0
 */
import { CacheError, CacheStreams } from "@tiercache/core"
import { Duration, Effect, Layer, Schedule, Stream } from "effect"
import { type Redis, ReplyError } from "ioredis"
import { resolvePrefix } from "./internal/namespace.js"
import { sanitize } from "./internal/sanitize.js"
import { RedisConnection } from "./RedisConnection.js"

type StreamError = CacheError.StreamError
const { StreamError } = CacheError

/**
 * Options of the Redis streams.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The prefix of stream keys (default: the connection's `keyPrefix`). */
  readonly prefix?: string | undefined
  /** Allow `prefix: ""` (bare stream keys); default false. */
  readonly allowEmptyPrefix?: boolean | undefined
  /**
   * Put the stream's name in each span as `messaging.destination.name` (default false: stream
   * names can hold personal data).
   */
  readonly streamNamesInSpans?: boolean | undefined
}

/** How an operation appears in traces. */
interface SpanShape {
  readonly command: string
  readonly type?: "send" | "receive" | "settle" | undefined
  readonly group?: string | undefined
}

const describe = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.includes("enableOfflineQueue")) return "not connected (reconnecting in the background)"
  return message
}

type RawEntry = [id: string, fields: Array<string> | null]

const toEntry = ([id, flat]: RawEntry): CacheStreams.StreamEntry => {
  const fields: Array<readonly [string, string]> = []
  // A pending entry that was deleted since comes back with no fields.
  if (flat !== null) for (let i = 0; i + 1 < flat.length; i += 2) fields.push([flat[i]!, flat[i + 1]!])
  return { id, fields }
}

/** XREAD / XREADGROUP on one stream: `null` or `[[key, entries]]`. */
const fromRead = (reply: unknown): ReadonlyArray<CacheStreams.StreamEntry> => {
  if (reply === null || reply === undefined) return []
  const streams = reply as Array<[string, Array<RawEntry>]>
  return (streams[0]?.[1] ?? []).map(toEntry)
}

/** An error answered by Redis itself (NOGROUP, WRONGTYPE...): asking again will not help. */
const isReplyError = (error: CacheError.StreamError): boolean => error.cause instanceof ReplyError

/** Between a consumer's attempts to read again after losing its connection: 50 ms doubling to 1 s. */
const RECONNECT = Schedule.exponential("50 millis").pipe(Schedule.union(Schedule.spaced("1 second")))

const isPositiveInteger = (n: unknown): n is number =>
  typeof n === "number" && Number.isSafeInteger(n) && n > 0

/**
 * Builds the streams on the connection in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<CacheStreams.CacheStreams.Service, CacheError.CacheConfigError, RedisConnection> =>
  Effect.gen(function* () {
    const connection = yield* RedisConnection
    const client = connection.client
    const prefix = yield* resolvePrefix(
      "prefix",
      options.prefix,
      options.allowEmptyPrefix,
      connection.keyPrefix
    )
    const commandTimeout = connection.commandTimeout

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

    const namesInSpans = options.streamNamesInSpans === true
    const traced =
      (operation: string, stream: string, shape: SpanShape) =>
      <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
        Effect.withSpan(effect, `tiercache.streams.${operation}`, {
          kind: operation === "publish" ? "producer" : "client",
          attributes: {
            "messaging.system": "redis",
            "messaging.operation.name": shape.command,
            ...(shape.type === undefined ? {} : { "messaging.operation.type": shape.type }),
            ...(shape.group === undefined ? {} : { "messaging.consumer.group.name": shape.group }),
            ...(namesInSpans ? { "messaging.destination.name": stream } : {})
          },
          captureStackTrace: false
        })
    const countRead = (entries: ReadonlyArray<CacheStreams.StreamEntry>) =>
      Effect.annotateCurrentSpan("messaging.batch.message_count", entries.length)

    const call = (conn: Redis, args: ReadonlyArray<string | number>) => () =>
      conn.call(String(args[0]), ...args.slice(1)) as Promise<unknown>

    const checkStream = (operation: string, stream: string) =>
      typeof stream === "string" && stream.length > 0
        ? Effect.void
        : invalid(operation, String(stream), "the stream name must be a non-empty string")

    const publish = (stream: string, fields: CacheStreams.Fields, maxLen?: number) =>
      Effect.gen(function* () {
        yield* checkStream("publish", stream)
        const pairs = CacheStreams.fieldPairs(fields)
        if (pairs.length === 0) return yield* invalid("publish", stream, "an entry needs at least one field")
        if (maxLen !== undefined && !(Number.isSafeInteger(maxLen) && maxLen >= 0)) {
          return yield* invalid("publish", stream, `maxLen must be a non-negative integer, got ${maxLen}`)
        }
        const args: Array<string | number> = ["XADD", prefix + stream]
        if (maxLen !== undefined) args.push("MAXLEN", "~", maxLen)
        args.push("*")
        for (const [field, value] of pairs) args.push(field, value)
        const id = String(yield* send("publish", stream, call(client, args)))
        yield* Effect.annotateCurrentSpan("messaging.message.id", id)
        return id
      }).pipe(traced("publish", stream, { command: "XADD", type: "send" }))

    const readLatest = (stream: string, count: number) =>
      Effect.gen(function* () {
        yield* checkStream("readLatest", stream)
        if (!isPositiveInteger(count))
          return yield* invalid("readLatest", stream, "count must be a positive integer")
        const reply = yield* send(
          "readLatest",
          stream,
          call(client, ["XREVRANGE", prefix + stream, "+", "-", "COUNT", count])
        )
        return (reply as Array<RawEntry>).map(toEntry)
      }).pipe(Effect.tap(countRead), traced("readLatest", stream, { command: "XREVRANGE", type: "receive" }))

    const read = (stream: string, lastId: string, count: number, blockMs?: number) =>
      Effect.gen(function* () {
        yield* checkStream("read", stream)
        if (!isPositiveInteger(count))
          return yield* invalid("read", stream, "count must be a positive integer")
        if (blockMs !== undefined && !(Number.isFinite(blockMs) && blockMs >= 0)) {
          return yield* invalid("read", stream, "blockMs must be a non-negative number")
        }
        const key = prefix + stream
        // Redis reads BLOCK 0 as "forever"; here 0 (or no blockMs) means "do not wait".
        if (blockMs === undefined || blockMs < 1) {
          return fromRead(
            yield* send("read", stream, call(client, ["XREAD", "COUNT", count, "STREAMS", key, lastId]))
          )
        }
        const block = Math.floor(blockMs)
        const reply = yield* connection
          .blocking((conn) =>
            send(
              "read",
              stream,
              call(conn, ["XREAD", "COUNT", count, "BLOCK", block, "STREAMS", key, lastId]),
              Duration.sum(Duration.millis(block), commandTimeout)
            )
          )
          .pipe(
            Effect.catchTag("RedisConnectionError", (error) =>
              Effect.fail(new StreamError({ operation: "read", stream, reason: error.reason, cause: error }))
            )
          )
        return fromRead(reply)
      }).pipe(Effect.tap(countRead), traced("read", stream, { command: "XREAD", type: "receive" }))

    const createGroup = (stream: string, group: string, startId = "$") =>
      Effect.gen(function* () {
        yield* checkStream("createGroup", stream)
        yield* send(
          "createGroup",
          stream,
          call(client, ["XGROUP", "CREATE", prefix + stream, group, startId, "MKSTREAM"])
        ).pipe(
          Effect.catchIf(
            (error) => error.reason.startsWith("BUSYGROUP"),
            () => Effect.void
          )
        )
      }).pipe(traced("createGroup", stream, { command: "XGROUP CREATE", group }))

    const consume = (
      stream: string,
      group: string,
      consumer: string,
      consumeOptions: CacheStreams.ConsumeOptions = {}
    ): Stream.Stream<CacheStreams.StreamEntry, StreamError> =>
      Stream.unwrapScoped(
        Effect.gen(function* () {
          yield* checkStream("consume", stream)
          const count = consumeOptions.count ?? 10
          const blockMs = consumeOptions.blockMs ?? 1000
          if (!isPositiveInteger(count))
            return yield* invalid("consume", stream, "count must be a positive integer")
          if (!isPositiveInteger(blockMs))
            return yield* invalid("consume", stream, "blockMs must be a positive integer")
          const conn = yield* connection
            .dedicated("consumer")
            .pipe(
              Effect.mapError(
                (error) =>
                  new StreamError({ operation: "consume", stream, reason: error.reason, cause: error })
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
          const next = Effect.gen(function* () {
            const reply = yield* send(
              "consume",
              stream,
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
            if (cursor !== ">") cursor = entries.length === 0 ? ">" : entries[entries.length - 1]!.id
            return entries
          }).pipe(
            Effect.tap(countRead),
            traced("consume", stream, { command: "XREADGROUP", type: "receive", group })
          )
          const reading = next.pipe(
            Effect.tapError((error) =>
              isReplyError(error)
                ? Effect.void
                : Effect.zipRight(
                    Effect.sync(() => {
                      cursor = "0"
                    }),
                    Effect.logWarning("stream consumer could not read; trying again").pipe(
                      Effect.annotateLogs({ stream, group, consumer, reason: error.reason })
                    )
                  )
            ),
            Effect.retry({ schedule: RECONNECT, while: (error) => !isReplyError(error) })
          )
          return Stream.repeatEffect(reading).pipe(Stream.flattenIterables)
        })
      )

    const ack = (stream: string, group: string, ids: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        yield* checkStream("ack", stream)
        if (ids.length === 0) return 0
        return Number(yield* send("ack", stream, call(client, ["XACK", prefix + stream, group, ...ids])))
      }).pipe(traced("ack", stream, { command: "XACK", type: "settle", group }))

    return { publish, readLatest, read, createGroup, consume, ack }
  })

/**
 * The Redis streams as the CacheStreams service.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<CacheStreams.CacheStreams, CacheError.CacheConfigError, RedisConnection> =>
  Layer.effect(CacheStreams.CacheStreams, make(options))
