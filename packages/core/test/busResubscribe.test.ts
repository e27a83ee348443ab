import { describe, expect, it } from "@effect/vitest"
import { CacheError, InvalidationBus, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Cause, Effect, Exit, Fiber, Logger, Option, Scope, Stream, TestClock } from "effect"

// A bus subscription whose stream ended (a defect of the bus's, or a stream that completed) left
// that instance's L1 deaf for the rest of its life: every later change of another instance was
// served stale from it, until its TTL, and nothing but one log line said so. It is now opened
// again, and the instance resyncs (clears its L1) once it is live, as on a reconnection.

/** What the test makes the bus do: how often it was subscribed, and what it does next. */
interface Control {
  subscribes: number
  /** Subscriptions refused (BusError) before the next one is opened. */
  refuse: number
  /** A subscription's stream completes at once instead of carrying messages. */
  complete: boolean
}

/** A TestBus whose stream dies on a Remove of "kill", and whose subscribe the test steers. */
const steeredBus = (hub: TestBus.Hub, control: Control): InvalidationBus.InvalidationBus.Service => {
  const inner = TestBus.make(hub)
  return {
    ...inner,
    subscribe: Effect.suspend(() => {
      control.subscribes++
      if (control.refuse > 0) {
        control.refuse--
        return Effect.fail(new CacheError.BusError({ operation: "subscribe", reason: "refused by the test" }))
      }
      if (control.complete) return Effect.succeed(Stream.empty)
      return Effect.map(inner.subscribe, (events) =>
        Stream.map(events, (event) => {
          if (event._tag === "Message" && event.message.type === "Remove" && event.message.key === "kill") {
            throw new Error("the bus's stream died")
          }
          return event
        })
      )
    })
  }
}

/** Two caches on one L2 and one hub: "a" on a plain TestBus, "b" on the steered one; b's log lines. */
const world = (control: Control) =>
  Effect.gen(function* () {
    const lines: Array<string> = []
    const logger = Logger.make(({ logLevel, message, cause }) => {
      lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
    })
    const hub = yield* TestBus.makeHub
    const l2 = yield* TestTier.make({ name: "l2" })
    const instance = (id: string, bus: InvalidationBus.InvalidationBus.Service) =>
      Effect.gen(function* () {
        const l1 = yield* TestTier.make({ name: "l1" })
        const cache = yield* TieredCache.make({ instanceId: id }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2),
          Effect.provideService(InvalidationBus.InvalidationBus, bus)
        )
        return { cache, l1 }
      })
    const a = yield* instance("a", TestBus.make(hub))
    const b = yield* instance("b", steeredBus(hub, control)).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger))
    )
    /** Lets b's subscriber run (it waits for nothing but its turn). */
    const turns = Effect.repeatN(Effect.yieldNow(), 50)
    const inL1 = (key: string) => Effect.map(b.l1.get(key), Option.isSome)
    return { lines, hub, a: a.cache, b: b.cache, turns, inL1 }
  })

/**
 * For each pause of `gaps` (ms): no new subscription a millisecond before it is over, one when it
 * is (the clock moved, `turns` letting the fibers run).
 */
const subscribesAfter = (control: Control, turns: Effect.Effect<void>, gaps: ReadonlyArray<number>) =>
  Effect.forEach(
    gaps,
    (gap) =>
      Effect.gen(function* () {
        const before = control.subscribes
        yield* TestClock.adjust(gap - 1)
        yield* turns
        expect(control.subscribes).toBe(before)
        yield* TestClock.adjust(1)
        yield* turns
        expect(control.subscribes).toBe(before + 1)
      }),
    { discard: true }
  )

const kill = JSON.stringify({ type: "Remove", key: "kill", origin: "x" })

