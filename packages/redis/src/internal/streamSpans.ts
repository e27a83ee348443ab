/**
 * How RedisStreams appears in traces: every operation in a span named
 * `tiercache.streams.<operation>` with OpenTelemetry messaging attributes; the stream's name
 * only when asked for (`streamNamesInSpans`).
 */
import type { CacheStreams } from "@tiercache/core"
import { Effect } from "effect"

/** How an operation appears in traces. */
export interface SpanShape {
  readonly command: string
  readonly type?: "send" | "receive" | "settle" | undefined
  readonly group?: string | undefined
}

/** Puts an operation in its span (`namesInSpans`: with the stream's name). */
export const make =
  (namesInSpans: boolean) =>
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

/** Notes in the current span how many entries a read answered. */
export const countRead = (entries: ReadonlyArray<CacheStreams.StreamEntry>) =>
  Effect.annotateCurrentSpan("messaging.batch.message_count", entries.length)

/** Puts an operation in its span. */
export type Traced = ReturnType<typeof make>
