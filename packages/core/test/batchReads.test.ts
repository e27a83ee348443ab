/**
 * getMany against get, on what only a batch can do: a caller's array that changes while the
 * tiers are read, and entries judged one after another while the clock moves.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { Clock, Effect, Exit, Fiber, Option, TestClock } from "effect"

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

describe("getMany judges each entry at the time it decides, as get does", () => {
  it.scoped("an entry that expires while an earlier key's tags are read is a miss, not promoted", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, chaos, now } = yield* setup
      // a carries a tag this instance has not met: its time is read (a get of L2, 10 ms).
      yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000, tags: ["t"] }))
      // b is fresh for 5 ms, then stale for a minute.
      yield* l2.plant("b", Entry.make({ value: "B", now, ttlMs: 5, graceMs: 60_000 }))
      yield* chaos.delay("get", "10 millis")
      const fiber = yield* Effect.fork(cache.getMany(["a", "b"]))
      yield* walk(20)
      const answers = yield* Fiber.join(fiber)
      yield* chaos.heal
      // b expired at now + 5, before getMany decided on it: get says so, and so must getMany.
      expect(yield* cache.get("b")).toEqual(Option.none())
      expect(answers).toEqual([Option.some("A"), Option.none()])
      expect(yield* l1.get("b")).toEqual(Option.none())
      const stats = yield* cache.stats
      expect({ l2Hits: stats.l2Hits, promotions: stats.promotions }).toEqual({ l2Hits: 1, promotions: 1 })
    })
  )
})

/** What `read` answered within `timeouts` tier timeouts (1 s each on the TestClock), if it answered. */
const answered = (read: Effect.Effect<unknown, unknown>, timeouts = 1) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(read)
    yield* walk(5)
    for (let i = 0; i < timeouts; i++) {
      yield* TestClock.adjust(1000)
      yield* walk(5)
    }
    const done = yield* Fiber.poll(fiber)
    yield* Fiber.interrupt(fiber)
    return done
  })

describe("getMany reads the tags of a batch once, as its L1 entries' tags", () => {
  it.scoped(
    "entries whose tag cannot be read (a hung read) are misses within one tier timeout, as with get",
    () =>
      Effect.gen(function* () {
        const { cache, l1, l2, chaos, now } = yield* setup
        for (const key of ["a", "b", "c"]) {
          yield* l2.plant(key, Entry.make({ value: key, now, ttlMs: 60_000, tags: ["t"] }))
        }
        // The tag's time is read with a get, which hangs; the breaker's timeout (1 s) ends it.
        yield* chaos.delay("get", "1 minute")
        const none = Option.none()
        expect(yield* answered(cache.get("a"))).toEqual(Option.some(Exit.succeed(none)))
        expect(yield* answered(cache.getMany(["a", "b", "c"]))).toEqual(
          Option.some(Exit.succeed([none, none, none]))
        )
        expect(yield* l1.get("a")).toEqual(none)
      })
  )
})

describe("tags not met yet are read at once, not one after the other", () => {
  it.scoped(
    "several unknown tags whose reads hang: a miss within one tier timeout, for get and getMany",
    () =>
      Effect.gen(function* () {
        const { cache, l1, l2, chaos, now } = yield* setup
        // m carries three tags, in L2 (read with a get, which answers); n carries three others,
        // in L1; a, b and c one each, all different, in L1: only the tags' reads (a getMany of
        // L2 when several are read at once) hang.
        yield* l2.plant("m", Entry.make({ value: "m", now, ttlMs: 60_000, tags: ["t1", "t2", "t3"] }))
        yield* l1.set("n", Entry.make({ value: "n", now, ttlMs: 60_000, tags: ["t4", "t5", "t6"] }))
        for (const key of ["a", "b", "c"]) {
          yield* l1.set(key, Entry.make({ value: key, now, ttlMs: 60_000, tags: [`t${key}`] }))
        }
        yield* chaos.delay("getMany", "1 minute")
        const none = Option.none()
        expect(yield* answered(cache.get("m"))).toEqual(Option.some(Exit.succeed(none)))
        expect(yield* answered(cache.get("n"))).toEqual(Option.some(Exit.succeed(none)))
        // Two: the tags' read, then L2's read of the keys (a getMany too), as misses; one after
        // another, the tags alone would take three.
        expect(yield* answered(cache.getMany(["a", "b", "c"]), 2)).toEqual(
          Option.some(Exit.succeed([none, none, none]))
        )
        // Unknown, not taken as never invalidated: once the tier answers, the entries are used.
        yield* chaos.heal
        expect(yield* cache.getMany(["a", "b", "c"])).toEqual([
          Option.some("a"),
          Option.some("b"),
          Option.some("c")
        ])
      })
  )
})
