/**
 * How RedisStreams appears in traces: every operation in a span named
 * `tiercache.streams.<operation>` with OpenTelemetry messaging attributes; the stream's name
 * only when asked for (`streamNamesInSpans`).
 */
import { CacheError, type CacheStreams } from "@tiercache/core"
import { Effect } from "effect"

/** How an operation appears in traces. */
export interface SpanShape {
  readonly command: string
  readonly type?: "send" | "receive" | "settle" | undefined
  readonly group?: string | undefined
}

/**
 * What a span sees of a StreamError when stream names stay out of spans: its operation, reason
 * and cause, not the stream. A span ends with its effect's failure, and an OpenTelemetry
 * exporter records that failure's message as the span's status and an exception event, where
 * the StreamError's message ("stream user:7:events: publish failed: ...") named the stream.
 */
class Unnamed extends Error {
  constructor(readonly original: CacheError.StreamError) {
    super(`${original.operation} failed: ${withoutName(original.reason, original.stream)}`)
    this.name = "StreamError"
    this.stack = `${this.name}: ${this.message}`
    if (original.cause !== undefined)
      Object.defineProperty(this, "cause", { value: causeWithoutName(original.cause, original.stream) })
  }
}

/**
 * `text` without the stream's name: Redis's own answers may quote the stream's key (NOGROUP:
 * "No such key 'prefix:user:7:events' or consumer group ..."), which holds the name.
 */
const withoutName = (text: string, stream: string): string =>
  stream === "" ? text : text.split(stream).join("<stream>")

/**
 * A cause whose message names the stream, as an Error of its name and that message without it
 * (not the original: its stack repeats the message, an ioredis ReplyError holds the command's
 * arguments, the key among them).
 */
const causeWithoutName = (cause: unknown, stream: string): unknown => {
  if (!(cause instanceof Error) || !`${cause.message}${cause.stack ?? ""}`.includes(stream)) return cause
  const copy = new Error(withoutName(cause.message, stream))
  copy.name = cause.name
  copy.stack = `${copy.name}: ${copy.message}`
  return copy
}

/**
 * The annotations of a log line about `stream` (`annotations`, the stream's, a `reason`). A log
 * line written inside a span (a consumer's runs in its caller's) is one of the span's events,
 * its annotations the event's attributes: the stream's name, as `stream` and in the reason, only
 * when names go in spans.
 */
export const logAnnotations =
  (namesInSpans: boolean) =>
  (stream: string, annotations: Readonly<Record<string, string>>, reason: string): Record<string, string> =>
    namesInSpans
      ? { stream, ...annotations, reason }
      : { ...annotations, reason: withoutName(reason, stream) }

const unnamed = (error: unknown): unknown =>
  error instanceof CacheError.StreamError ? new Unnamed(error) : error
const named = (error: unknown): unknown => (error instanceof Unnamed ? error.original : error)

/** Puts an operation in its span (`namesInSpans`: with the stream's name, in failures too). */
export const make =
  (namesInSpans: boolean) =>
  (operation: string, stream: string, shape: SpanShape) =>
  <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
    Effect.withSpan(
      namesInSpans ? effect : (Effect.mapError(effect, unnamed) as Effect.Effect<A, E, R>),
      `tiercache.streams.${operation}`,
      {
        kind: operation === "publish" ? "producer" : "client",
        attributes: {
          "messaging.system": "redis",
          "messaging.operation.name": shape.command,
          ...(shape.type === undefined ? {} : { "messaging.operation.type": shape.type }),
          ...(shape.group === undefined ? {} : { "messaging.consumer.group.name": shape.group }),
          ...(namesInSpans ? { "messaging.destination.name": stream } : {})
        },
        captureStackTrace: false
      }
    ).pipe((spanned) =>
      namesInSpans ? spanned : (Effect.mapError(spanned, named) as Effect.Effect<A, E, R>)
    )

/** Notes in the current span how many entries a read answered. */
export const countRead = (entries: ReadonlyArray<CacheStreams.StreamEntry>) =>
  Effect.annotateCurrentSpan("messaging.batch.message_count", entries.length)

/** Puts an operation in its span. */
export type Traced = ReturnType<typeof make>
