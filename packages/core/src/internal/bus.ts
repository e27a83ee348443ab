/**
 * The invalidation bus: publishing (the one place messages are sent, through a breaker of its
 * own) and applying received messages to this instance's L1 with the local primitives of
 * localWrites.ts.
 */
import { Cause, Chunk, Duration, Effect, Exit, type Option, Scope, Stream } from "effect"
import { BusError, type TierError } from "../CacheError.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import * as Entry from "../Entry.js"
import type { Event } from "../InvalidationBus.js"
import * as InvalidationBus from "../InvalidationBus.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import * as Breaker from "./breaker.js"
import type { Counters } from "./counters.js"
import { describe } from "./describe.js"
import * as LateUpdates from "./lateUpdates.js"
import type { LocalWrites } from "./localWrites.js"
import type { Spans } from "./spans.js"
import * as Tags from "./tags.js"

/** The publishing side of one cache. */
export interface Publisher {
  /** Sends a message (failures counted and logged, never raised). */
  readonly publish: (message: InvalidationMessage) => Effect.Effect<void>
  /** Sends a message as `publish` does; answers whether it was delivered (true without a bus). */
  readonly send: (message: InvalidationMessage) => Effect.Effect<boolean>
  /** Lets an open bus breaker probe with its next publish (the connection reported ready). */
  readonly probeNow: () => void
  /** The bus breaker's state, when there is a bus and a breaker. */
  readonly breakerState: () => CircuitBreaker.State | undefined
  readonly enabled: boolean
  /** The ordered stream publishes travel on (the bus's `sequence`), if it names one. */
  readonly sequence: unknown
  /**
   * `send` started at once (the bus's `publishNow`, oneStepWrite.ts), when the bus has it:
   * `ready()` says whether it may be now (no breaker, or one closed over a bus that bounds its own
   * publishes; no span to open in the running fiber); `send` publishes and calls `done` once,
   * after it returned, with whether the message was delivered and what is left to run (a
   * breaker's log line, a failure's warning; `Effect.void` when nothing is), as `send` would have
   * counted and logged it.
   */
  readonly now:
    | {
        readonly ready: () => boolean
        readonly send: (
          message: InvalidationMessage,
          done: (delivered: boolean, after: Effect.Effect<void>) => void
        ) => void
      }
    | undefined
}

