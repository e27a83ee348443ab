/**
 * The invalidation bus over Redis Pub/Sub. Messages are published on the command connection;
 * each subscription has a Pub/Sub connection of its own. When that connection drops and comes
 * back, the subscription subscribes again itself and, once Redis confirmed it, yields
 * `Reconnected`: messages published in between were lost, and the cache clears its L1. A PING
 * every second that goes unanswered past the command timeout ends the connection (a peer gone
 * without a word would otherwise leave it up, and deaf, for hours), so it reconnects the same way.
 * Redis hands every message back to its sender's own subscription: such an echo reaches the
 * cache within 5 ms (or with the next message, whichever comes first), so the cache's
 * `ownMessagesIgnored` and `messagesReceived` may trail a publish by that long.
 *
 * The `Remove`s published in one moment (writes at once) leave as one `RemoveBulk` of their
 * keys (a lone one as the `Remove` it is), in the same socket write as the writes before them;
 * a message of another kind first sends the removes published before it. With 64 writers at
 * once this cut the CPU per `set` by about a fifth (bench/PROFILE.md).
 *
 * Large values: an `Update` (the cache's `update`) whose encoded message takes the connection's
 * `largeValueBytes` or more, or more than `maxMessageBytes`, is published as a `Remove` of its
 * key (largeUpdates.ts): the other instances drop their L1 copy and read the value from the lower
 * tiers, which hold it already. A `RemoveBulk` longer than `maxMessageBytes` leaves as several
 * RemoveBulks of its keys, each at most that long (largeBulks.ts): Redis cuts off a subscriber
 * whose queued messages pass its client-output-buffer-limit for Pub/Sub. The publish's span (the
 * cache's `tiercache.bus.publish`) says what left: `tiercache.bus.message.type` = `Remove` for
 * such an Update, `messaging.batch.message_count` for a RemoveBulk sent in pieces.
 *
 * Namespaces: the bus stamps every message it publishes with its namespace (by default the
 * connection's `keyPrefix`, the same namespace as RedisTier's keys; given or not, followed by
 * `@<db>` on a database other than 0) and drops every message stamped with another one before
 * the cache sees it, counting it (`stats`, and the metric `tiercache_bus_foreign_messages_total`).
 * A message without a namespace (as the Rust crate sends) applies to every cache on the channel. Malformed
 * messages are dropped here too, counted by kind (`tiercache_bus_malformed_messages_total{kind}`), and logged
 * one short line at a time, at most once per `malformedLogInterval` per kind.
 *
 * @since 0.1.0
 */
import { CacheError, InvalidationBus, InvalidationMessage } from "@tiercache/core"
import { Context, type Duration, Effect, Layer, Metric } from "effect"
import * as BusAdmission from "./internal/busAdmission.js"
import { resolveOptions } from "./internal/busOptions.js"
import * as BusSubscription from "./internal/busSubscription.js"
import { beforeUncork, sender } from "./internal/corkedSend.js"
import { describe } from "./internal/describe.js"
import * as LargeBulks from "./internal/largeBulks.js"
import { isLargeUpdate, removalOf } from "./internal/largeUpdates.js"
import * as OwnEchoes from "./internal/ownEchoes.js"
import * as RemoveBatch from "./internal/removeBatch.js"
import { sanitize } from "./internal/sanitize.js"
import { RedisConnection } from "./RedisConnection.js"

type BusError = CacheError.BusError
const { BusError } = CacheError

/**
 * Options of the Redis bus. Only an absent (`undefined`) option takes its default: `null` or a value
 * of the wrong type or out of range (from plain JavaScript) is a `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The Pub/Sub channel (default `cache:invalidate`, as the Rust crate uses). */
  readonly channel?: string | undefined
  /**
   * The namespace stamped on outgoing messages and required of incoming ones (default: the
   * connection's `keyPrefix`, which is also RedisTier's default prefix). Either one is followed
   * by `@<db>` when the connection's database is not 0, since Pub/Sub ignores databases: two
   * apps on two databases of one server never act on each other's messages (on database 0, one
   * that ends in `@<digits>` itself is followed by `@0`: `app:@1` there is not `app:` on db 1). Give it when
   * RedisTier has a `prefix` of its own: the same string. Rolling upgrade from 0.1.0, which
   * stamped a given namespace without `@<db>`: on a database other than 0, instances on the old
   * and the new version drop each other's messages until every instance runs the new one.
   */
  readonly namespace?: string | undefined
  /** Malformed messages are logged at most once per this interval per kind (default 1 minute; 0: each; infinite: the first). */
  readonly malformedLogInterval?: Duration.DurationInput | undefined
  /**
   * The most bytes (UTF-8) of one published message, where it can be cut (default 1 MiB): a
   * `RemoveBulk` longer than this leaves as several, an `Update` longer than this as a `Remove`
   * of its key (as one of the connection's `largeValueBytes` or more does). Redis queues each
   * message whole on every subscriber's connection and cuts a subscriber off past its
   * client-output-buffer-limit for Pub/Sub (by default 32 MB at once, or 8 MB for 60 s): at
   * 1 MiB a subscriber must fall 8 messages behind for a minute, or 32 at once, before it is
   * cut, and one PUBLISH carries at most 1 MiB within the command timeout. Set it lower when
   * your server's limit is lower. A single key whose own message is longer is sent as it is.
   */
  readonly maxMessageBytes?: number | undefined
}

