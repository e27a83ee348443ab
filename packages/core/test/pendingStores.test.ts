import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Fiber, Option, TestClock } from "effect"
import * as PendingStores from "../src/internal/pendingStores.js"

// The lower-tier writes of computed values under way (internal/pendingStores.ts), which an
// invalidation covering them waits for, at most the slowest tier's call.

const make = Effect.map(Effect.clock, (clock) => PendingStores.make(Duration.seconds(1), clock))

describe("PendingStores", () => {
  it.effect("a key has a store under way until the last of its stores finished, then none", () =>
    Effect.gen(function* () {
      const pending = yield* make
      const first = pending.begin("k", [])
      const second = pending.begin("k", [])
      expect(pending.has("k")).toBe(true)
      pending.finish(first)
      expect(pending.has("k")).toBe(true)
      pending.finish(second)
      // Nothing is kept for a key once its stores are done (no memory per key ever written).
      expect(pending.has("k")).toBe(false)
      expect(pending.has("other")).toBe(false)
    })
  )

  it.effect("an invalidation covering several stores waits for the last of them", () =>
    Effect.gen(function* () {
      const pending = yield* make
      const a = pending.begin("a", ["t"])
      const b = pending.begin("b", ["t"])
      const c = pending.begin("c", [])
      const settling = yield* Effect.fork(pending.settle((store) => store.tags.includes("t")))
      yield* Effect.yieldNow()
      expect([a.invalidated, b.invalidated, c.invalidated]).toEqual([true, true, false])
      pending.finish(a)
      yield* Effect.yieldNow()
      expect(Option.isNone(yield* Fiber.poll(settling))).toBe(true)
      pending.finish(b)
      yield* Fiber.join(settling)
    })
  )

  it.effect("an invalidation waits at most the bound for a store that never lands", () =>
    Effect.gen(function* () {
      const pending = yield* make
      pending.begin("a", [])
      const settling = yield* Effect.fork(pending.settle(() => true))
      yield* TestClock.adjust("999 millis")
      expect(Option.isNone(yield* Fiber.poll(settling))).toBe(true)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(settling)
    })
  )

  it("the bound is the longest call timeout of the tiers that have one, else the fallback", () => {
    const fallback = "1 second"
    expect(PendingStores.boundOf([], fallback)).toEqual(Duration.seconds(1))
    expect(PendingStores.boundOf([{}], fallback)).toEqual(Duration.seconds(1))
    const bounds = [{ callTimeout: Duration.millis(200) }, {}, { callTimeout: Duration.seconds(5) }]
    expect(PendingStores.boundOf(bounds, fallback)).toEqual(Duration.seconds(5))
    expect(PendingStores.boundOf(bounds.slice().reverse(), fallback)).toEqual(Duration.seconds(5))
    expect(PendingStores.boundOf([{ callTimeout: Duration.millis(200) }], fallback)).toEqual(
      Duration.millis(200)
    )
  })
})
