/**
 * A subscription of RedisInvalidationBus: a Pub/Sub connection of its own, subscribed to the
 * channel. When that connection drops and comes back, the subscription subscribes again itself
 * and, once Redis confirmed it, yields `Reconnected`. Echoes of this bus's own publishes are
 * handed over as published (ownEchoes.ts), within a few milliseconds (ECHO_DELAY_MS); every
 * other payload goes through the admission (busAdmission.ts) and is handed over at once.
 */
import { CacheError, InvalidationBus } from "@tiercache/core"
import { Chunk, Duration, Effect, FiberSet, Option, Schedule, type Scope, Stream } from "effect"
import { ReplyError } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"
import type { Admission } from "./busAdmission.js"
import { describe } from "./describe.js"
import type { OwnEchoes } from "./ownEchoes.js"
import { sanitize } from "./sanitize.js"

type BusError = CacheError.BusError
const { BusError } = CacheError

/** What the Pub/Sub connection hands over: a payload, or word of a reconnection. */
type Arrival = string | InvalidationBus.Event

/**
 * How long an echo of this bus's own publish may wait before it wakes the consumer. An echo
 * needs nothing but a count, and waking the consumer for each one (the Stream's steps, in the
 * same turn as the reply to the write that sent it) delayed that reply: a `set` with the bus
 * took 193 us with each echo waking the consumer, 157 us with echoes waiting (median of 3,000,
 * one caller, reply times traced on the socket). Echoes that wait are handed over in order, with
 * the next other arrival at the latest; the cache counts them then.
 */
const ECHO_DELAY_MS = 5

/**
 * How often the Pub/Sub connection is asked a PING. One left unanswered past the command timeout
 * ends the connection, which then reconnects (and the cache resyncs): a connection whose peer
 * is gone without a word (its host down, or a NAT or load balancer that forgot an idle flow)
 * otherwise stays up for as long as TCP keepalive takes (hours), every message lost meanwhile
 * and nothing cleared.
 */
const HEARTBEAT = "1 second"

/**
 * How many command timeouts the Pub/Sub connection is kept while neither it nor the command
 * connection answers (Redis busy with a long command, or a script below busy-reply-threshold,
 * 5 s by default: 10 of the default 500 ms).
 */
const STALL_LIMIT = 10

/**
 * Waits for the event loop's next check phase, which comes after its poll phase: whatever
 * already waited in a socket has been read by then.
 */
const afterPendingIo = Effect.async<void>((resume) => {
  const immediate = setImmediate(() => resume(Effect.void))
  return Effect.sync(() => clearImmediate(immediate))
})

/**
 * What arrived on the connection and was not pulled yet. One consumer pulls everything there is
 * at once (or waits for the next arrival): no Queue, whose every take on an empty queue makes a
 * Deferred (about 5 us in Effect 3), i.e. one per message published by this very instance.
 */
interface Arrivals {
  /** Hands over an arrival; `echo`: this bus's own publish, which may wait (ECHO_DELAY_MS). */
  readonly push: (arrival: Arrival, echo: boolean) => void
  readonly pull: Effect.Effect<Chunk.Chunk<Arrival>, Option.Option<never>>
  /** Ends the stream: a waiting pull, and every later one, ends it. */
  readonly close: () => void
}

