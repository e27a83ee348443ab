import { describe, expect, it } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { Effect, Either, Option, TestClock } from "effect"
import { capture } from "./keptReplay.js"
import { until, world } from "./outageWorld.js"

// Auto-recovery: changes that missed L2 or the bus are kept and replayed in order, guarded by
// creation times, once the connection is back (here: the bus reports a reconnection, or the
// retry interval passes).

describe("auto-recovery", () => {
  it.scoped("nothing is kept or replayed when every write reached L2 and the bus", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.a.cache.set("k1", 1)
      yield* w.a.cache.update("k2", 2)
      yield* w.a.cache.invalidate("k3")
      yield* w.a.cache.invalidateMany(["k4", "k5"])
      yield* w.a.cache.invalidatePattern("p:*")
      yield* w.a.cache.invalidateTag("t")
      yield* w.a.cache.clear
      expect((yield* w.a.cache.stats).pendingChanges).toBe(0)
      const calls = yield* w.l2.calls
      const published = (yield* w.hub.published).length
      yield* w.a.bus.disconnect
      yield* TestClock.adjust("1 minute")
      yield* w.settle
      expect((yield* w.a.cache.stats).replayedChanges).toBe(0)
      expect(yield* w.l2.calls).toEqual(calls)
      expect((yield* w.hub.published).length).toBe(published)
    })
  )

  it.scoped(
    "an invalidation and an update made during an outage are replayed, and not undone meanwhile",
    () =>
      Effect.gen(function* () {
        // No breaker: the moment L2 answers again, A's reads reach it.
        const w = yield* world({ breaker: false })
        yield* w.a.cache.set("u", "old", { ttl: "1 hour" })
        yield* w.a.cache.set("i", "old", { ttl: "1 hour" })
        yield* w.settle
        expect(yield* w.b.cache.get("u")).toEqual(Option.some("old"))
        expect(yield* w.b.cache.get("i")).toEqual(Option.some("old"))
        yield* w.outage
        yield* w.a.cache.update("u", "new", { ttl: "1 hour" })
        yield* w.a.cache.invalidate("i")
        expect((yield* w.a.cache.stats).pendingChanges).toBe(2)
        // L2 answers again with its old data, nothing replayed yet: A still sees its changes.
        yield* w.l2.heal
        expect(yield* w.a.cache.get("i")).toEqual(Option.none())
        expect(yield* w.a.cache.getMany(["i", "u"])).toEqual([Option.none(), Option.some("new")])
        yield* w.recover
        expect(yield* w.stored("u")).toEqual(Option.some("new"))
        expect(yield* w.stored("i")).toEqual(Option.none())
        for (const c of [w.a.cache, w.b.cache]) {
          expect(yield* c.get("u")).toEqual(Option.some("new"))
          expect(yield* c.get("i")).toEqual(Option.none())
        }
        const s = yield* w.a.cache.stats
        expect([s.pendingChanges, s.replayedChanges]).toEqual([0, 2])
      })
  )

  it.scoped("the last change of a key wins, and changes replay in the order they were made", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.a.cache.set("p:3", "before", { ttl: "1 hour" })
      yield* w.outage
      yield* w.a.cache.update("k", "v1", { ttl: "1 hour" })
      yield* w.a.cache.update("k", "v2", { ttl: "1 hour" })
      yield* w.a.cache.invalidate("k")
      yield* w.a.cache.update("k", "v3", { ttl: "1 hour" })
      yield* w.a.cache.update("p:1", "x", { ttl: "1 hour" })
      yield* w.a.cache.invalidatePattern("p:*")
      yield* w.a.cache.update("p:2", "y", { ttl: "1 hour" })
      // k (last: v3), the pattern (p:1 folded into it), p:2 after it.
      expect((yield* w.a.cache.stats).pendingChanges).toBe(3)
      const before = yield* w.store.calls
      yield* w.recover
      const after = yield* w.store.calls
      expect(yield* w.stored("k")).toEqual(Option.some("v3"))
      expect(yield* w.stored("p:1")).toEqual(Option.none())
      expect(yield* w.stored("p:2")).toEqual(Option.some("y"))
      expect(yield* w.stored("p:3")).toEqual(Option.none())
      expect([after.set - before.set, after.removeMatching - before.removeMatching]).toEqual([2, 1])
      expect(yield* w.b.cache.get("p:2")).toEqual(Option.some("y"))
      expect(yield* w.b.cache.get("k")).toEqual(Option.some("v3"))
    })
  )

  it.scoped("a tag invalidated in an outage stays invalidated after a pattern that matches its record", () =>
    Effect.gen(function* () {
      const w = yield* world()
      // "dashboard" depends on user 1 through its tag; its key does not name the user.
      yield* w.a.cache.set("dashboard", "old", { ttl: "1 hour", tags: ["user:1"] })
      yield* w.a.cache.set("profile:user:1", "old", { ttl: "1 hour" })
      yield* TestClock.adjust(1)
      yield* w.outage
      // No lower tier took the tag's time: it fails (README, auto-recovery), and is kept.
      const tagged = yield* Effect.either(w.a.cache.invalidateTag("user:1"))
      expect(Either.isLeft(tagged) && tagged.left._tag).toBe("CacheWriteError")
      // Matches the tag's record (__tiercache:tag:user:1), which patterns leave in every tier.
      yield* Effect.either(w.a.cache.invalidatePattern("*user:1*"))
      expect((yield* w.a.cache.stats).pendingChanges).toBe(2)
      yield* w.recover
      expect(Option.isSome(yield* w.store.get("__tiercache:tag:user:1"))).toBe(true)
      expect(yield* w.stored("profile:user:1")).toEqual(Option.none())
      for (const cache of [w.a.cache, w.b.cache]) {
        expect(yield* cache.get("dashboard")).toEqual(Option.none())
        expect(yield* cache.get("profile:user:1")).toEqual(Option.none())
      }
    })
  )

  it.scoped(
    "a replayed Update is dated from its write: a newer value, or a tag invalidated since, wins",
    () =>
      Effect.gen(function* () {
        const w = yield* world()
        // a's updates reach L2 but not the bus: kept for the bus only.
        yield* w.a.bus.failPublish(true)
        yield* w.a.cache.update("k", "from a (older)", { ttl: "1 hour" })
        yield* w.a.cache.update("tagged", "old", { ttl: "1 hour", tags: ["t"] })
        expect((yield* w.a.cache.stats).pendingChanges).toBe(2)
        yield* TestClock.adjust("1 second")
        // b then writes k, and invalidates the tag.
        yield* w.b.cache.update("k", "from b (newer)", { ttl: "1 hour" })
        yield* w.b.cache.invalidateTag("t")
        yield* w.settle
        // b's own copy of k goes (an eviction): only L2 knows the newer value.
        yield* w.b.l1.remove(["k"])
        // a's bus comes back: a replays its kept Updates, which reach b after b's own changes.
        yield* w.a.bus.heal
        yield* w.a.bus.disconnect
        yield* until(Effect.map(w.a.cache.stats, (s) => s.pendingChanges === 0))
        yield* w.settle
        expect(yield* w.stored("k")).toEqual(Option.some("from b (newer)"))
        expect(yield* w.b.cache.get("k")).toEqual(Option.some("from b (newer)"))
        expect(yield* w.b.cache.get("tagged")).toEqual(Option.none())
      })
  )

  it.scoped("past maxChanges one clear replaces the record; the retry interval replays it", () =>
    Effect.gen(function* () {
      const w = yield* world({ recovery: { maxChanges: 3, retryInterval: "2 seconds" } })
      yield* w.a.cache.set("x", "kept in L2", { ttl: "1 hour" })
      yield* w.settle
      expect(yield* w.b.cache.get("x")).toEqual(Option.some("kept in L2"))
      yield* w.outage
      for (let i = 0; i < 3; i++) yield* w.a.cache.invalidate(`k${i}`)
      expect((yield* w.a.cache.stats).pendingChanges).toBe(3)
      yield* w.a.cache.invalidate("k3")
      const s = yield* w.a.cache.stats
      expect([s.pendingChanges, s.recoveryClears]).toEqual([1, 1])
      // Until replayed, A sees the clear: what L2 holds and A's L1 does not is a miss for A.
      yield* w.l2.heal
      yield* w.a.bus.heal
      yield* w.store.plant("y", Entry.make({ value: "in L2", now: 0, ttlMs: 3_600_000 }))
      expect(yield* w.a.cache.get("y")).toEqual(Option.none())
      // No ready signal: the retry interval (past the breaker's window) replays it.
      yield* TestClock.adjust("12 seconds")
      yield* until(Effect.map(w.a.cache.stats, (st) => st.pendingChanges === 0))
      yield* w.settle
      expect(yield* w.stored("x")).toEqual(Option.none())
      expect(yield* w.b.cache.get("x")).toEqual(Option.none())
    })
  )

  // README (auto-recovery): past maxChanges "one clear of the namespace replaces them all
  // (`stats.recoveryClears`, logged)"; the log line was not tested.
  it.scoped("a clear replacing the kept changes is logged as a warning, once each time", () =>
    Effect.gen(function* () {
      const log = capture()
      yield* Effect.gen(function* () {
        const w = yield* world({ recovery: { maxChanges: 2 } })
        yield* w.outage
        for (let i = 0; i < 6; i++) yield* w.a.cache.invalidate(`k${i}`)
        expect((yield* w.a.cache.stats).recoveryClears).toBe(2)
      }).pipe(Effect.provide(log.layer))
      const warned = log.lines.filter((line) => line.includes("too many changes kept during an outage"))
      expect(warned.map((line) => line.split(" ")[0])).toEqual(["WARN", "WARN"])
    })
  )

  it.scoped("a replayed change never replaces an entry another instance wrote to L2 after it", () =>
    Effect.gen(function* () {
      const w = yield* world({ breaker: false })
      yield* w.a.cache.set("k", "old", { ttl: "1 hour" })
      yield* w.a.cache.set("j", "old", { ttl: "1 hour" })
      yield* w.settle
      yield* w.b.cache.get("k")
      yield* w.outage
      yield* w.a.cache.update("k", "from A", { ttl: "1 hour" })
      yield* w.a.cache.invalidate("j")
      yield* TestClock.adjust("1 second")
      // Another instance, still connected, wrote both keys afterwards.
      const later = yield* TestClock.currentTimeMillis
      yield* w.store.plant("k", Entry.make({ value: "newer", now: later, ttlMs: 3_600_000 }))
      yield* w.store.plant("j", Entry.make({ value: "newer", now: later, ttlMs: 3_600_000 }))
      yield* w.recover
      expect(yield* w.stored("k")).toEqual(Option.some("newer"))
      expect(yield* w.stored("j")).toEqual(Option.some("newer"))
      // B was told to drop its copy (not given A's older value), and reads the newer one.
      expect(yield* w.b.cache.get("k")).toEqual(Option.some("newer"))
    })
  )

  it.scoped("a change that reached L2 but not the bus is published again, L2 untouched", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.a.cache.set("k", "old", { ttl: "1 hour" })
      yield* w.settle
      expect(yield* w.b.cache.get("k")).toEqual(Option.some("old"))
      yield* w.a.bus.failPublish(true)
      yield* w.a.cache.update("k", "new", { ttl: "1 hour" })
      expect((yield* w.a.cache.stats).pendingChanges).toBe(1)
      expect(yield* w.b.cache.get("k")).toEqual(Option.some("old"))
      const before = yield* w.store.calls
      yield* w.recover
      expect(yield* w.b.cache.get("k")).toEqual(Option.some("new"))
      expect((yield* w.store.calls).set).toBe(before.set)
    })
  )

  it.scoped("a change made while its key's older change is being replayed is not undone by it", () =>
    Effect.gen(function* () {
      const w = yield* world({ breaker: false })
      yield* w.outage
      yield* w.a.cache.update("k", "during the outage", { ttl: "1 hour" })
      yield* w.l2.heal
      yield* w.a.bus.heal
      // The replay's read of k (TestTier has no writeIfNewer) takes a second.
      yield* w.l2.delay("get", "1 second")
      yield* w.a.bus.disconnect
      yield* until(Effect.map(w.l2.calls, (c) => c.get > 0))
      yield* TestClock.adjust("10 millis")
      // Meanwhile the key is invalidated, everywhere, successfully.
      yield* w.a.cache.invalidate("k")
      expect(yield* w.stored("k")).toEqual(Option.none())
      yield* w.l2.delay("get", 0)
      yield* TestClock.adjust("1 second")
      yield* until(Effect.map(w.a.cache.stats, (s) => s.pendingChanges === 0))
      yield* w.settle
      expect(yield* w.stored("k")).toEqual(Option.none())
      expect(yield* w.a.cache.get("k")).toEqual(Option.none())
      expect(yield* w.b.cache.get("k")).toEqual(Option.none())
    })
  )

  it.scoped("a recovery bound that is not a positive integer is a CacheConfigError", () =>
    Effect.gen(function* () {
      for (const maxChanges of [0, -1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(world({ recovery: { maxChanges } }))
        expect(error._tag).toBe("CacheConfigError")
        expect((error as { option?: string }).option).toBe("recovery.maxChanges")
      }
      const error = yield* Effect.flip(world({ recovery: { retryInterval: "-1 second" } }))
      expect((error as { option?: string }).option).toBe("recovery.retryInterval")
    })
  )

  it.scoped("recovery: false keeps nothing", () =>
    Effect.gen(function* () {
      const w = yield* world({ recovery: false })
      yield* w.outage
      yield* w.a.cache.invalidate("k")
      expect((yield* w.a.cache.stats).pendingChanges).toBe(0)
    })
  )
})
