/**
 * getMany's promotions of the entries a lower tier answered into the tiers above it: made at
 * once, so that a slow (or hung) tier above costs the batch one write's time (its timeout), as it
 * costs a `get` of one key, not one write's time per key found.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, Interruptions, TestTier } from "@tiercache/testing"
import { Clock, Effect, Fiber, Logger, LogLevel, Option, TestClock } from "effect"

/**
 * MemoryTier over a chaos L2 over L3, the clock 10 s past the epoch (on the TestClock; `live`:
 * as it is); `keys` planted in L3 only.
 */
const world = (keys: ReadonlyArray<string>, options: TieredCache.Options = {}, live = false) =>
  Effect.gen(function* () {
    if (!live) yield* TestClock.adjust(10_000)
    const now = yield* Clock.currentTimeMillis
    const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
    const l2 = yield* ChaosTier.wrap(yield* TestTier.make({ name: "l2" }))
    const l3 = yield* TestTier.make({ name: "l3" })
    for (const key of keys) yield* l3.plant(key, Entry.make({ value: key, now, ttlMs: 60_000 }))
    const cache = yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2),
      Effect.provideService(Tier.Tiers, [l3])
    )
    return { cache, l1, l2, l3, now }
  })

/** Whether `fiber` has ended once the other fibers had their turn. */
const ended = <A, E>(fiber: Fiber.RuntimeFiber<A, E>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 100; i++) yield* Effect.yieldNow()
    return Option.isSome(yield* Fiber.poll(fiber))
  })

const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)

describe("getMany's promotions into a hung tier above the one that answered", () => {
  it.scoped("cost the batch one timeout of that tier, as a get's promotion does", () =>
    Effect.gen(function* () {
      const { cache, l1, l2 } = yield* world(keys)
      // L2 answers its reads (misses) at once; its writes hang past the breaker's 1 s timeout.
      yield* l2.delay("set", "1 hour")
      const fiber = yield* Effect.forkDaemon(cache.getMany(keys))
      expect(yield* ended(fiber)).toBe(false)
      // Every promotion into L2 timed out together: the batch is answered.
      yield* TestClock.adjust(1_000)
      expect(yield* ended(fiber)).toBe(true)
      expect(yield* Fiber.join(fiber)).toEqual(keys.map((key) => Option.some(key)))
      // Each key promoted into L1 all the same, and counted as an L3 hit.
      for (const key of keys) expect(Option.map(yield* l1.get(key), (e) => e.value)).toEqual(Option.some(key))
      const stats = yield* cache.stats
      expect([stats.requests, stats.tierHits, stats.misses]).toEqual([20, [0, 20], 0])
      expect((yield* cache.getMany(keys)).every(Option.isSome)).toBe(true)
      expect((yield* cache.stats).l1Hits).toBe(20)
    })
  )

  it.scoped("with a breaker that opens late, not one timeout per key", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* world(keys, { breaker: { failureThreshold: 100 } })
      yield* l2.delay("set", "1 hour")
      const fiber = yield* Effect.forkDaemon(cache.getMany(keys))
      yield* TestClock.adjust(1_000)
      expect(yield* ended(fiber)).toBe(true)
      expect(yield* Fiber.join(fiber)).toEqual(keys.map((key) => Option.some(key)))
      // Each promotion's write was made, and each timed out.
      expect((yield* l2.calls).set).toBe(20)
      expect((yield* cache.stats).tierErrors).toEqual({ l2: 20 })
    })
  )

  // On the live clock (cheap timers; the TestClock wakes 1,024 sleepers slowly), with a 50 ms
  // tier timeout: what is checked is how many writes the hung tier was sent, not how long it took.
  it.scopedLive(
    "a batch larger than 1,024 keys: a hung tier above gets one slice of writes, then its breaker opens",
    () =>
      Effect.gen(function* () {
        const many = Array.from({ length: 1100 }, (_, i) => `m${i}`)
        const { cache, l2 } = yield* world(many, { breaker: { timeout: "50 millis" } }, true)
        yield* l2.delay("set", "1 hour")
        // Quiet: each of the 1,024 timeouts logs a warning.
        const answers = yield* cache.getMany(many).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
        expect(answers.every(Option.isSome)).toBe(true)
        // The first 1,024 writes timed out together and opened the breaker; the others were refused.
        expect((yield* l2.calls).set).toBe(1024)
        expect((yield* cache.stats).breakers).toEqual({ l2: "open", l3: "closed" })
      })
  )

  it.scoped("a healthy slow tier above: the batch waits one write's time, not one per key", () =>
    Effect.gen(function* () {
      const { cache, l2, now } = yield* world(keys)
      yield* l2.delay("set", "100 millis")
      const fiber = yield* Effect.forkDaemon(cache.getMany(keys))
      yield* TestClock.adjust(100)
      expect(yield* ended(fiber)).toBe(true)
      // Promoted into L2 with the entry's own lifetime (60 s from its creation, 100 ms ago).
      yield* l2.delay("set", 0)
      for (const key of keys) {
        const held = yield* l2.get(key)
        expect(Option.map(held, (e) => [e.value, e.expiresAt])).toEqual(Option.some([key, now + 60_000]))
      }
      expect((yield* cache.stats).promotions).toBe(20)
    })
  )

  it.scoped("a getMany whose promotions are under way, interrupted at any step, ends", () =>
    Effect.gen(function* () {
      const { cache, l1, l2 } = yield* world(["a", "b", "c"])
      // Found in L3 each run: promoted into L2 and L1 again.
      const read = () =>
        Effect.zipRight(
          Effect.all([l1.remove(["a", "b", "c"]), l2.remove(["a", "b", "c"])]),
          cache.getMany(["a", "b", "c"])
        )
      expect(yield* Interruptions.hungRuns(read)).toEqual([])
      expect(yield* read()).toEqual([Option.some("a"), Option.some("b"), Option.some("c")])
    })
  )
})
