/**
 * The invalidation bus's receiving side: received messages applied to this instance's L1 with the
 * local primitives of localWrites.ts, in a fiber of the cache's scope, subscribed again when the
 * bus's stream ends.
 */
import { Cause, Chunk, Effect, Exit, Scope, Stream } from "effect"
import type { BusError, TierError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import type { Event } from "../InvalidationBus.js"
import * as InvalidationBus from "../InvalidationBus.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { Counters } from "./counters.js"
import * as LateUpdates from "./lateUpdates.js"
import type { LocalWrites } from "./localWrites.js"
import { rerunDelay } from "./rerunDelay.js"
import * as Tags from "./tags.js"
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
    // At once after a subscription that handed over events (attempt 0), else after rerunDelay.
    (attempt === 0 ? open : Effect.zipRight(Effect.sleep(rerunDelay(attempt)), open)).pipe(
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
