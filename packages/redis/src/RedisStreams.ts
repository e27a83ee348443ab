/**
 * Event streams on Redis Streams. Stream keys get the connection's key prefix (or this
 * module's `prefix` option), like cache keys, and share their key space: a cache key named like a
 * stream under the same prefix replaces the stream when the cache writes it (SET replaces a key
 * of any type), and a publish to a stream named like a cache key fails. Keep them apart, e.g.
 * with a `prefix` of their own that neither starts with the cache's nor is the start of it.
 *
 * Connections: `publish`, `readLatest`, `ack`, `createGroup` and non-blocking `read`s use the
 * connection's streams connection (opened on first use), never the command connection, so
 * that an entry of many MB never holds up a cache command. Each is bounded by `commandTimeout`
 * plus `timeoutPerMegabyte` per MiB it carries and per MiB the commands ahead of it there carry,
 * and past that for as long as replies keep arriving on it: a large entry is read however long
 * its transfer takes, while a connection that answers nothing fails it a command timeout later.
 * A `read` with `blockMs` runs on the shared blocking connection, so a
 * blocked read never delays a cache command; blocking reads take turns on it (a semaphore),
 * each one bounded as a whole, its wait for its turn included, by its own `blockMs` (one whose
 * turn does not come in time answers then the entries there are, read without blocking on the
 * streams connection), and one that is interrupted or times out is woken with CLIENT UNBLOCK
 * so the next does not wait behind it; its answer, once it has its turn, is bounded as a
 * consumer's is. A blocking read's `"$"` means
 * the entries published after the call (it is resolved then, with an XREVRANGE on the streams
 * connection), however long the read waits for its turn. Each `consume` stream, a long-lived
 * loop, opens a connection of its own for its lifetime.
 *
 * Tracing: every operation runs in a span named `tiercache.streams.<operation>` (`publish`,
 * `readLatest`, `read`, `createGroup`, `ack`, and `consume` for each XREADGROUP a consumer
 * sends) with OpenTelemetry messaging attributes: `messaging.system` (`redis`),
 * `messaging.operation.type` (`send`, `receive`, `settle`), `messaging.operation.name` (the
 * Redis command), `messaging.consumer.group.name`, `messaging.message.id` (of a published entry)
 * and `messaging.batch.message_count` (entries read). Stream names can hold personal data (a
 * stream per user), so `messaging.destination.name` is set, a failed operation's span ends
 * with an error naming the stream, and a consumer's warning that it reads again after losing its
 * connection (a log line in the caller's span: one of its events) is annotated with the `stream`,
 * only with `streamNamesInSpans`.
 *
 * @since 0.1.0
 */
import { type CacheError, CacheStreams } from "@tiercache/core"
import { Effect, Layer } from "effect"
import * as BlockingRead from "./internal/blockingRead.js"
import { resolvePrefix } from "./internal/namespace.js"
import { notABoolean, notAnObject } from "./internal/optionsObject.js"
import * as StreamCommands from "./internal/streamCommands.js"
import { fromRead, isPositiveInteger, type RawEntry, toEntry } from "./internal/streamCommands.js"
import * as StreamConsumer from "./internal/streamConsumer.js"
import * as StreamSpans from "./internal/streamSpans.js"
import { countRead } from "./internal/streamSpans.js"
import { RedisConnection } from "./RedisConnection.js"

