/**
 * The cache's spans (tier calls, computations, bus publishes), chosen once when the cache is
 * built from its `spans` option: `false` installs nothing (callers use the plain effects),
 * `true` opens every span, unset opens a span only when the calling fiber's Tracer is not
 * Effect's native one (one fiber-field comparison per call, no span allocated otherwise).
 * The L1 hit paths never come here.
 */
import { Cause, Context, Effect, Fiber, Tracer } from "effect"
import type { TierError } from "../CacheError.js"
import type { Tier } from "../Tier.js"

/** Effect's default Tracer (its spans are not exported anywhere). */
const nativeTracer: Tracer.Tracer = Effect.runSync(Effect.tracer)

/** Attributes of a span, computed from `arg` only when the span is opened. */
export type Attributes<T> = (arg: T) => Record<string, unknown>

/** `effect` in the span `name` of kind `kind`, its attributes `attributes(arg)`. */
export type OpenSpan = <A, E, R, T>(
  effect: Effect.Effect<A, E, R>,
  name: string,
  kind: Tracer.SpanKind,
  attributes: Attributes<T>,
  arg: T
) => Effect.Effect<A, E, R>

/** Opens the cache's spans. */
export interface Spans {
  /**
   * Runs `effect` in the span `name` (with `error.type` on failure), when tracing is on; the
   * attributes are `attributes(arg)` (no closure is allocated per call).
   */
  readonly span: OpenSpan
  /**
   * `span`, decided when called by the running fiber's Tracer (no Effect step): only for an
   * effect built in the fiber that runs it (or in one its runner is forked from).
   */
  readonly spanHere: OpenSpan
  /** Whether keys, patterns and tags may be span attributes (the `keysInSpans` option). */
  readonly keys: boolean
  /**
   * `plain` when the running fiber opens no span here (unset mode, Effect's native Tracer),
   * else `traced()`: for wrappers that cost something even when the span they open is not
   * recorded (a context rewrite), decided when the effect runs.
   */
  readonly whenTraced: <A, E, R>(
    plain: Effect.Effect<A, E, R>,
    traced: () => Effect.Effect<A, E, R>
  ) => Effect.Effect<A, E, R>
  /**
   * Whether the fiber running now is known to open no span here (unset mode, Effect's native
   * Tracer): a hot path built and run in that fiber may then skip `span` and its Effect step.
   */
  readonly untraced: () => boolean
}

/**
 * The annotations of a cache's log line about `key`. A log line written inside a span becomes
 * one of its events (Effect's tracer logger, exported by @effect/opentelemetry), its annotations
 * the event's attributes: so the key is one only with `keysInSpans`, as for span attributes.
 */
