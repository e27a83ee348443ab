/**
 * Several TieredCache instances, as on several machines: each has its own L1, all share one
 * L2 and one invalidation bus.
 *
 * @since 0.1.0
 */
import { CacheError, type InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Context, Effect, Layer, type Scope } from "effect"
import { given, notAnObject, refused } from "./internal/options.js"
import * as TestBus from "./TestBus.js"
import * as TestTier from "./TestTier.js"

/**
 * Options of a group of instances. Only an absent (`undefined`) option takes its default: `null`
 * from plain JavaScript, or a value of the wrong type, fails with a `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options<E, R> {
  /** Options of every instance's cache. */
  readonly cache?: TieredCache.Options | undefined
  /** Options of every instance's L1 (default: 10 000 entries). */
  readonly l1?: MemoryTier.Options | undefined
  /**
   * The shared tier below L1 and the bus, built once per instance (default: one shared
   * TestTier and one shared TestBus hub).
   */
  readonly shared?: Layer.Layer<Tier.L2 | InvalidationBus.InvalidationBus, E, R> | undefined
}

/**
 * The instances and what they share.
 *
 * @category models
 * @since 0.1.0
 */
export interface Instances {
  /** The caches, each with its own L1 and instance id. */
  readonly caches: ReadonlyArray<TieredCache.TieredCache.Service>
  /** The L2 they share (when the default was used). */
  readonly l2: TestTier.TestTier | undefined
  /** The bus hub they share (when the default was used). */
  readonly hub: TestBus.Hub | undefined
}

/** The CacheConfigError of the first bad option, or undefined: only an absent one takes its default. */
const instancesProblem = (options: unknown): CacheError.CacheConfigError | undefined => {
  const notObject = notAnObject(options)
  if (notObject) return new CacheError.CacheConfigError({ option: "options", reason: notObject })
  const { cache, l1, shared } = options as Record<string, unknown>
  for (const [option, value] of [
    ["cache", cache],
    ["l1", l1]
  ] as const) {
    const problem = value === undefined ? undefined : notAnObject(value)
    if (problem) return new CacheError.CacheConfigError({ option, reason: problem })
  }
  if (shared !== undefined && !Layer.isLayer(shared)) {
    return new CacheError.CacheConfigError({ option: "shared", reason: "must be a Layer" })
  }
  return undefined
}

/**
 * Builds `n` instances in the current scope; closing it stops every instance.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = <E = never, R = never>(
  n: number,
  options: Options<E, R> = {}
): Effect.Effect<Instances, E | TieredCache.LayerError, R | Scope.Scope> =>
  Effect.gen(function* () {
    const bad = instancesProblem(options)
    if (bad) return yield* bad
    let l2: TestTier.TestTier | undefined
    let hub: TestBus.Hub | undefined
    let shared: Layer.Layer<Tier.L2 | InvalidationBus.InvalidationBus, E, R>
    if (options.shared !== undefined) {
      shared = options.shared
    } else {
      l2 = yield* TestTier.make()
      hub = yield* TestBus.makeHub
      shared = Layer.merge(Layer.succeed(Tier.L2, l2), TestBus.layer(hub))
    }
    const caches: Array<TieredCache.TieredCache.Service> = []
    for (let i = 0; i < n; i++) {
      const layer = TieredCache.layer({ ...options.cache, instanceId: `instance-${i + 1}` }).pipe(
        Layer.provide(
          Layer.merge(MemoryTier.layer(given(options.l1, { maxEntries: 10_000 })), Layer.fresh(shared))
        )
      )
      const context = yield* Layer.build(layer)
      caches.push(Context.get(context, TieredCache.TieredCache))
    }
    return { caches, l2, hub }
  })

/**
 * Options of {@link settle}. Only an absent (`undefined`) option takes its default: `null` from
 * plain JavaScript, or a value of the wrong type, is a defect (a mistake in the test: the wait
 * promises no failure) carrying a `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface SettleOptions {
  /** The hub the caches share, to count messages published on it directly (default: none). */
  readonly hub?: TestBus.Hub | undefined
  /** What to do between two checks (default `Effect.yieldNow()`; on the live clock, a short sleep). */
  readonly pause?: Effect.Effect<void> | undefined
  /** How many checks before giving up with a defect (default 10 000). */
  readonly rounds?: number | undefined
}

/**
 * Waits until no cache has a computation still writing its lower tiers and every cache has
 * received every message published so far (by the caches, or on the hub when given): the
 * moment at which a write or an invalidation has reached every instance.
 *
 * @category utils
 * @since 0.1.0
 */
export const settle = (
  caches: ReadonlyArray<TieredCache.TieredCache.Service>,
  options: SettleOptions = {}
): Effect.Effect<void> =>
  Effect.gen(function* () {
    const notObject = notAnObject(options)
    if (notObject) return yield* refused("options", notObject)
    const pause = given(options.pause, Effect.yieldNow())
    if (!Effect.isEffect(pause)) return yield* refused("pause", "must be an Effect")
    const rounds = given(options.rounds, 10_000)
    if (!(typeof rounds === "number" && Number.isSafeInteger(rounds) && rounds > 0)) {
      return yield* refused("rounds", "must be a positive integer")
    }
    const hub: unknown = options.hub
    if (hub !== undefined && (typeof hub !== "object" || hub === null)) {
      return yield* refused("hub", "must be a TestBus hub")
    }
    for (let i = 0; i < rounds; i++) {
      const stats = yield* Effect.forEach(caches, (c) => c.stats)
      const bus = yield* Effect.forEach(caches, (c) => c.invalidationStats)
      const published =
        options.hub !== undefined
          ? (yield* options.hub.published).length
          : bus.reduce((total, b) => total + b.messagesSent, 0)
      if (stats.every((s) => s.inFlight === 0) && bus.every((b) => b.messagesReceived >= published)) return
      yield* pause
    }
    return yield* Effect.dieMessage(`caches did not settle within ${rounds} checks`)
  })
