import { describe, expect, it } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { Effect, Fiber, Option, TestClock } from "effect"
import { world } from "./outageWorld.js"

// While a change that missed L2 is kept for the replay, this instance's reads of L2 see it first
// (recovery.ts, the gate), so that an L2 that comes back with older data does not undo it. The
// gate answered the kept change without asking L2, so it also hid another instance's write of the
// key made after the change: this instance served its own older value (or a miss) until the
// replay, which leaves that later write in place (ifNewer.ts), and every other instance read it.

describe("a change kept for the replay", () => {
  it.scoped("lets another instance's later write of its key answer, by get and getMany", () =>
    Effect.gen(function* () {
      // No breaker: the moment L2 answers again, A's reads reach it.
      const w = yield* world({ breaker: false })
      yield* w.outage
      yield* w.a.cache.update("u", "from A", { ttl: "1 hour" })
      yield* w.a.cache.invalidate("i")
      expect((yield* w.a.cache.stats).pendingChanges).toBe(2)
      yield* w.l2.heal
      yield* TestClock.adjust("1 second")
      // B, connected, writes both keys afterwards; its Removes drop A's copies.
      yield* w.b.cache.set("u", "from B", { ttl: "1 hour" })
      yield* w.b.cache.set("i", "from B", { ttl: "1 hour" })
      yield* w.settle
      expect((yield* w.a.cache.stats).pendingChanges).toBe(2)
      expect(yield* w.a.cache.get("u")).toEqual(Option.some("from B"))
      yield* w.a.l1.remove(["u"])
      expect(yield* w.a.cache.getMany(["i", "u"])).toEqual([Option.some("from B"), Option.some("from B")])
      // The replay leaves B's writes in place: every instance agrees, before and after it.
      yield* w.recover
      expect(yield* w.stored("u")).toEqual(Option.some("from B"))
      expect(yield* w.stored("i")).toEqual(Option.some("from B"))
      for (const c of [w.a.cache, w.b.cache]) {
        expect(yield* c.get("u")).toEqual(Option.some("from B"))
        expect(yield* c.get("i")).toEqual(Option.some("from B"))
      }
    })
  )

  it.scoped("still answers itself over an entry created before it or at its very time", () =>
    Effect.gen(function* () {
      const w = yield* world({ breaker: false })
      const start = yield* TestClock.currentTimeMillis
      yield* w.store.plant("older", Entry.make({ value: "in L2", now: start - 1, ttlMs: 3_600_000 }))
      yield* w.outage
      yield* w.a.cache.update("older", "from A", { ttl: "1 hour" })
      yield* w.a.cache.update("same", "from A", { ttl: "1 hour" })
      yield* w.a.cache.invalidate("gone")
      yield* w.l2.heal
      // What L2 holds: an entry created before each change, or in the same millisecond.
      yield* w.store.plant("same", Entry.make({ value: "in L2", now: start, ttlMs: 3_600_000 }))
      yield* w.store.plant("gone", Entry.make({ value: "in L2", now: start, ttlMs: 3_600_000 }))
      yield* w.a.l1.remove(["older", "same"])
      expect(yield* w.a.cache.getMany(["older", "same", "gone"])).toEqual([
        Option.some("from A"),
        Option.some("from A"),
        Option.none()
      ])
      yield* w.a.l1.remove(["older", "same"])
      expect(yield* w.a.cache.get("older")).toEqual(Option.some("from A"))
      expect(yield* w.a.cache.get("same")).toEqual(Option.some("from A"))
      expect(yield* w.a.cache.get("gone")).toEqual(Option.none())
      // As the replay leaves them.
      yield* w.recover
      expect(yield* w.stored("older")).toEqual(Option.some("from A"))
      expect(yield* w.stored("same")).toEqual(Option.some("from A"))
      expect(yield* w.stored("gone")).toEqual(Option.none())
    })
  )

  it.scoped("under a kept pattern answers itself over a later entry: the pattern's replay removes that", () =>
    Effect.gen(function* () {
      const w = yield* world({ breaker: false })
      yield* w.outage
      yield* w.a.cache.invalidatePattern("p:*")
      yield* w.a.cache.update("p:1", "from A", { ttl: "1 hour" })
      yield* w.l2.heal
      yield* TestClock.adjust("1 second")
      const later = yield* TestClock.currentTimeMillis
      yield* w.store.plant("p:1", Entry.make({ value: "later", now: later, ttlMs: 3_600_000 }))
      yield* w.store.plant("p:2", Entry.make({ value: "later", now: later, ttlMs: 3_600_000 }))
      yield* w.a.l1.remove(["p:1"])
      expect(yield* w.a.cache.get("p:1")).toEqual(Option.some("from A"))
      expect(yield* w.a.cache.get("p:2")).toEqual(Option.none())
      yield* w.recover
      expect(yield* w.stored("p:1")).toEqual(Option.some("from A"))
      expect(yield* w.stored("p:2")).toEqual(Option.none())
    })
  )

  it.scoped("makes a read of its key wait for L2's answer: a failure or a timeout is a miss", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.outage
      yield* w.a.cache.update("k", "from A", { ttl: "1 hour" })
      yield* w.a.l1.remove(["k"])
      // L2 still failing: the read is told so, as any read of L2 is (counted, a miss).
      const errors = (yield* w.a.cache.stats).tierErrors.test ?? 0
      expect(yield* w.a.cache.get("k")).toEqual(Option.none())
      expect((yield* w.a.cache.stats).tierErrors.test).toBe(errors + 1)
      // L2 hung: the read waits out the breaker's timeout (1 s by default).
      yield* w.l2.heal
      yield* w.l2.delay("get", "1 hour")
      const read = yield* Effect.fork(w.a.cache.get("k"))
      yield* TestClock.adjust("999 millis")
      expect(read.unsafePoll()).toBe(null)
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(read)).toEqual(Option.none())
      // L2 answering again with its older data (none): the kept change answers.
      yield* w.l2.delay("get", 0)
      expect(yield* w.a.cache.get("k")).toEqual(Option.some("from A"))
    })
  )
})
