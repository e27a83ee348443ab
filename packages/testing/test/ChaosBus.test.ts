import { describe, expect, it } from "@effect/vitest"
import {
  CacheError,
  InvalidationBus,
  type InvalidationMessage,
  MemoryTier,
  TieredCache
} from "@tiercache/core"
import { Chunk, Clock, Effect, Fiber, Layer, Option, Ref, Stream, TestClock } from "effect"
import { ChaosBus, TestBus, TestTier } from "../src/index.js"

const remove = (key: string): InvalidationMessage.InvalidationMessage => ({ type: "Remove", key })

/** A chaos bus over a fresh hub. */
const chaosBus = Effect.gen(function* () {
  const hub = yield* TestBus.makeHub
  const chaos = yield* ChaosBus.wrap(TestBus.make(hub))
  return { hub, chaos }
})

/**
 * Subscribes (live once this returns) and collects what arrives, with the Clock time of
 * arrival, in a fiber of the test's scope.
 */
const collect = (bus: InvalidationBus.InvalidationBus.Service) =>
  Effect.gen(function* () {
    const received = yield* Ref.make<
      ReadonlyArray<{ readonly event: InvalidationBus.Event; readonly at: number }>
    >([])
    const stream = yield* bus.subscribe
    yield* stream.pipe(
      Stream.runForEach((event) =>
        Effect.flatMap(Clock.currentTimeMillis, (at) =>
          Ref.update(received, (all) => [...all, { event, at }])
        )
      ),
      Effect.forkScoped
    )
    return received
  })

/** Waits until `n` events were received. */
const awaitReceived = <A>(received: Ref.Ref<ReadonlyArray<A>>, n: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if ((yield* Ref.get(received)).length >= n) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`fewer than ${n} events received`)
  })

/** Lets every fiber that can run, run. */
const settle = Effect.repeatN(Effect.yieldNow(), 50)

/** Waits until `n` sleeps are registered with the TestClock. */
const awaitSleeps = (n: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if (Chunk.size(yield* TestClock.sleeps()) >= n) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`fewer than ${n} sleeps registered`)
  })

const message = (m: InvalidationMessage.InvalidationMessage): InvalidationBus.Event => ({
  _tag: "Message",
  message: m
})