/**
 * `message` with `namespace` set, as `{ ...message, namespace }` would make it. Copied with
 * `Object.assign`: on the write path, where the bus sees messages of several shapes, the spread
 * took 3-5 us a message against about 1 us (setTrace marks, a slow host). A message with an own
 * `__proto__` key (which `Object.assign` would set as the prototype) is copied by the spread.
 */
const stampedWith = (
  message: InvalidationMessage.InvalidationMessage,
  namespace: string
): InvalidationMessage.InvalidationMessage => {
  if (Object.hasOwn(message, "__proto__")) return { ...message, namespace }
  const stamped = Object.assign({}, message)
  ;(stamped as { namespace?: string }).namespace = namespace
  return stamped
}

/** Span attributes saying what a publish sent, when it is not the message given. */
type Told = Record<string, unknown> | undefined

/** How a publish went (`error`), and what it sent when that is not the message given. */
type Done = (error: CacheError.BusError | undefined, told: Told) => void

/**
 * What left for `message` when it is not that message, as attributes of its publish's span: the
 * kind sent (`tiercache.bus.message.type`: a large Update leaves as a `Remove`), and the number
 * of messages (`messaging.batch.message_count`: a long RemoveBulk leaves in pieces).
 */
const sentAs = (
  message: InvalidationMessage.InvalidationMessage,
  sent: InvalidationMessage.InvalidationMessage,
  pieces: number
): Told => {
  if (sent.type === message.type && pieces === 1) return undefined
  const told: Record<string, unknown> = { "tiercache.bus.message.type": sent.type }
  if (pieces > 1) told["messaging.batch.message_count"] = pieces
  return told
}

/**
 * The default channel.
 *
 * @category constants
 * @since 0.1.0
 */
export const defaultChannel = "cache:invalidate"

/**
 * What the bus dropped before the cache saw it, since the bus was built.
 *
 * @category models
 * @since 0.1.0
 */
export interface BusStats {
  /** The channel. */
  readonly channel: string
  /** The namespace stamped on outgoing messages and required of incoming ones. */
  readonly namespace: string
  /** Messages stamped with another namespace (dropped). */
  readonly foreignMessages: number
  /** Messages that did not decode (dropped), all kinds together. */
  readonly malformedMessages: number
  /** Malformed messages by kind. */
  readonly malformedByKind: Readonly<Record<InvalidationMessage.MalformedKind, number>>
}

/**
 * The Redis bus's own view, next to the `InvalidationBus` it provides.
 *
 * @category tags
 * @since 0.1.0
 */
export class RedisInvalidationBus extends Context.Tag("@tiercache/redis/RedisInvalidationBus")<
  RedisInvalidationBus,
  RedisInvalidationBus.Service
>() {}

/**
 * @category tags
 * @since 0.1.0
 */
export declare namespace RedisInvalidationBus {
  /**
   * @since 0.1.0
   */
  export interface Service extends InvalidationBus.InvalidationBus.Service {
    /** What the bus dropped so far. */
    readonly stats: Effect.Effect<BusStats>
  }
}

/**
 * Messages of another namespace dropped by the bus, by channel.
 *
 * @category metrics
 * @since 0.1.0
 */
export const foreignMessages = Metric.counter("tiercache_bus_foreign_messages_total", {
  description: "Bus messages of another namespace, dropped before reaching the cache",
  incremental: true
})

/**
 * Malformed messages dropped by the bus, by channel and kind (not_json, unknown_type, invalid_field).
 *
 * @category metrics
 * @since 0.1.0
 */
export const malformedMessages = Metric.counter("tiercache_bus_malformed_messages_total", {
  description: "Bus messages that did not decode, dropped before reaching the cache",
  incremental: true
})

