import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { type Duration, Effect, Fiber, Option, TestClock } from "effect"

// An L1 that is not a MemoryTier stores asynchronously: another instance's Update, received and
// being stored into it, may land after a change of its key that this instance made meanwhile
// (an invalidate, a set). Landing then, the older received value was served here over what the
// change left in every tier, until its TTL.

/** Two instances, a and b, on one L2 and one bus; b's L1 is a tier whose calls can be slowed. */
const pair = Effect.gen(function* () {
  const hub = yield* TestBus.makeHub
  const l2 = yield* TestTier.make()
  const instance = (id: string, l1: Tier.Tier.Service) =>
    TieredCache.make({ instanceId: id }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2),
      Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
    )
  const a = yield* instance("a", yield* MemoryTier.make({ maxEntries: 100 }))
  const bL1 = yield* ChaosTier.wrap(yield* TestTier.make({ name: "l1" }))
  const b = yield* instance("b", bL1)
  yield* TestClock.adjust(1000)
  return { hub, l2, a, b, bL1 }
})

/**
 * a updates "k" to "old"; b receives the Update and starts applying it to its L1, whose `slow`
 * calls (the read of the copy it holds, or the store) take `delay`; then b's L1 answers at once
 * again (a tier's latency varies from call to call).
 */
const updateBeingStored = (slow: "get" | "set", delay: Duration.DurationInput = "100 millis") =>
  Effect.gen(function* () {
    const world = yield* pair
    const { a, b, bL1 } = world
    yield* bL1.delay(slow, delay)
    yield* a.update("k", "old", { ttl: "1 hour" })
    while ((yield* b.invalidationStats).messagesReceived < 1) yield* Effect.yieldNow()
    for (let i = 0; i < 20; i++) yield* Effect.yieldNow()
    expect((yield* bL1.calls)[slow]).toBe(1)
    yield* bL1.delay(slow, 0)
    return world
  })

/** Runs `change` in a fiber, lets the slow store land (`after`), and waits for both. */
const meanwhile = <A, E>(change: Effect.Effect<A, E>, after: Duration.DurationInput = "200 millis") =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(change)
    yield* TestClock.adjust(after)
    return yield* Fiber.join(fiber)
  })

describe.each(["get", "set"] as const)("a received Update applied to an L1 whose %s is slow", (slow) => {
  it.scoped("does not land over an invalidate of its key made here meanwhile", () =>
    Effect.gen(function* () {
      const { hub, l2, a, b } = yield* updateBeingStored(slow)
      yield* meanwhile(b.invalidate("k"))
      yield* MultiInstance.settle([a, b], { hub })
      expect(yield* l2.get("k")).toEqual(Option.none())
      expect(yield* b.get("k")).toEqual(Option.none())
      expect(yield* a.get("k")).toEqual(Option.none())
    })
  )

  it.scoped("does not land over a set of its key made here meanwhile", () =>
    Effect.gen(function* () {
      const { hub, l2, a, b } = yield* updateBeingStored(slow)
      yield* meanwhile(b.set("k", "new", { ttl: "1 hour" }))
      yield* MultiInstance.settle([a, b], { hub })
      expect(Option.map(yield* l2.get("k"), (e) => e.value)).toEqual(Option.some("new"))
      expect(yield* b.get("k")).toEqual(Option.some("new"))
      expect(yield* a.get("k")).toEqual(Option.some("new"))
    })
  )

  it.scoped("is stored when nothing changed its key here", () =>
    Effect.gen(function* () {
      const { hub, a, b, bL1 } = yield* updateBeingStored(slow)
      yield* TestClock.adjust("200 millis")
      yield* MultiInstance.settle([a, b], { hub })
      expect((yield* b.invalidationStats).messagesApplied).toBe(1)
      expect(Option.map(yield* bL1.get("k"), (e) => e.value)).toEqual(Option.some("old"))
      expect(yield* b.get("k")).toEqual(Option.some("old"))
    })
  )
})

describe("a received Update stored into an L1 slower than an invalidation waits", () => {
  it.scoped("removes what it stored once it lands, after the invalidation ended", () =>
    Effect.gen(function* () {
      // The invalidation waits at most a second (the default bound, no tier bounding its calls).
      const { hub, a, b, bL1 } = yield* updateBeingStored("set", "5 seconds")
      const fiber = yield* Effect.fork(b.invalidate("k"))
      yield* TestClock.adjust("1500 millis")
      expect(fiber.unsafePoll()?._tag).toBe("Success")
      yield* TestClock.adjust("5 seconds")
      yield* MultiInstance.settle([a, b], { hub })
      expect(yield* bL1.get("k")).toEqual(Option.none())
      expect(yield* b.get("k")).toEqual(Option.none())
    })
  )
})