describe("ChaosBus", () => {
  it.scoped("without controls it is the wrapped bus", () =>
    Effect.gen(function* () {
      const { hub, chaos } = yield* chaosBus
      const received = yield* collect(chaos)
      yield* chaos.publish(remove("a"))
      yield* hub.publishRaw("not json")
      yield* awaitReceived(received, 2)
      const events = (yield* Ref.get(received)).map((r) => r.event)
      expect(events[0]).toEqual(message(remove("a")))
      expect(events[1]?._tag).toBe("Malformed")
      expect(yield* hub.published).toEqual(['{"type":"Remove","key":"a"}', "not json"])
      expect(yield* chaos.counts).toEqual({ published: 1, dropped: 0, failed: 0, disconnects: 0 })
    })
  )

  it.scoped("failPublish makes publish fail with an injected BusError until turned off", () =>
    Effect.gen(function* () {
      const { hub, chaos } = yield* chaosBus
      yield* chaos.failPublish(true)
      const error = yield* Effect.flip(chaos.publish(remove("a")))
      expect(error).toBeInstanceOf(CacheError.BusError)
      expect(error.operation).toBe("publish")
      expect(error.reason).toBe("failure injected by ChaosBus")
      expect(yield* hub.published).toEqual([])
      yield* chaos.failPublish(false)
      yield* chaos.publish(remove("b"))
      expect(yield* hub.published).toEqual(['{"type":"Remove","key":"b"}'])
      expect(yield* chaos.counts).toEqual({ published: 1, dropped: 0, failed: 1, disconnects: 0 })
    })
  )

  it.scoped("drop loses published messages silently", () =>
    Effect.gen(function* () {
      const { hub, chaos } = yield* chaosBus
      const received = yield* collect(chaos)
      yield* chaos.drop(true)
      yield* chaos.publish(remove("lost-1"))
      yield* chaos.publish(remove("lost-2"))
      yield* chaos.drop(false)
      yield* chaos.publish(remove("kept"))
      yield* awaitReceived(received, 1)
      yield* settle
      expect((yield* Ref.get(received)).map((r) => r.event)).toEqual([message(remove("kept"))])
      expect(yield* hub.published).toEqual(['{"type":"Remove","key":"kept"}'])
      expect(yield* chaos.counts).toEqual({ published: 1, dropped: 2, failed: 0, disconnects: 0 })
    })
  )

  it.scoped("delay delivers exactly after the delay on the Clock, not before, and does not add up", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosBus
      const received = yield* collect(chaos)
      yield* chaos.delay("1 second")
      yield* chaos.publish(remove("a"))
      yield* chaos.publish(remove("b"))
      yield* awaitSleeps(1)
      yield* settle
      yield* TestClock.adjust("999 millis")
      yield* settle
      expect(yield* Ref.get(received)).toEqual([])
      yield* TestClock.adjust("1 millis")
      yield* awaitReceived(received, 2)
      expect(yield* Ref.get(received)).toEqual([
        { event: message(remove("a")), at: 1000 },
        { event: message(remove("b")), at: 1000 }
      ])
    })
  )

  it.scoped("disconnect sends the reconnected event to every subscriber of the wrapper", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosBus
      const first = yield* collect(chaos)
      const second = yield* collect(chaos)
      yield* chaos.disconnect
      yield* chaos.publish(remove("after"))
      for (const received of [first, second]) {
        yield* awaitReceived(received, 2)
        const events = (yield* Ref.get(received)).map((r) => r.event)
        expect(events).toEqual([InvalidationBus.reconnected, message(remove("after"))])
      }
      expect((yield* chaos.counts).disconnects).toBe(1)
    })
  )

  it.scoped("heal removes every control; counts are kept", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosBus
      const received = yield* collect(chaos)
      yield* chaos.failPublish(true)
      yield* chaos.drop(true)
      yield* chaos.delay("1 hour")
      yield* Effect.flip(chaos.publish(remove("failed")))
      yield* chaos.heal
      yield* chaos.publish(remove("a"))
      // No clock adjustment: delivery is immediate again.
      yield* awaitReceived(received, 1)
      expect(yield* Ref.get(received)).toEqual([{ event: message(remove("a")), at: 0 }])
      expect(yield* chaos.counts).toEqual({ published: 1, dropped: 0, failed: 1, disconnects: 0 })
    })
  )

  it.scoped("closing the subscription's scope ends its stream", () =>
    Effect.gen(function* () {
      const { hub, chaos } = yield* chaosBus
      const fiber = yield* Effect.fork(
        Effect.scoped(Effect.flatMap(chaos.subscribe, (stream) => Stream.runCollect(Stream.take(stream, 1))))
      )
      for (let i = 0; i < 1000 && (yield* hub.subscribers) === 0; i++) yield* Effect.yieldNow()
      expect(yield* hub.subscribers).toBe(1)
      yield* chaos.publish(remove("a"))
      expect(Chunk.toReadonlyArray(yield* Fiber.join(fiber))).toEqual([message(remove("a"))])
      expect(yield* hub.subscribers).toBe(0)
    })
  )

  it.scoped(
    "layer provides one ChaosBus as both the InvalidationBus and the ChaosBus tag, on a shared hub",
    () =>
      Effect.gen(function* () {
        const hub = yield* TestBus.makeHub
        const other = yield* collect(TestBus.make(hub))
        yield* Effect.gen(function* () {
          const chaos = yield* ChaosBus.ChaosBus
          const bus = yield* InvalidationBus.InvalidationBus
          expect(bus).toBe(chaos)
          yield* bus.publish(remove("a"))
          yield* chaos.drop(true)
          yield* bus.publish(remove("b"))
          expect(yield* chaos.counts).toMatchObject({ published: 1, dropped: 1 })
        }).pipe(Effect.provide(ChaosBus.layer(hub)))
        yield* awaitReceived(other, 1)
        yield* settle
        expect((yield* Ref.get(other)).map((r) => r.event)).toEqual([message(remove("a"))])
      })
  )

  it.scoped("a cache on a ChaosBus resyncs (clears its L1) after disconnect", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const context = yield* Layer.build(
        TieredCache.layer().pipe(
          Layer.provideMerge(
            Layer.mergeAll(MemoryTier.layer({ maxEntries: 100 }), TestTier.layer(), ChaosBus.layer(hub))
          )
        )
      )
      const cache = yield* Effect.provide(TieredCache.TieredCache, context)
      const chaos = yield* Effect.provide(ChaosBus.ChaosBus, context)
      yield* cache.set("k", "v")
      yield* chaos.disconnect
      for (let i = 0; i < 1000 && (yield* cache.invalidationStats).resyncs === 0; i++)
        yield* Effect.yieldNow()
      expect((yield* cache.invalidationStats).resyncs).toBe(1)
      // L1 was cleared: the next read is answered by L2.
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      const stats = yield* cache.stats
      expect([stats.l1Hits, stats.l2Hits]).toEqual([0, 1])
    })
  )
})