/**
 * Builds the bus on the connection in context.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<RedisInvalidationBus.Service, CacheError.CacheConfigError, RedisConnection> =>
  Effect.gen(function* () {
    const connection = yield* RedisConnection
    const { channel, namespace, logInterval, maxMessageBytes } = yield* resolveOptions(
      options,
      connection,
      defaultChannel
    )
    // An Update is large from this many bytes on (largeUpdates.ts counts "at least").
    const largeUpdateBytes = Math.min(connection.largeValueBytes, maxMessageBytes + 1)
    const timeout = connection.commandTimeout
    const { admit, counts } = BusAdmission.make(
      namespace,
      logInterval,
      foreignMessages.pipe(Metric.tagged("channel", channel)),
      malformedMessages.pipe(Metric.tagged("channel", channel))
    )
    const ownEchoes = OwnEchoes.make()
    const client = connection.client
    // Corked with the writes RedisTier sends on this connection in the same tick.
    const send = sender(client)
    /** The message stamped with this bus's namespace, and its payload; throws when it cannot be encoded. */
    const encoded = (message: InvalidationMessage.InvalidationMessage) => {
      const stamped = stampedWith(message, namespace)
      return { stamped, payload: InvalidationMessage.encode(stamped) }
    }
    /** Sends one encoded message, remembering its echo. */
    const sendOne = ({ payload, stamped }: LargeBulks.Encoded): Promise<unknown> => {
      const sent = send("publish", [channel, payload], () => client.publish(channel, payload))
      ownEchoes.remember(payload, stamped)
      return sent
    }
    const sendPieces = LargeBulks.makeSender(sendOne)
    /** Sends an encoded message, a RemoveBulk too long for one message in pieces (largeBulks.ts). */
    const sendEncoded = (out: LargeBulks.Encoded): Promise<unknown> =>
      sendPieces(LargeBulks.piecesOf(out, maxMessageBytes))
    /** A large Update's message as the Remove of its key (largeUpdates.ts); any other as it is. */
    const smaller = (out: ReturnType<typeof encoded>): ReturnType<typeof encoded> =>
      isLargeUpdate(out.stamped, out.payload, largeUpdateBytes) ? encoded(removalOf(out.stamped)) : out
    const removes = RemoveBatch.make({
      publish: (message) => sendEncoded(encoded(message)),
      atEnd: (flush) => beforeUncork(client, flush)
    })
    const failed = (cause: unknown) =>
      new BusError({ operation: "publish", reason: describe(cause), cause: sanitize(cause) })
    /**
     * One message sent at once; `done` is told how it went, after this returns, and what left
     * when it differs from `message` (see {@link sentAs}).
     */
    const direct = (message: InvalidationMessage.InvalidationMessage, done: Done) => {
      let sent: Promise<unknown>
      let told: Told
      try {
        const out = smaller(encoded(message))
        const pieces = LargeBulks.piecesOf(out, maxMessageBytes)
        told = sentAs(message, out.stamped, pieces.length)
        try {
          sent = sendPieces(pieces)
        } catch (cause) {
          sent = Promise.reject(failed(cause))
        }
      } catch (cause) {
        sent = Promise.reject(
          new BusError({ operation: "publish", reason: "message cannot be encoded", cause: sanitize(cause) })
        )
      }
      sent.then(
        () => done(undefined, told),
        (cause: unknown) => done(cause instanceof CacheError.BusError ? cause : failed(cause), told)
      )
    }
    /**
     * One PUBLISH on the command connection, which ioredis bounds by the command timeout itself
     * (and fails at once while disconnected): no timer of our own, which would fork two fibers
     * per publish, i.e. per write of the cache. The removes of one moment share one message
     * (removeBatch.ts); any other message first sends the removes published before it.
     */
    const publishNow = (message: InvalidationMessage.InvalidationMessage, done: Done): void => {
      // From plain JavaScript, no message at all: `direct` answers that it cannot be encoded.
      if (message != null && message.type === "Remove") {
        const waits = removes.add(message, (failure) =>
          done(failure === undefined ? undefined : failed(failure.cause), undefined)
        )
        if (waits) return
      } else {
        removes.flush()
      }
      direct(message, done)
    }
    /** `publishNow` as an Effect, its span (the cache's `tiercache.bus.publish`) told what left. */
    const publish = (message: InvalidationMessage.InvalidationMessage): Effect.Effect<void, BusError> =>
      Effect.async<void, BusError>((resume) =>
        publishNow(message, (error, told) => {
          const result = error === undefined ? Effect.void : Effect.fail(error)
          resume(told === undefined ? result : Effect.zipRight(Effect.annotateCurrentSpan(told), result))
        })
      )

    const subscribe = BusSubscription.make(connection, channel, ownEchoes, admit)

    const stats = Effect.sync(
      (): BusStats => ({
        channel,
        namespace,
        foreignMessages: counts.foreign,
        malformedMessages:
          counts.malformed.not_json + counts.malformed.unknown_type + counts.malformed.invalid_field,
        malformedByKind: { ...counts.malformed }
      })
    )

    // Publishes go on the command connection, after the writes RedisTier sent on it before.
    return {
      publish,
      publishNow,
      subscribe,
      stats,
      system: "redis",
      channel,
      callTimeout: timeout,
      sequence: connection.client
    }
  })

/**
 * The Redis bus as the cache's invalidation bus, and as itself (for its `stats`).
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<
  InvalidationBus.InvalidationBus | RedisInvalidationBus,
  CacheError.CacheConfigError,
  RedisConnection
> =>
  Layer.effectContext(
    Effect.map(make(options), (bus) =>
      Context.make(RedisInvalidationBus, bus).pipe(Context.add(InvalidationBus.InvalidationBus, bus))
    )
  )
