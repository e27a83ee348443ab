/**
 * getMany against get, on what only a batch can do: a caller's array that changes while the
 * tiers are read, and entries judged one after another while the clock moves.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { Clock, Effect, Fiber, Option, TestClock } from "effect"

/** A cache over a ChaosTier around a TestTier, the clock 10 s past the epoch. */
const setup = Effect.gen(function* () {
  yield* TestClock.adjust(10_000)
  const l2 = yield* TestTier.make()
  const chaos = yield* ChaosTier.wrap(l2)
  const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
  const cache = yield* TieredCache.make().pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, chaos)
  )
  const now = yield* Clock.currentTimeMillis
  return { cache, l1, l2, chaos, now }
})

/** Moves the TestClock `ms` milliseconds, one at a time, letting the other fibers run. */
const walk = (ms: number) =>
  Effect.forEach(Array.from({ length: ms }), () => Effect.zipRight(Effect.yieldNow(), TestClock.adjust(1)), {
    discard: true
  })

describe("getMany reads the keys it was given", () => {
  it.scoped("a key array changed by its caller while L2 is read: each value stays under its own key", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, chaos, now } = yield* setup
      yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000 }))
      yield* chaos.delay("getMany", "10 millis")
      // Plain JS reuses its buffers: the array is refilled once the call is under way.
      const keys = ["a", "x"]
      const fiber = yield* Effect.fork(cache.getMany(keys))
      yield* Effect.yieldNow()
      keys[0] = "b"
      yield* walk(10)
      expect(yield* Fiber.join(fiber)).toEqual([Option.some("A"), Option.none()])
      yield* chaos.heal
      // a's value is a's: nothing was stored under b.
      expect(yield* l1.get("b")).toEqual(Option.none())
      expect(yield* cache.get("b")).toEqual(Option.none())
      expect(yield* cache.get("a")).toEqual(Option.some("A"))
    })
  )
})