/** Builds the publisher. */
export const makePublisher = (
  bus: Option.Option<InvalidationBus.InvalidationBus.Service>,
  breaker: CircuitBreaker.Options | false,
  counters: Counters,
  cacheName: string,
  spans: Spans | undefined
): Effect.Effect<Publisher> =>
  Effect.gen(function* () {
    if (bus._tag === "None")
      return {
        publish: () => Effect.void,
        send: () => Effect.succeed(true),
        probeNow: () => {},
        breakerState: () => undefined,
        enabled: false,
        sequence: undefined,
        now: undefined
      }
    const service = bus.value
    // With Redis hung, a write would otherwise wait a full timeout on every publish even after
    // the tier's breaker has opened.
    const busBreaker = breaker === false ? undefined : yield* Breaker.make("bus", breaker)
    const publishAttributes = (message: InvalidationMessage) => {
      const a: Record<string, unknown> = {
        "tiercache.cache": cacheName,
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "tiercache.bus.message.type": message.type
      }
      if (service.system !== undefined) a["messaging.system"] = service.system
      if (service.channel !== undefined) a["messaging.destination.name"] = service.channel
      if (spans?.keys === true) {
        if (message.type === "Remove" || message.type === "Update") a["tiercache.key"] = message.key
        if (message.type === "RemovePattern") a["tiercache.pattern"] = message.pattern
        if (message.type === "RemoveTag") a["tiercache.tag"] = message.tag
      }
      return a
    }
    // A bus that bounds its own publishes at least as tightly needs no timer here (a timer
    // forks two fibers per publish, i.e. per write).
    const selfBounded =
      busBreaker !== undefined &&
      service.callTimeout !== undefined &&
      Duration.lessThanOrEqualTo(service.callTimeout, busBreaker.timeout)
    const delivered = Effect.succeed(true)
    const notDelivered = Effect.succeed(false)
    const send = (message: InvalidationMessage): Effect.Effect<boolean> => {
      const send = service.publish(message)
      const guarded =
        busBreaker === undefined
          ? send
          : busBreaker.run(
              send,
              () => new BusError({ operation: "publish", reason: Breaker.OPEN_REASON }),
              () =>
                new BusError({
                  operation: "publish",
                  reason: `timed out after ${Duration.toMillis(busBreaker.timeout)} ms`
                }),
              selfBounded
            )
      const sent =
        spans === undefined
          ? guarded
          : spans.spanHere(guarded, "tiercache.bus.publish", "producer", publishAttributes, message)
      return Effect.matchEffect(sent, { onSuccess: succeeded, onFailure: failed })
    }
    /** A publish that succeeded, counted. */
    const succeeded = () => {
      counters.bus.sent++
      return delivered
    }
    /** A publish that failed, counted (and logged unless the breaker refused it). */
    const failed = (error: BusError): Effect.Effect<boolean> => {
      counters.bus.publishFailures++
      if (error.reason === Breaker.OPEN_REASON) {
        counters.bus.skipped++
        return notDelivered
      }
      return Effect.as(
        Effect.logWarning(`tiercache: ${error.message}`).pipe(Effect.annotateLogs({ cache: cacheName })),
        false
      )
    }
    const publishNow = service.publishNow
    const now: Publisher["now"] =
      publishNow === undefined || (busBreaker !== undefined && !selfBounded)
        ? undefined
        : {
            ready: () =>
              (busBreaker === undefined || busBreaker.state() === "closed") &&
              (spans === undefined || spans.untraced()),
            send: (message, done) => {
              // Counted once, however often a bus of someone else's calls back.
              let answered = false
              const ended = (error: BusError | undefined) => {
                if (answered) return
                answered = true
                const recorded =
                  busBreaker === undefined ? Effect.void : busBreaker.record(error === undefined)
                if (error === undefined) {
                  succeeded()
                  done(true, recorded)
                } else {
                  const logged = Effect.asVoid(failed(error))
                  done(false, recorded === Effect.void ? logged : Effect.zipRight(recorded, logged))
                }
              }
              try {
                publishNow(message, ended)
              } catch (cause) {
                const error = new BusError({
                  operation: "publish",
                  reason: `publishNow threw: ${describe(cause)}`
                })
                void Promise.resolve().then(() => ended(error))
              }
            }
          }
    return {
      publish: (message) => Effect.asVoid(send(message)),
      send,
      probeNow: () => busBreaker?.probeNow(),
      breakerState: () => busBreaker?.state(),
      enabled: true,
      sequence: service.sequence,
      now
    }
  })

/** What the subscriber needs. */
export interface SubscriberDeps {
  readonly local: LocalWrites
  readonly counters: Counters
  readonly instanceId: string
  readonly cacheName: string
  readonly defaultTtl: number
  readonly now: () => number
  readonly recordL1Error: (error: TierError) => Effect.Effect<void>
  /** Runs when the bus reports a reconnection, before L1 is cleared (recovery's replay). */
  readonly beforeResync: Effect.Effect<void>
}

/**
 * The sender of a message that names none (a foreign or older sender), as lateUpdates.ts keeps
 * it: a nameless removal is never taken as a nameless Update's sender's, and two nameless Updates
 * of a key within WINDOW_MS are not taken as one sender's, whose order the bus would keep
 * (lateUpdates.ts NAMELESS).
 */
const UNKNOWN_REMOVER = "\u0000a remover that named no origin"
const UNKNOWN_UPDATER = LateUpdates.NAMELESS
const removerOf = (origin: string | undefined) => origin ?? UNKNOWN_REMOVER
/**
 * A resync as lateUpdates.ts keeps it: the messages lost while the connection was down may
 * have removed any key, by any instance, so an Update created before it is refused.
 */
const RESYNC = "\u0000a resync (messages lost)"

