/**
 * The cache's spans (tier calls, computations, bus publishes), chosen once when the cache is
 * built from its `spans` option: `false` installs nothing (callers use the plain effects),
 * `true` opens every span, unset opens a span only when the calling fiber's Tracer is not
 * Effect's native one (one fiber-field comparison per call, no span allocated otherwise).
 * The L1 hit paths never come here.
 */
import { Cause, Effect, type Tracer } from "effect"

/** Effect's default Tracer (its spans are not exported anywhere). */
const nativeTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** Attributes of a span, computed only when the span is opened. */
export type Attributes = () => Record<string, unknown>

/** Opens the cache's spans. */
export interface Spans {
  /** Runs `effect` in the span `name` (with `error.type` on failure), when tracing is on. */
  readonly span: <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    name: string,
    kind: Tracer.SpanKind,
    attributes: Attributes
  ) => Effect.Effect<A, E, R>
  /** Whether keys, patterns and tags may be span attributes (the `keysInSpans` option). */
  readonly keys: boolean
}

/** The `error.type` of a failure: its `_tag` (TierError, BusError...), else its class name. */
export const errorType = (error: unknown): string => {
  if (typeof error === "object" && error !== null) {
    const tag = (error as { readonly _tag?: unknown })._tag
    if (typeof tag === "string") return tag
    const name = (error as { readonly constructor?: { readonly name?: unknown } }).constructor?.name
    if (typeof name === "string" && name !== "Object") return name
  }
  return "_OTHER"
}

const withErrorType = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.tapErrorCause(effect, (cause) => {
    if (Cause.isInterruptedOnly(cause)) return Effect.void
    const failure = Cause.failureOption(cause)
    return Effect.annotateCurrentSpan(
      "error.type",
      failure._tag === "Some" ? errorType(failure.value) : "_OTHER"
    )
  })

/** Builds the spans: `mode` is the cache's `spans` option (true or unset; false builds none). */
export const make = (mode: boolean | undefined, keys: boolean): Spans => {
  const open = <A, E, R>(
    effect: Effect.Effect<A, E, R>,
    name: string,
    kind: Tracer.SpanKind,
    attributes: Attributes
  ) =>
    Effect.withSpan(withErrorType(effect), name, {
      kind,
      attributes: attributes(),
      captureStackTrace: false
    })
  if (mode === true) return { span: open, keys }
  return {
    span: (effect, name, kind, attributes) =>
      Effect.withFiberRuntime((fiber) =>
        fiber.currentTracer === nativeTracer ? effect : open(effect, name, kind, attributes)
      ),
    keys
  }
}