/**
 * Options of the Redis streams. Only an absent (`undefined`) option takes its default: `null`
 * from plain JavaScript, or a value of the wrong type or out of range, fails the build with a
 * `CacheConfigError` naming it.
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
   * Put the stream's name in each span as `messaging.destination.name`, in a failed operation's
   * error there and in a consumer's log lines (default false: stream names can hold personal data).
   */
  readonly streamNamesInSpans?: boolean | undefined
}

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
    const badOptions = notAnObject(options)
    if (badOptions) return yield* badOptions
    for (const option of ["allowEmptyPrefix", "streamNamesInSpans"] as const) {
      const bad = notABoolean(options[option], option)
      if (bad) return yield* bad
    }
    const connection = yield* RedisConnection
    const prefix = yield* resolvePrefix(
      "prefix",
      options.prefix,
      options.allowEmptyPrefix,
      connection.keyPrefix
    )
    const commands = StreamCommands.make(connection)
    const { invalid, exchange, checkStream, checkText, pairsOf, idsOf } = commands
    const namesInSpans = options.streamNamesInSpans === true
    const traced = StreamSpans.make(namesInSpans)
    const consume = StreamConsumer.make(connection, prefix, commands, traced, namesInSpans)
    const blockingRead = BlockingRead.make(connection, commands)

    const publish = (stream: string, fields: CacheStreams.Fields, maxLen?: number) =>
      Effect.gen(function* () {
        yield* checkStream("publish", stream)
        const pairs = yield* pairsOf("publish", stream, fields)
        if (pairs.length === 0) return yield* invalid("publish", stream, "an entry needs at least one field")
        if (maxLen !== undefined && !(Number.isSafeInteger(maxLen) && maxLen >= 0)) {
          const got = typeof maxLen === "number" ? String(maxLen) : typeof maxLen
          return yield* invalid("publish", stream, `maxLen must be a non-negative integer, got ${got}`)
        }
        const args: Array<string | number> = ["XADD", prefix + stream]
        if (maxLen !== undefined) args.push("MAXLEN", "~", maxLen)
        args.push("*")
        for (const [field, value] of pairs) args.push(field, value)
        const id = String(yield* exchange("publish", stream, args))
        yield* Effect.annotateCurrentSpan("messaging.message.id", id)
        return id
      }).pipe(traced("publish", stream, { command: "XADD", type: "send" }))

    const readLatest = (stream: string, count: number) =>
      Effect.gen(function* () {
        yield* checkStream("readLatest", stream)
        if (!isPositiveInteger(count))
          return yield* invalid("readLatest", stream, "count must be a positive integer")
        const reply = yield* exchange("readLatest", stream, [
          "XREVRANGE",
          prefix + stream,
          "+",
          "-",
          "COUNT",
          count
        ])
        return (reply as Array<RawEntry>).map(toEntry)
      }).pipe(Effect.tap(countRead), traced("readLatest", stream, { command: "XREVRANGE", type: "receive" }))

    const read = (stream: string, lastId: string, count: number, blockMs?: number) =>
      Effect.gen(function* () {
        yield* checkStream("read", stream)
        yield* checkText("read", stream, "lastId", lastId)
        if (!isPositiveInteger(count))
          return yield* invalid("read", stream, "count must be a positive integer")
        if (blockMs !== undefined && !(Number.isFinite(blockMs) && blockMs >= 0)) {
          return yield* invalid("read", stream, "blockMs must be a non-negative number")
        }
        const key = prefix + stream
        // Redis reads BLOCK 0 as "forever"; here 0 (or no blockMs) means "do not wait".
        if (blockMs === undefined || blockMs < 1) {
          return fromRead(yield* exchange("read", stream, ["XREAD", "COUNT", count, "STREAMS", key, lastId]))
        }
        // Capped: Redis refuses a BLOCK it cannot add to its clock ("timeout ... out of range"),
        // and Number.MAX_SAFE_INTEGER ms (some 285,000 years) is as long as a wait gets.
        return yield* blockingRead(
          stream,
          key,
          lastId,
          count,
          Math.min(Math.floor(blockMs), Number.MAX_SAFE_INTEGER)
        )
      }).pipe(Effect.tap(countRead), traced("read", stream, { command: "XREAD", type: "receive" }))

    const createGroup = (stream: string, group: string, startId = "$") =>
      Effect.gen(function* () {
        yield* checkStream("createGroup", stream)
        yield* checkText("createGroup", stream, "group", group)
        yield* checkText("createGroup", stream, "startId", startId)
        yield* exchange("createGroup", stream, [
          "XGROUP",
          "CREATE",
          prefix + stream,
          group,
          startId,
          "MKSTREAM"
        ]).pipe(
          Effect.catchIf(
            (error) => error.reason.startsWith("BUSYGROUP"),
            () => Effect.void
          )
        )
      }).pipe(traced("createGroup", stream, { command: "XGROUP CREATE", group }))

    const ack = (stream: string, group: string, ids: ReadonlyArray<string>) =>
      Effect.gen(function* () {
        yield* checkStream("ack", stream)
        yield* checkText("ack", stream, "group", group)
        const given = yield* idsOf("ack", stream, ids)
        if (given.length === 0) return 0
        return Number(yield* exchange("ack", stream, ["XACK", prefix + stream, group, ...given]))
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
