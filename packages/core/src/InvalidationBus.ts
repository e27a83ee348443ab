/**
 * The invalidation bus: how instances tell each other's L1 what changed.
 *
 * @since 0.1.0
 */
import type { Duration, Effect, Scope, Stream } from "effect"
import { Context } from "effect"
import type { BusError } from "./CacheError.js"
import * as InvalidationMessage from "./InvalidationMessage.js"

/**
 * What a subscription yields: a decoded message, a message that did not decode (counted and
 * skipped by the cache), or word that the connection dropped and came back, so that messages
 * may have been lost in between (the cache then clears its L1).
 *
 * @category models
 * @since 0.1.0
 */
export type Event =
  | { readonly _tag: "Message"; readonly message: InvalidationMessage.InvalidationMessage }
  | { readonly _tag: "Malformed"; readonly raw: string; readonly reason: string }
  | { readonly _tag: "Reconnected" }

/**
 * Turns a raw wire payload into an {@link Event}.
 *
 * @category encoding
 * @since 0.1.0
 */
export const decodeEvent = (raw: string): Event => {
  const decoded = InvalidationMessage.decode(raw)
  return decoded._tag === "Right"
    ? { _tag: "Message", message: decoded.right }
    : { _tag: "Malformed", raw, reason: decoded.left }
}

/**
 * The event a bus emits after its connection came back.
 *
 * @category constructors
 * @since 0.1.0
 */
export const reconnected: Event = { _tag: "Reconnected" }

/**
 * A publish/subscribe channel shared by every instance of a cache.
 *
 * @category tags
 * @since 0.1.0
 */
export class InvalidationBus extends Context.Tag("@tiercache/core/InvalidationBus")<
  InvalidationBus,
  InvalidationBus.Service
>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace InvalidationBus {
  /**
   * @since 0.1.0
   */
  export interface Service {
    /** Sends a message to every subscriber (this instance's own included). */
    readonly publish: (message: InvalidationMessage.InvalidationMessage) => Effect.Effect<void, BusError>
    /**
     * Subscribes: once this effect has succeeded the subscription is live (nothing published
     * afterwards is missed); the subscription ends when the scope closes. A stream that ends
     * before (it dies or completes) is a lost subscription: the cache subscribes again, in a new
     * scope, and then clears its L1 as on `Reconnected`.
     */
    readonly subscribe: Effect.Effect<Stream.Stream<Event>, BusError, Scope.Scope>
    /** Optional: the OpenTelemetry `messaging.system` (e.g. `redis`), set on publish spans. */
    readonly system?: string | undefined
    /** Optional: the channel, set on publish spans as `messaging.destination.name`. */
    readonly channel?: string | undefined
    /**
     * Optional: the bound the bus itself puts on every publish (e.g. a driver's command
     * timeout). A bus breaker whose timeout is not shorter adds no timer of its own.
     */
    readonly callTimeout?: Duration.Duration | undefined
    /**
     * Optional: names the ordered stream of calls publishes travel on; see `Tier.Service`'s
     * `sequence`. Set it only when every publish goes on that stream.
     */
    readonly sequence?: unknown
    /**
     * Optional: `publish` started at once, outside Effect, for the cache's hot path. The
     * message is sent (or queued to leave with the messages of the moment, in order) before it
     * returns, and `done` is called exactly once, after `publishNow` has returned, with the
     * failure (undefined once sent). Never throws.
     */
    readonly publishNow?:
      | ((
          message: InvalidationMessage.InvalidationMessage,
          done: (error: BusError | undefined) => void
        ) => void)
      | undefined
  }
}