/** Applies a message from another instance to this instance's L1. */
const applyRemote = (deps: SubscriberDeps, message: InvalidationMessage): Effect.Effect<void, TierError> => {
  const { local } = deps
  switch (message.type) {
    case "Remove":
      return local.remove([message.key], removerOf(message.origin))
    case "RemoveBulk":
      return local.remove(message.keys, removerOf(message.origin))
    case "Update": {
      const ttlMs = message.ttl_ms ?? (message.ttl_secs != null ? message.ttl_secs * 1000 : deps.defaultTtl)
      if (!(ttlMs > 0) || !Number.isFinite(ttlMs)) return local.remove([message.key])
      // A grace that is no duration (negative, or JSON's 1e400: Infinity, a copy stale forever).
      const graceMs = message.grace_ms
      if (graceMs !== undefined && !(graceMs >= 0 && Number.isFinite(graceMs))) {
        return local.remove([message.key])
      }
      // Dated, and its lifetime counted, from the sender's creation when the message says it,
      // not from its arrival (a late message must not extend it); never later than the arrival
      // (a sender whose clock runs ahead must not date it into the future).
      const arrival = deps.now()
      const created = message.created_ms
      const dated =
        typeof created === "number" && Number.isFinite(created) ? Math.min(created, arrival) : undefined
      const entry = Entry.make({
        value: message.value,
        now: dated ?? arrival,
        ttlMs,
        graceMs,
        tags: message.tags
      })
      const updater = message.origin ?? UNKNOWN_UPDATER
      if (dated === undefined) return local.store(message.key, entry, updater)
      // Gone already: this instance's copy is older still.
      if (Entry.isGone(entry, arrival)) return local.remove([message.key])
      return local.storeUnlessNewer(message.key, entry, updater)
    }
    case "RemovePattern":
      return local.removeMatching(message.pattern, removerOf(message.origin))
    case "RemoveTag": {
      // A time that is not a number (JSON's 1e400: Infinity) counts as the arrival, and one
      // further ahead of this instance's clock than another's may run (tags.ts) as that far
      // ahead: either would refuse the tag's entries until then.
      const arrival = deps.now()
      const at = message.at
      return local.removeTag(
        message.tag,
        at !== undefined && Number.isFinite(at) ? Tags.bounded(at, arrival) : arrival
      )
    }
    case "Clear":
      return local.clear(removerOf(message.origin))
  }
}

/**
 * Handles a chunk's events one after the other, each after the previous one's effect: an event
 * that needs none (this instance's own echo: a count) costs no Effect step. An event whose
 * handling dies, or throws while its effect is built, is handed to `onDefect` and the next one is
 * handled: a defect would otherwise end the subscriber's fiber, and every later event with it.
 */
const applyInOrder = (
  chunk: Chunk.Chunk<Event>,
  onEvent: (event: Event) => Effect.Effect<void>,
  onDefect: (event: Event, defect: unknown) => Effect.Effect<void>
) => {
  const events = Chunk.toReadonlyArray(chunk)
  let next = 0
  const rest = (): Effect.Effect<void> => {
    while (next < events.length) {
      const event = events[next++]!
      let effect: Effect.Effect<void>
      try {
        effect = onEvent(event)
      } catch (defect) {
        effect = onDefect(event, defect)
      }
      if (effect !== Effect.void) {
        return Effect.flatMap(
          Effect.catchAllDefect(effect, (defect) => onDefect(event, defect)),
          rest
        )
      }
    }
    return Effect.void
  }
  return Effect.suspend(rest)
}

/**
 * An event as a log line names it (its type; never its key, which may be personal data), whatever
 * a bus of someone else's handed over.
 */
const eventName = (event: Event | undefined): string => {
  switch (event?._tag) {
    case "Message":
      return `a bus message (${String(event.message?.type)})`
    case "Reconnected":
      return "the bus's reconnection (resync)"
    case "Malformed":
      return "a malformed bus message"
    default:
      return "a bus event"
  }
}

/**
 * Subscribes to the bus in a fiber of the current scope. A subscription whose stream ends while
 * the scope is open (a defect of the bus's, or a stream that completed) is logged at Error level
 * and opened again; once it is live, the cache resyncs as on the bus's `Reconnected`.
 */
