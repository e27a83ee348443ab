/**
 * An in-memory invalidation bus: a hub that several cache instances share, which carries
 * messages as JSON strings (so that malformed ones can be injected) and can simulate a
 * dropped-and-restored connection.
 *
 * Every payload on a hub reaches every subscriber, where RedisInvalidationBus drops some before
 * the cache sees them. A hub is the channel of one application's instances, so TestBus stamps no
 * namespace on what it publishes and drops no message stamped with another (RedisInvalidationBus
 * stamps its key prefix, which TestTier does not have, and drops other namespaces' messages: a
 * test of that needs `RedisServer.layer()` and the Redis bus); `MultiInstance.settle` can then
 * count every payload as delivered to every cache. A malformed payload reaches the cache, which
 * counts it in `invalidationStats.malformedMessages` (RedisInvalidationBus counts it in its own
 * `stats` instead). Either way the cache skips it.
 *
 * @since 0.1.0
 */
import { CacheError, InvalidationBus, InvalidationMessage } from "@tiercache/core"
import { Effect, Layer, PubSub, Stream } from "effect"

type Wire = { readonly _tag: "Raw"; readonly raw: string } | { readonly _tag: "Reconnected" }

/**
 * A hub: what every instance's TestBus publishes to and subscribes from.
 *
 * @category models
 * @since 0.1.0
 */
export interface Hub {
  /** Sends a raw payload to every subscriber, as a foreign or broken publisher would. */
  readonly publishRaw: (raw: string) => Effect.Effect<void>
  /** Tells every subscriber that its connection dropped and came back. */
  readonly reconnect: Effect.Effect<void>
  /** Subscriptions open now. */
  readonly subscribers: Effect.Effect<number>
  /** Every payload published so far, in order. */
  readonly published: Effect.Effect<ReadonlyArray<string>>
  /** Makes publishing fail (true) or work again (false). */
  readonly setFailing: (failing: boolean) => Effect.Effect<void>
  /** @internal */
  readonly pubsub: PubSub.PubSub<Wire>
  /** @internal */
  readonly state: { subscribers: number; failing: boolean; readonly log: Array<string> }
}

/**
 * Makes a hub.
 *
 * @category constructors
 * @since 0.1.0
 */
export const makeHub: Effect.Effect<Hub> = Effect.gen(function* () {
  const pubsub = yield* PubSub.unbounded<Wire>()
  const state = { subscribers: 0, failing: false, log: [] as Array<string> }
  return {
    pubsub,
    state,
    publishRaw: (raw) =>
      Effect.suspend(() => {
        state.log.push(raw)
        return PubSub.publish(pubsub, { _tag: "Raw", raw })
      }),
    reconnect: PubSub.publish(pubsub, { _tag: "Reconnected" }),
    subscribers: Effect.sync(() => state.subscribers),
    published: Effect.sync(() => [...state.log]),
    setFailing: (failing) =>
      Effect.sync(() => {
        state.failing = failing
      })
  } satisfies Hub
})

/**
 * An InvalidationBus on a hub.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (hub: Hub): InvalidationBus.InvalidationBus.Service => ({
  publish: (message) =>
    Effect.suspend(() => {
      if (hub.state.failing) {
        return Effect.fail(
          new CacheError.BusError({ operation: "publish", reason: "failure injected by the test" })
        )
      }
      let raw: string
      try {
        // As RedisInvalidationBus: a message JSON cannot encode, or none (plain JS), is refused.
        if (message == null) throw new TypeError(`no message: ${message}`)
        raw = InvalidationMessage.encode(message)
      } catch (cause) {
        return Effect.fail(
          new CacheError.BusError({ operation: "publish", reason: "message cannot be encoded", cause })
        )
      }
      return hub.publishRaw(raw)
    }),
  subscribe: Effect.gen(function* () {
    const dequeue = yield* PubSub.subscribe(hub.pubsub)
    yield* Effect.acquireRelease(
      Effect.sync(() => {
        hub.state.subscribers++
      }),
      () =>
        Effect.sync(() => {
          hub.state.subscribers--
        })
    )
    return Stream.fromQueue(dequeue).pipe(
      Stream.map((wire) =>
        wire._tag === "Raw" ? InvalidationBus.decodeEvent(wire.raw) : InvalidationBus.reconnected
      )
    )
  })
})

/**
 * The bus of one instance, on a shared hub.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (hub: Hub): Layer.Layer<InvalidationBus.InvalidationBus> =>
  Layer.succeed(InvalidationBus.InvalidationBus, make(hub))
