import { describe, expect, it } from "@effect/vitest"
import { CacheError, Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { type Duration, Effect, Exit, Fiber, Option, Ref, TestClock } from "effect"

// The guard's timeout over a tier that does not bound its own calls (no callTimeout), on the
// live clock, where it runs the call in one fiber beside a timer (internal/timeout.ts); the
// TestClock cases of resilience.test.ts cover the same guard on another clock.

/**
 * A cache over a TestTier whose `get` is `get(inner)` (`inner`: the TestTier's own), guarded
 * with a timeout of `timeout`.
 */
const build = (
  get: (inner: Tier.Tier.Service) => Tier.Tier.Service["get"],
  timeout: Duration.DurationInput
) =>
  Effect.gen(function* () {
    const inner = yield* TestTier.make({ name: "slow" })
    const l2: Tier.Tier.Service = { ...inner, get: get(inner) }
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const cache = yield* TieredCache.make({ breaker: { timeout } }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
    return { cache, inner }
  })

/** A read that never answers and notes when it is interrupted. */
const hung = (interrupted: Ref.Ref<number>) => () => () =>
  Effect.never.pipe(Effect.onInterrupt(() => Ref.update(interrupted, (n) => n + 1)))

describe("the tier timeout on the live clock", () => {
  it.live("a hung read is cut at the timeout, its call interrupted, and the computation answers", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const { cache } = yield* build(hung(interrupted), "50 millis")
      const start = Date.now()
      expect(yield* cache.getOrCompute("k", Effect.succeed("computed"))).toBe("computed")
      const elapsed = Date.now() - start
      expect(elapsed).toBeGreaterThanOrEqual(49)
      expect(elapsed).toBeLessThan(2000)
      expect(yield* Ref.get(interrupted)).toBe(1)
      expect((yield* cache.stats).tierErrors).toEqual({ slow: 1 })
    }).pipe(Effect.scoped)
  )

  it.live("a caller interrupted during the call interrupts it, and no timeout is counted afterwards", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const { cache } = yield* build(hung(interrupted), "100 millis")
      const reader = yield* Effect.fork(cache.get("k"))
      yield* Effect.sleep("20 millis")
      expect(Exit.isInterrupted(yield* Fiber.interrupt(reader))).toBe(true)
      expect(yield* Ref.get(interrupted)).toBe(1)
      yield* Effect.sleep("200 millis")
      expect((yield* cache.stats).tierErrors).toEqual({})
    }).pipe(Effect.scoped)
  )

  it.live("a read that answers in time answers its entry; a failing read is a recorded error", () =>
    Effect.gen(function* () {
      let fail = false
      const { cache, inner } = yield* build(
        (inner) => (key) =>
          fail
            ? Effect.fail(new CacheError.TierError({ tier: "slow", operation: "get", reason: "down" }))
            : Effect.zipRight(Effect.sleep("10 millis"), inner.get(key)),
        "500 millis"
      )
      yield* inner.set("k", Entry.make({ value: "v", now: Date.now(), ttlMs: 60_000 }))
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect((yield* cache.stats).tierErrors).toEqual({})
      fail = true
      expect(yield* cache.get("other")).toEqual(Option.none())
      expect((yield* cache.stats).tierErrors).toEqual({ slow: 1 })
    }).pipe(Effect.scoped)
  )

  it.scoped("under TestClock the timeout follows the TestClock", () =>
    Effect.gen(function* () {
      const interrupted = yield* Ref.make(0)
      const { cache } = yield* build(hung(interrupted), "50 millis")
      const reader = yield* Effect.fork(cache.get("k"))
      yield* Effect.yieldNow()
      yield* TestClock.adjust("49 millis")
      expect(reader.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(reader)).toEqual(Option.none())
      expect(yield* Ref.get(interrupted)).toBe(1)
    })
  )
})
