/**
 * A subscription of RedisInvalidationBus: a Pub/Sub connection of its own, subscribed to the
 * channel. When that connection drops and comes back, the subscription subscribes again itself
 * and, once Redis confirmed it, yields `Reconnected`. Echoes of this bus's own publishes are
 * handed over as published (ownEchoes.ts); every other payload goes through the admission
 * (busAdmission.ts).
 */
import { CacheError, InvalidationBus } from "@tiercache/core"
import { Duration, Effect, FiberSet, identity, Option, Queue, type Scope, Stream } from "effect"
import type { RedisConnection } from "../RedisConnection.js"
import type { Admission } from "./busAdmission.js"
import { describe } from "./describe.js"
import type { OwnEchoes } from "./ownEchoes.js"
import { sanitize } from "./sanitize.js"

type BusError = CacheError.BusError
const { BusError } = CacheError

/** What the Pub/Sub connection hands over: a payload, or word of a reconnection. */
type Arrival = string | InvalidationBus.Event

/** The subscribe of a bus on `channel`. */
export const make = (
  connection: RedisConnection.Service,
  channel: string,
  ownEchoes: OwnEchoes,
  admit: Admission["admit"]
): Effect.Effect<Stream.Stream<InvalidationBus.Event>, BusError, Scope.Scope> => {
  const timeout = connection.commandTimeout

  const bounded = <A>(operation: string, send: () => Promise<A>): Effect.Effect<A, BusError> =>
    Effect.tryPromise({
      try: send,
      catch: (cause) => new BusError({ operation, reason: describe(cause), cause: sanitize(cause) })
    }).pipe(
      Effect.timeoutFail({
        duration: timeout,
        onTimeout: () => new BusError({ operation, reason: `no answer within ${Duration.format(timeout)}` })
      })
    )

  /** Waits until the command connection is ready (at once when it is). */
  const commandReady = Effect.async<void>((resume) => {
    const client = connection.client
    if (client.status === "ready") return resume(Effect.void)
    const onReady = () => resume(Effect.void)
    client.once("ready", onReady)
    return Effect.sync(() => {
      client.off("ready", onReady)
    })
  })

  return Effect.gen(function* () {
    const subscriber = yield* Effect.mapError(
      connection.subscriber,
      (error) => new BusError({ operation: "subscribe", reason: error.reason, cause: error })
    )
    const arrivals = yield* Effect.acquireRelease(Queue.unbounded<Arrival>(), (queue) =>
      Queue.shutdown(queue)
    )
    const run = yield* FiberSet.makeRuntime<never>()

    const onMessage = (from: string, raw: string) => {
      if (from === channel) arrivals.unsafeOffer(ownEchoes.take(raw) ?? raw)
    }
    // After the first connection, every "ready" is a reconnection: subscribe again, and
    // say so only once Redis confirmed the subscription and the command connection is
    // ready too (the cache then replays what it kept, and reads go to Redis again: on a
    // command connection still reconnecting they would fail and open the tier's breaker).
    const resubscribe = bounded("subscribe", () => subscriber.subscribe(channel)).pipe(
      Effect.zipRight(commandReady),
      Effect.zipRight(Queue.offer(arrivals, InvalidationBus.reconnected)),
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
    yield* Effect.acquireRelease(Effect.sync(ownEchoes.subscribed), () => Effect.sync(ownEchoes.unsubscribed))
    return Stream.fromQueue(arrivals).pipe(
      Stream.mapEffect((arrival) =>
        typeof arrival === "string"
          ? Effect.annotateLogs(admit(arrival), { channel })
          : Effect.succeed(Option.some(arrival))
      ),
      Stream.filterMap(identity)
    )
  })
}
