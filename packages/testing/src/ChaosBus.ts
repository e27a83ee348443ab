/**
 * An invalidation bus wrapper for fault tests: publishing can fail or lose messages, delivery
 * can be late (on the Effect Clock, so `TestClock` drives it), and subscribers can be told
 * that their connection dropped and came back.
 *
 * @since 0.1.0
 */
import { CacheError, InvalidationBus, type InvalidationMessage } from "@tiercache/core"
import { Clock, Context, Duration, Effect, Layer, Option, Queue, Stream } from "effect"
import * as TestBus from "./TestBus.js"

/**
 * What a chaos bus counted.
 *
 * @category models
 * @since 0.1.0
 */
export interface Counts {
  /** Messages handed to the wrapped bus. */
  readonly published: number
  /** Messages lost on purpose (while `drop(true)`). */
  readonly dropped: number
  /** Publishes failed on purpose (while `failPublish(true)`). */
  readonly failed: number
  /** Times subscribers were told of a reconnection (`disconnect`). */
  readonly disconnects: number
}

/**
 * A bus with chaos controls, reachable from tests built with {@link layer}.
 *
 * @category tags
 * @since 0.1.0
 */
export class ChaosBus extends Context.Tag("@tiercache/testing/ChaosBus")<ChaosBus, ChaosBus.Service>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace ChaosBus {
  /**
   * An InvalidationBus plus its controls. Only subscriptions made through this wrapper see
   * its delays and disconnects.
   *
   * @since 0.1.0
   */
  export interface Service extends InvalidationBus.InvalidationBus.Service {
    /** The bus underneath. */
    readonly wrapped: InvalidationBus.InvalidationBus.Service
    /** Makes `publish` fail with a BusError whose reason says it was injected (true), or work (false). */
    readonly failPublish: (failing: boolean) => Effect.Effect<void>
    /**
     * Delivers every event arriving from now on to subscribers `duration` after it reached
     * them, on the Effect Clock (0: at once); order is kept.
     */
    readonly delay: (duration: Duration.DurationInput) => Effect.Effect<void>
    /** Makes `publish` succeed without sending anything (true), or send again (false). */
    readonly drop: (dropping: boolean) => Effect.Effect<void>
    /**
     * Tells every subscriber of this wrapper that its connection dropped and came back (a
     * `Reconnected` event), ahead of anything published after this returns; messages published
     * before may arrive on either side of it, as on a real reconnection.
     */
    readonly disconnect: Effect.Effect<void>
    /** Removes every control (counts are kept). */
    readonly heal: Effect.Effect<void>
    /** What was published, dropped, failed and disconnected so far. */
    readonly counts: Effect.Effect<Counts>
  }
}

interface Timed {
  readonly event: InvalidationBus.Event
  readonly due: number
}

/**
 * Wraps a bus. It behaves as the wrapped bus until a control says otherwise.
 *
 * @category constructors
 * @since 0.1.0
 */
export const wrap = (bus: InvalidationBus.InvalidationBus.Service): Effect.Effect<ChaosBus.Service> =>
  Effect.gen(function* () {
    const subscriptions = new Set<Queue.Queue<Option.Option<Timed>>>()
    const state = { failing: false, dropping: false, delayMs: 0 }
    const counts = { published: 0, dropped: 0, failed: 0, disconnects: 0 }

    const publish = (message: InvalidationMessage.InvalidationMessage) =>
      Effect.suspend(() => {
        if (state.failing) {
          counts.failed++
          return Effect.fail(
            new CacheError.BusError({ operation: "publish", reason: "failure injected by ChaosBus" })
          )
        }
        if (state.dropping) {
          counts.dropped++
          return Effect.void
        }
        return Effect.tap(bus.publish(message), () => {
          counts.published++
        })
      })

    const stamp = (event: InvalidationBus.Event) =>
      Effect.map(Clock.currentTimeMillis, (now) => Option.some({ event, due: now + state.delayMs }))

    // Events are stamped as they arrive, by a fiber of the subscription's scope, so that a delay
    // is the same for every event instead of adding up behind a slow consumer.
    const subscribe = Effect.gen(function* () {
      const upstream = yield* bus.subscribe
      const out = yield* Effect.acquireRelease(Queue.unbounded<Option.Option<Timed>>(), (queue) =>
        Effect.sync(() => subscriptions.delete(queue))
      )
      subscriptions.add(out)
      yield* upstream.pipe(
        Stream.runForEach((event) => Effect.flatMap(stamp(event), (timed) => Queue.offer(out, timed))),
        Effect.ensuring(Queue.offer(out, Option.none())),
        Effect.forkScoped
      )
      return Stream.fromQueue(out).pipe(
        Stream.takeWhile(Option.isSome),
        Stream.mapEffect(({ value }) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            value.due > now
              ? Effect.as(Effect.sleep(value.due - now), value.event)
              : Effect.succeed(value.event)
          )
        )
      )
    })

    const chaos: ChaosBus.Service = {
      wrapped: bus,
      publish,
      subscribe,
      failPublish: (failing) =>
        Effect.sync(() => {
          state.failing = failing
        }),
      delay: (duration) =>
        Effect.sync(() => {
          state.delayMs = Duration.toMillis(duration)
        }),
      drop: (dropping) =>
        Effect.sync(() => {
          state.dropping = dropping
        }),
      disconnect: Effect.suspend(() => {
        counts.disconnects++
        return Effect.flatMap(stamp(InvalidationBus.reconnected), (timed) =>
          Effect.forEach(subscriptions, (queue) => Queue.offer(queue, timed), { discard: true })
        )
      }),
      heal: Effect.sync(() => {
        state.failing = false
        state.dropping = false
        state.delayMs = 0
      }),
      counts: Effect.sync(() => ({ ...counts }))
    }
    return chaos
  })

/**
 * The bus of one instance on a shared {@link TestBus} hub, wrapped in chaos: provided as the
 * InvalidationBus and as the {@link ChaosBus} tag, so that a test can `yield* ChaosBus`.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (hub: TestBus.Hub): Layer.Layer<ChaosBus | InvalidationBus.InvalidationBus> =>
  Layer.effectContext(
    Effect.map(wrap(TestBus.make(hub)), (chaos) =>
      Context.make(ChaosBus, chaos).pipe(Context.add(InvalidationBus.InvalidationBus, chaos))
    )
  )
