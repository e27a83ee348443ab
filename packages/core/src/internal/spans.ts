/**
 * The cache's spans (tier calls, computations, bus publishes), chosen once when the cache is
 * built from its `spans` option: `false` installs nothing (callers use the plain effects),
 * `true` opens every span, unset opens a span only when the calling fiber's Tracer is not
 * Effect's native one (one fiber-field comparison per call, no span allocated otherwise).
 * The L1 hit paths never come here.
 */
import { Cause, Effect, type Tracer } from "effect"
import type { Tier } from "../Tier.js"

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

/**
 * The tier with a `tiercache.tier.<operation>` span (kind client) around each call: this is the
 * one layer of spans for tier calls (RedisTier opens none of its own).
 */
export const traceTier = (
  tier: Tier.Service,
  spans: Spans,
  cache: string,
  label: string,
  system: string | undefined
): Tier.Service => {
  const attributes =
    (operation: string, keys?: ReadonlyArray<string>, key?: string, pattern?: string) => () => {
      const a: Record<string, unknown> = {
        "tiercache.cache": cache,
        "tiercache.tier": label,
        "db.operation.name": operation
      }
      if (system !== undefined) a["db.system.name"] = system
      if (keys !== undefined && keys.length >= 2) a["db.operation.batch.size"] = keys.length
      if (spans.keys && key !== undefined) a["tiercache.key"] = key
      if (spans.keys && pattern !== undefined) a["tiercache.pattern"] = pattern
      return a
    }
  const span = <A, E>(effect: Effect.Effect<A, E>, operation: string, attrs: () => Record<string, unknown>) =>
    spans.span(effect, `tiercache.tier.${operation}`, "client", attrs)
  return {
    ...tier,
    get: (key) => span(tier.get(key), "get", attributes("get", undefined, key)),
    getMany: (keys) =>
      span(
        tier.getMany(keys),
        "getMany",
        attributes("getMany", keys, keys.length === 1 ? keys[0] : undefined)
      ),
    set: (key, entry) => span(tier.set(key, entry), "set", attributes("set", undefined, key)),
    setMany: (entries) =>
      span(
        tier.setMany(entries),
        "setMany",
        attributes(
          "setMany",
          entries.map(([key]) => key),
          entries.length === 1 ? entries[0]![0] : undefined
        )
      ),
    remove: (keys) =>
      span(tier.remove(keys), "remove", attributes("remove", keys, keys.length === 1 ? keys[0] : undefined)),
    removeMatching: (glob) =>
      span(
        tier.removeMatching(glob),
        "removeMatching",
        attributes("removeMatching", undefined, undefined, glob)
      ),
    clear: span(tier.clear, "clear", attributes("clear"))
  }
}