export const keyAnnotations = (keysInSpans: boolean, cache: string, key: string): Record<string, string> =>
  keysInSpans ? { key, cache } : { cache }

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
  const open: OpenSpan = (effect, name, kind, attributes, arg) =>
    Effect.withSpan(withErrorType(effect), name, {
      kind,
      attributes: attributes(arg),
      captureStackTrace: false
    })
  if (mode === true) {
    return { span: open, spanHere: open, whenTraced: (_, traced) => traced(), keys, untraced: () => false }
  }
  const whenTraced = <A, E, R>(plain: Effect.Effect<A, E, R>, traced: () => Effect.Effect<A, E, R>) =>
    Effect.withFiberRuntime<A, E, R>((fiber) => (fiber.currentTracer === nativeTracer ? plain : traced()))
  const untraced = () => {
    const fiber = Fiber.getCurrentFiber()
    return fiber._tag === "Some" && fiber.value.currentTracer === nativeTracer
  }
  const span: OpenSpan = (effect, name, kind, attributes, arg) =>
    whenTraced(effect, () => open(effect, name, kind, attributes, arg))
  return {
    span,
    // Outside a fiber (no current fiber), decided when run, as `span`.
    spanHere: (effect, name, kind, attributes, arg) =>
      untraced() ? effect : span(effect, name, kind, attributes, arg),
    whenTraced,
    keys,
    untraced
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
  const base = (operation: string) => {
    const a: Record<string, unknown> = {
      "tiercache.cache": cache,
      "tiercache.tier": label,
      "db.operation.name": operation
    }
    if (system !== undefined) a["db.system.name"] = system
    return a
  }
  const oneKey = (operation: string) => (key: string) => {
    const a = base(operation)
    if (spans.keys) a["tiercache.key"] = key
    return a
  }
  const keyList = (operation: string) => (keys: ReadonlyArray<string>) => {
    const a = base(operation)
    if (keys.length >= 2) a["db.operation.batch.size"] = keys.length
    else if (spans.keys && keys.length === 1) a["tiercache.key"] = keys[0]
    return a
  }
  const getAttributes = oneKey("get")
  const setAttributes = oneKey("set")
  const getManyAttributes = keyList("getMany")
  const removeAttributes = keyList("remove")
  const setManyList = keyList("setMany")
  const setManyAttributes = (entries: ReadonlyArray<readonly [string, unknown]>) =>
    setManyList(entries.map(([key]) => key))
  const removeMatchingAttributes = (glob: string) => {
    const a = base("removeMatching")
    if (spans.keys) a["tiercache.pattern"] = glob
    return a
  }
  /**
   * `start(then)`, a call that runs `then` (its bus message) once its command is sent
   * (`setThen`, `removeThen`), in a span `name`; the message gets its span beside the call's,
   * not inside it. Untraced, the context rewrite that puts it there is skipped too. Called only
   * while the write runs, in its fiber (everyTier's ordered runs): the running fiber's Tracer
   * decides at once when it is Effect's native one.
   */
  const traceThen = <A, P>(
    start: (then: Effect.Effect<A>) => Effect.Effect<readonly [TierError | undefined, A]>,
    then: Effect.Effect<A>,
    name: string,
    attributes: Attributes<P>,
    arg: P
  ): Effect.Effect<readonly [TierError | undefined, A]> =>
    spans.untraced()
      ? start(then)
      : spans.whenTraced(start(then), () =>
          Effect.contextWithEffect((outer: Context.Context<never>) => {
            const parent = Context.getOption(outer, Tracer.ParentSpan)
            const beside = Effect.mapInputContext(then, (inner: Context.Context<never>) =>
              parent._tag === "Some"
                ? Context.add(inner, Tracer.ParentSpan, parent.value)
                : Context.omit(Tracer.ParentSpan)(inner)
            )
            return spans.span(start(beside), name, "client", attributes, arg)
          })
        )
  return {
    ...tier,
    // A write or removal started outside Effect opens no span: the cache starts it on the
    // untraced tier only.
    setNow: undefined,
    removeNow: undefined,
    get: (key) => spans.span(tier.get(key), "tiercache.tier.get", "client", getAttributes, key),
    getMany: (keys) =>
      spans.span(tier.getMany(keys), "tiercache.tier.getMany", "client", getManyAttributes, keys),
    set: (key, entry) => spans.span(tier.set(key, entry), "tiercache.tier.set", "client", setAttributes, key),
    setMany: (entries) =>
      spans.span(tier.setMany(entries), "tiercache.tier.setMany", "client", setManyAttributes, entries),
    remove: (keys) =>
      spans.span(tier.remove(keys), "tiercache.tier.remove", "client", removeAttributes, keys),
    removeMatching: (glob) =>
      spans.span(
        tier.removeMatching(glob),
        "tiercache.tier.removeMatching",
        "client",
        removeMatchingAttributes,
        glob
      ),
    clear: spans.span(tier.clear, "tiercache.tier.clear", "client", base, "clear"),
    ...(tier.setThen === undefined
      ? {}
      : {
          setThen: (key, entry, then) =>
            traceThen((t) => tier.setThen!(key, entry, t), then, "tiercache.tier.set", setAttributes, key)
        }),
    ...(tier.removeThen === undefined
      ? {}
      : {
          removeThen: (keys, then) =>
            traceThen((t) => tier.removeThen!(keys, t), then, "tiercache.tier.remove", removeAttributes, keys)
        })
  }
}