const makeArrivals = (): Arrivals => {
  let buffer: Array<Arrival> = []
  let waiting: ((chunk: Effect.Effect<Chunk.Chunk<Arrival>, Option.Option<never>>) => void) | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let closed = false
  const end = Effect.fail(Option.none())
  const drain = () => {
    const out = buffer
    buffer = []
    return Effect.succeed(Chunk.unsafeFromArray(out))
  }
  const wakeNow = () => {
    if (timer !== undefined) {
      clearTimeout(timer)
      timer = undefined
    }
    const wake = waiting
    if (wake !== undefined && buffer.length > 0) {
      waiting = undefined
      wake(drain())
    }
  }
  return {
    push: (arrival, echo) => {
      if (closed) return
      buffer.push(arrival)
      if (waiting === undefined) return
      if (!echo) return wakeNow()
      if (timer === undefined) {
        timer = setTimeout(wakeNow, ECHO_DELAY_MS)
        timer.unref()
      }
    },
    pull: Effect.async((resume) => {
      if (buffer.length > 0) return resume(drain())
      if (closed) return resume(end)
      waiting = resume
      return Effect.sync(() => {
        if (waiting === resume) waiting = undefined
      })
    }),
    close: () => {
      closed = true
      if (timer !== undefined) clearTimeout(timer)
      timer = undefined
      const wake = waiting
      waiting = undefined
      wake?.(end)
    }
  }
}

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
    const arrivals = yield* Effect.acquireRelease(Effect.sync(makeArrivals), (a) => Effect.sync(a.close))
    const run = yield* FiberSet.makeRuntime<never>()

    const onMessage = (from: string, raw: string) => {
      if (from !== channel) return
      const own = ownEchoes.take(raw)
      if (own !== undefined) arrivals.push(own, true)
      else arrivals.push(raw, false)
    }
    // After the first connection, every "ready" is a reconnection: subscribe again, and
    // say so only once Redis confirmed the subscription and the command connection is
    // ready too (the cache then replays what it kept, and reads go to Redis again: on a
    // command connection still reconnecting they would fail and open the tier's breaker).
    const resubscribe = bounded("subscribe", () => subscriber.subscribe(channel)).pipe(
      Effect.zipRight(commandReady),
      Effect.zipRight(Effect.sync(() => arrivals.push(InvalidationBus.reconnected, false))),
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
    // Only while the connection is up: a PING refused while it reconnects proves nothing. An
    // error reply (BUSY while a script runs) is an answer: the connection is alive. So is
    // anything read from it since the PING (its answer, messages ahead of it), judged once the
    // socket was read (afterPendingIo): with the event loop busy past the timeout, the timers
    // run before the answer already there is read.
    //
    // Redis itself busy (a command or a script below busy-reply-threshold, which answers
    // nobody: no BUSY) loses no message, and cutting the connection would: when the command
    // connection does not answer either, the connection is kept, for STALL_LIMIT command
    // timeouts at most (a NAT or host that lost both flows is still noticed).
    const pingOn = (client: typeof subscriber) =>
      bounded("ping", () =>
        client.ping().catch((error: unknown) => {
          if (error instanceof ReplyError) return "answered"
          throw error
        })
      )
    const stallLimitMs = STALL_LIMIT * Duration.toMillis(timeout)
    let silentSince: number | undefined
    const heartbeat = Effect.suspend(() => {
      if (subscriber.status !== "ready") return Effect.void
      const socket = subscriber.stream
      const before = socket.bytesRead
      return pingOn(subscriber).pipe(
        Effect.tap(() =>
          Effect.sync(() => {
            silentSince = undefined
          })
        ),
        Effect.catchAll((error) =>
          Effect.zipRight(
            afterPendingIo,
            Effect.suspend(() => {
              if (
                subscriber.status !== "ready" ||
                subscriber.stream !== socket ||
                socket.bytesRead > before
              ) {
                silentSince = undefined
                return Effect.void
              }
              const now = performance.now()
              silentSince ??= now
              const cut = Effect.zipRight(
                Effect.logWarning(`redis bus connection does not answer: ${error.reason}; reconnecting`),
                Effect.sync(() => {
                  silentSince = undefined
                  subscriber.disconnect(true)
                })
              )
              if (now - silentSince >= stallLimitMs) return cut
              return Effect.matchEffect(pingOn(connection.client), {
                onSuccess: () => cut,
                onFailure: () => Effect.logDebug("redis answers no connection; the bus connection is kept")
              })
            })
          )
        ),
        Effect.annotateLogs({ channel })
      )
    })
    yield* Effect.forkScoped(Effect.repeat(heartbeat, Schedule.spaced(HEARTBEAT)))
    // Whatever arrived since the last pull is one chunk: admitted without an Effect per payload
    // (only a dropped payload's count and log are effects).
    return Stream.repeatEffectChunkOption(arrivals.pull).pipe(
      Stream.mapChunksEffect((chunk) => {
        const events: Array<InvalidationBus.Event> = []
        let drops: Array<Effect.Effect<void>> | undefined
        for (const arrival of chunk) {
          if (typeof arrival !== "string") {
            events.push(arrival)
            continue
          }
          const admitted = admit(arrival)
          if (!Effect.isEffect(admitted)) events.push(admitted)
          else if (drops === undefined) drops = [admitted]
          else drops.push(admitted)
        }
        const out = Chunk.unsafeFromArray(events)
        return drops === undefined
          ? Effect.succeed(out)
          : Effect.as(Effect.annotateLogs(Effect.all(drops, { discard: true }), { channel }), out)
      })
    )
  })
}
