/**
 * The invalidation bus's publishing side: the one place messages are sent, through a breaker of
 * its own (busSubscriber.ts applies received messages).
 */
import { Cause, Duration, Effect, type Option } from "effect"
import { BusError } from "../CacheError.js"
import type * as CircuitBreaker from "../CircuitBreaker.js"
import type * as InvalidationBus from "../InvalidationBus.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import * as Breaker from "./breaker.js"
import type { Counters } from "./counters.js"
import { describe } from "./describe.js"
import type { Spans } from "./spans.js"

/** The BusError of a publish that `how` (died, threw...) with `defect`. */
const busDefect = (how: string, defect: unknown): BusError =>
  new BusError({
    operation: "publish",
    reason: `${how}: ${defect instanceof Error ? defect.message : describe(defect)}`,
    cause: defect
  })

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
    /**
     * The bus's publish, its defects (a bus of the user's: a throw, an Effect.die) made its
     * failures, as a tier's are (tierDefects.ts); an interruption stays one.
     */
    const publish = (message: InvalidationMessage): Effect.Effect<void, BusError> => {
      let effect: Effect.Effect<void, BusError>
      try {
        effect = service.publish(message)
      } catch (defect) {
        return Effect.fail(busDefect("threw", defect))
      }
      return Effect.catchAllCause(effect, (cause) => {
        if (Cause.isInterrupted(cause)) return Effect.failCause(cause)
        const failure = Cause.failureOption(cause)
        if (failure._tag === "Some" && failure.value instanceof BusError) return Effect.fail(failure.value)
        const defect = failure._tag === "Some" ? failure.value : Cause.squash(cause)
        return Effect.fail(busDefect(failure._tag === "Some" ? "failed with a non-BusError" : "died", defect))
      })
    }
    const send = (message: InvalidationMessage): Effect.Effect<boolean> => {
      const send = publish(message)
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
      const logged =
        error.cause === undefined
          ? Effect.logWarning(`tiercache: ${error.message}`)
          : Effect.logWarning(`tiercache: ${error.message}`, Cause.die(error.cause))
      return Effect.as(logged.pipe(Effect.annotateLogs({ cache: cacheName })), false)
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