describe("a bus subscription that ends", () => {
  it.scoped("is opened again, and the instance resyncs: a change made meanwhile is not served stale", () =>
    Effect.gen(function* () {
      const control: Control = { subscribes: 0, refuse: 0, complete: false }
      const { lines, hub, a, b, turns, inL1 } = yield* world(control)
      control.refuse = 1
      yield* a.set("k", 1)
      yield* MultiInstance.settle([a], { hub })
      expect(yield* b.get("k")).toEqual(Option.some(1))
      expect(yield* inL1("k")).toBe(true)
      // b's stream dies; its first new subscription is refused, so b hears nothing for 100 ms.
      yield* hub.publishRaw(kill)
      yield* turns
      expect(control.subscribes).toBe(2)
      yield* a.set("k", 2)
      yield* MultiInstance.settle([a], { hub })
      yield* turns
      // Unheard: b's L1 still holds the old value (as while any bus is down).
      expect(yield* b.get("k")).toEqual(Option.some(1))
      yield* TestClock.adjust("99 millis")
      yield* turns
      expect(control.subscribes).toBe(2)
      yield* TestClock.adjust("1 millis")
      yield* turns
      expect(control.subscribes).toBe(3)
      // Live again: L1 cleared, the value read anew; later messages apply.
      expect(yield* inL1("k")).toBe(false)
      expect(yield* b.get("k")).toEqual(Option.some(2))
      yield* a.set("k", 3)
      yield* MultiInstance.settle([a], { hub })
      yield* turns
      expect(yield* b.get("k")).toEqual(Option.some(3))
      expect((yield* b.invalidationStats).resyncs).toBe(1)
      // a's subscription and b's new one; the dead one was closed.
      expect(yield* hub.subscribers).toBe(2)
      const errors = lines.filter((line) => line.startsWith("ERROR"))
      expect(errors).toHaveLength(1)
      expect(errors[0]).toMatch(
        /^ERROR tiercache: the bus subscription ended \(a defect\); subscribing again/
      )
      expect(errors[0]).toContain("the bus's stream died")
      const warnings = lines.filter((line) => line.startsWith("WARN"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toContain("could not subscribe to the bus again")
      expect(warnings[0]).toContain("refused by the test")
    })
  )

  it.scoped("a stream that keeps ending unheard is opened again less and less often, up to 30 s apart", () =>
    Effect.gen(function* () {
      const control: Control = { subscribes: 0, refuse: 0, complete: true }
      const { lines, turns } = yield* world(control)
      yield* turns
      expect(control.subscribes).toBe(1)
      yield* subscribesAfter(
        control,
        turns,
        [100, 200, 400, 800, 1600, 3200, 6400, 12800, 25600, 30000, 30000]
      )
      const ended = lines.filter((line) => line.includes("the bus subscription ended (its stream completed)"))
      expect(ended).toHaveLength(12)
    })
  )

  // README (Semantics, Bus): "after 100 ms, doubling up to 30 s while subscriptions end unheard
  // or are refused (each refusal logged at Warning level)".
  it.scoped(
    "subscriptions refused in a row are tried again 100 ms, 200 ms, 400 ms... apart, each refusal a warning",
    () =>
      Effect.gen(function* () {
        const control: Control = { subscribes: 0, refuse: 0, complete: false }
        const { lines, hub, a, b, turns } = yield* world(control)
        // b hears a message, so that its stream's death reopens it at once.
        yield* a.set("k", 1)
        yield* MultiInstance.settle([a], { hub })
        yield* turns
        control.refuse = 5
        yield* hub.publishRaw(kill)
        yield* turns
        // Opened again at once, and refused.
        expect(control.subscribes).toBe(2)
        yield* subscribesAfter(control, turns, [100, 200, 400, 800, 1600])
        // The fifth retry was taken: live again, and resynced once.
        expect(control.refuse).toBe(0)
        expect((yield* b.invalidationStats).resyncs).toBe(1)
        expect(yield* hub.subscribers).toBe(2)
        const warnings = lines.filter((line) => line.startsWith("WARN"))
        expect(warnings).toHaveLength(5)
        for (const warning of warnings) expect(warning).toContain("could not subscribe to the bus again")
      })
  )

  it.scoped("a subscription that heard messages before it ended is opened again at once", () =>
    Effect.gen(function* () {
      const control: Control = { subscribes: 0, refuse: 0, complete: false }
      const { hub, a, b, turns, inL1 } = yield* world(control)
      for (let round = 0; round < 3; round++) {
        // b hears a's Update (b's count of received messages cannot settle: the kills are never counted).
        yield* a.set("k", round)
        yield* MultiInstance.settle([a])
        yield* turns
        expect(yield* b.get("k")).toEqual(Option.some(round))
        expect(yield* inL1("k")).toBe(true)
        yield* hub.publishRaw(kill)
        yield* turns
        expect(control.subscribes).toBe(round + 2)
        expect(yield* inL1("k")).toBe(false)
      }
      expect((yield* b.invalidationStats).resyncs).toBe(3)
      expect(yield* hub.subscribers).toBe(2)
    })
  )

  it.scoped("closing the cache closes the subscription open then, without a word", () =>
    Effect.gen(function* () {
      const control: Control = { subscribes: 0, refuse: 0, complete: false }
      const hub = yield* TestBus.makeHub
      const lines: Array<string> = []
      const logger = Logger.make(({ logLevel, message }) => {
        lines.push(`${logLevel.label} ${String(message)}`)
      })
      const scope = yield* Scope.make()
      yield* TieredCache.make({ instanceId: "b" }).pipe(
        Effect.provideService(Tier.L1, yield* TestTier.make({ name: "l1" })),
        Effect.provideService(Tier.L2, yield* TestTier.make({ name: "l2" })),
        Effect.provideService(InvalidationBus.InvalidationBus, steeredBus(hub, control)),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
        Scope.extend(scope)
      )
      // The first subscription dies unheard; the second is open when the cache closes.
      yield* hub.publishRaw(kill)
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      yield* TestClock.adjust("100 millis")
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      expect(control.subscribes).toBe(2)
      expect(yield* hub.subscribers).toBe(1)
      const closing = yield* Effect.fork(Scope.close(scope, Exit.void))
      yield* Fiber.join(closing)
      expect(yield* hub.subscribers).toBe(0)
      yield* Effect.repeatN(Effect.yieldNow(), 50)
      expect(control.subscribes).toBe(2)
      expect(lines.filter((line) => line.includes("subscription ended"))).toHaveLength(1)
    })
  )
})