export const subscribe = (
  bus: InvalidationBus.InvalidationBus.Service,
  deps: SubscriberDeps
): Effect.Effect<void, BusError, Scope.Scope> => {
  const { counters, cacheName } = deps
  const onEvent = (event: Event): Effect.Effect<void> => {
    switch (event._tag) {
      case "Reconnected":
        // Counted once L1 is cleared: until then (or when the clear failed) the resync has not
        // happened.
        return deps.beforeResync.pipe(
          Effect.zipRight(deps.local.clear(RESYNC)),
          Effect.zipRight(
            Effect.sync(() => {
              counters.bus.resyncs++
            })
          ),
          Effect.zipRight(Effect.logInfo("tiercache: bus reconnected; L1 cleared")),
          Effect.catchAll(deps.recordL1Error),
          Effect.annotateLogs({ cache: cacheName })
        )
      case "Malformed":
        counters.bus.received++
        counters.bus.malformed++
        return Effect.logWarning(`tiercache: malformed bus message skipped: ${event.reason}`).pipe(
          Effect.annotateLogs({ cache: cacheName })
        )
      case "Message":
        counters.bus.received++
        if (event.message.origin === deps.instanceId) {
          counters.bus.own++
          return Effect.void
        }
        // Counted once applied: a message L1 failed to apply is a tier error, not an application.
        return applyRemote(deps, event.message).pipe(
          Effect.zipRight(
            Effect.sync(() => {
              counters.bus.applied++
            })
          ),
          Effect.catchAll(deps.recordL1Error)
        )
    }
  }
  // Logged with its cause, and skipped: the subscriber goes on with the next event.
  const onDefect = (event: Event, defect: unknown): Effect.Effect<void> =>
    Effect.logError(
      `tiercache: ${eventName(event)} could not be applied (a defect); skipped, later messages still apply`,
      Cause.die(defect)
    ).pipe(Effect.annotateLogs({ cache: cacheName }))
  // Each subscription lives in a scope of its own, closed when its stream ends, so that the
  // next one can be opened in its place; the cache's scope closes the one open then (after it
  // interrupted the listening fiber: that finalizer was added later, so it runs first).
  let current: Scope.CloseableScope | undefined
  const closeCurrent = Effect.suspend(() => {
    const own = current
    current = undefined
    return own === undefined ? Effect.void : Scope.close(own, Exit.void)
  })
  const open = Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(Scope.make(), (own) =>
      restore(Scope.extend(bus.subscribe, own)).pipe(
        Effect.onExit((exit) =>
          Exit.isSuccess(exit)
            ? Effect.sync(() => {
                current = own
              })
            : Scope.close(own, exit)
        )
      )
    )
  )
  const listen = (events: Stream.Stream<Event>, attempt: number): Effect.Effect<void> => {
    let heard = false
    return Stream.runForEachChunk(events, (chunk) => {
      heard = true
      return applyInOrder(chunk, onEvent, onDefect)
    }).pipe(
      Effect.exit,
      Effect.flatMap((exit) => Effect.zipRight(closeCurrent, again(exit, heard ? 0 : attempt + 1)))
    )
  }
  // The stream ended while the cache lives (a defect of the bus's, or a stream that completed):
  // said, and subscribed again, after a pause that grows while subscriptions end unheard. Then
  // the cache resyncs as on a reconnection: messages may have been lost in between.
  const again = (exit: Exit.Exit<void>, attempt: number): Effect.Effect<void> => {
    if (Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)) return Effect.void
    const how = Exit.isFailure(exit) ? "a defect" : "its stream completed"
    const said = Effect.logError(
      `tiercache: the bus subscription ended (${how}); subscribing again`,
      Exit.isFailure(exit) ? exit.cause : Cause.empty
    ).pipe(Effect.annotateLogs({ cache: cacheName }))
    return Effect.zipRight(said, resubscribe(attempt))
  }
  const resubscribe = (attempt: number): Effect.Effect<void> =>
    (attempt === 0 ? open : Effect.zipRight(Effect.sleep(resubscribeDelay(attempt)), open)).pipe(
      Effect.matchEffect({
        onFailure: (error) =>
          Effect.logWarning(`tiercache: could not subscribe to the bus again: ${error.message}`).pipe(
            Effect.annotateLogs({ cache: cacheName }),
            Effect.zipRight(Effect.suspend(() => resubscribe(attempt + 1)))
          ),
        onSuccess: (events) =>
          Effect.catchAllDefect(onEvent(InvalidationBus.reconnected), (defect) =>
            onDefect(InvalidationBus.reconnected, defect)
          ).pipe(Effect.zipRight(Effect.suspend(() => listen(events, attempt))))
      })
    )
  return Effect.addFinalizer(() => closeCurrent).pipe(
    Effect.zipRight(open),
    Effect.flatMap((first) => Effect.forkScoped(listen(first, 0))),
    Effect.asVoid
  )
}

/**
 * How long the subscriber waits before subscribing again, from the second attempt in a row on
 * (the first comes at once after a subscription that handed over events): 100 ms, then twice as
 * long after each subscription that ended unheard or could not be opened, up to 30 seconds.
 */
const resubscribeDelay = (attempt: number): Duration.Duration =>
  Duration.millis(Math.min(100 * 2 ** (attempt - 1), 30_000))
