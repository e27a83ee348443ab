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
    super(`${original.operation} failed: ${original.reason}`)
    this.name = "StreamError"
    this.stack = `${this.name}: ${this.message}`
    if (original.cause !== undefined) Object.defineProperty(this, "cause", { value: original.cause })
  }
}

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
