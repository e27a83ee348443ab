/**
 * The invalidation bus over Redis Pub/Sub. Messages are published on the command connection;
 * each subscription has a Pub/Sub connection of its own. When that connection drops and comes
 * back, the subscription subscribes again itself and, once Redis confirmed it, yields
 * `Reconnected`: messages published in between were lost, and the cache clears its L1.
 *
 * @since 0.1.0
 */
import { CacheError, InvalidationBus, InvalidationMessage } from "@tiercache/core"
import { Duration, Effect, FiberSet, Layer, Queue, Stream } from "effect"
import { RedisConnection } from "./RedisConnection.js"

type BusError = CacheError.BusError
const { BusError } = CacheError

/**
 * Options of the Redis bus.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The Pub/Sub channel (default `cache:invalidate`, as the Rust crate uses). */
  readonly channel?: string | undefined
}

/**
 * The default channel.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultChannel = "cache:invalidate"

const describe = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.includes("enableOfflineQueue")) return "not connected (reconnecting in the background)"
  return message
}

/**
 * Builds the bus on the connection in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<InvalidationBus.InvalidationBus.Service, never, RedisConnection> =>
  Effect.gen(function* () {
    const connection = yield* RedisConnection
    const channel = options.channel ?? defaultChannel
    const timeout = connection.commandTimeout
    const bounded = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, BusError> =>
      Effect.tryPromise({
        try: send,
        catch: (cause) => new BusError({ operation, reason: describe(cause), cause })
      }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => new BusError({ operation, reason: `no answer within ${Duration.format(timeout)}` })
        })
      )

    const publish = (message: InvalidationMessage.InvalidationMessage): Effect.Effect<void, BusError> =>
      Effect.try({
        try: () => InvalidationMessage.encode(message),
        catch: (cause) => new BusError({ operation: "publish", reason: "message cannot be encoded", cause })
      }).pipe(
        Effect.flatMap((payload) => bounded("publish", () => connection.client.publish(channel, payload))),
        Effect.asVoid
      )

    const subscribe = Effect.gen(function* () {
      const subscriber = yield* Effect.mapError(
        connection.subscriber,
        (error) => new BusError({ operation: "subscribe", reason: error.reason, cause: error })
      )
      const events = yield* Effect.acquireRelease(Queue.unbounded<InvalidationBus.Event>(), (queue) =>
        Queue.shutdown(queue)
      )
      const run = yield* FiberSet.makeRuntime<never>()

      const onMessage = (from: string, raw: string) => {
        if (from === channel) events.unsafeOffer(InvalidationBus.decodeEvent(raw))
      }
      // After the first connection, every "ready" is a reconnection: subscribe again, and
      // say so only once Redis confirmed the subscription.
      const resubscribe = bounded("subscribe", () => subscriber.subscribe(channel)).pipe(
        Effect.zipRight(Queue.offer(events, InvalidationBus.reconnected)),
        Effect.zipRight(Effect.logDebug("redis bus subscription live again")),
        Effect.catchAll((error) =>
          Effect.zipRight(
            Effect.logWarning(`redis bus could not subscribe again: ${error.reason}; reconnecting`),
            // A new connection cycle brings a new "ready", and with it another attempt.
            Effect.sync(() => subscriber.disconnect(true))
          )
        ),
        Effect.annotateLogs({ channel })
      )
      const onReady = () => {
        run(resubscribe)
      }
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          subscriber.on("message", onMessage)
          subscriber.on("ready", onReady)
        }),
        () =>
          Effect.sync(() => {
            subscriber.off("message", onMessage)
            subscriber.off("ready", onReady)
          })
      )
      yield* bounded("subscribe", () => subscriber.subscribe(channel))
      return Stream.fromQueue(events)
    })

    return { publish, subscribe }
  })

/**
 * The Redis bus as the cache's invalidation bus.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<InvalidationBus.InvalidationBus, never, RedisConnection> =>
  Layer.effect(InvalidationBus.InvalidationBus, make(options))
