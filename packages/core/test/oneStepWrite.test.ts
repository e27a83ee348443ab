import { describe, expect, it } from "@effect/vitest"
import { CacheError, type Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Cause, Deferred, Duration, Effect, Exit, Fiber, Option, Tracer } from "effect"
import { FastPathTypeId } from "../src/internal/fastPath.js"

// A MemoryTier over one lower tier whose writes and the bus's messages share an ordered stream,
// both able to start at once (`setNow`, `removeNow`, `publishNow`: RedisTier and
// RedisInvalidationBus on one connection), get a set or update written, and an invalidate done,
// in one Effect step. It must behave as the Effect
// way does (orderedWrites.test.ts): the same order, the same counts, failures and breaker, the
// same changes kept for recovery, the key marked changing until both calls are answered.

/** How the lower tier's `setNow` behaves for its next calls. */
interface Control {
  /** Answer false (the write goes the Effect way). */
  decline: boolean
  /** Hold each started write's answer until `release`. */
  hold: boolean
  /** Fail the next writes with a TierError. */
  failures: number
  /** Throw from the next setNow. */
  throws: number
  /** Fail the next publishes with a BusError. */
  busFailures: number
  /** Call each `done` twice (a tier and a bus of someone else's, breaking their contract). */
  twice: boolean
  /** Hold setThen's writes (the Effect way, a computed value's) until this is done. */
  thenGate: Deferred.Deferred<void> | undefined
}

const world = (cacheOptions: TieredCache.Options = {}) =>
  Effect.gen(function* () {
    const log: Array<string> = []
    const control: Control = {
      decline: false,
      hold: false,
      failures: 0,
      throws: 0,
      busFailures: 0,
      twice: false,
      thenGate: undefined
    }
    const held: Array<() => void> = []
    const stream = { name: "one connection" }
    const store = yield* TestTier.make()
    const l2: Tier.Tier.Service = {
      ...store,
      callTimeout: Duration.millis(100),
      sequence: stream,
      setThen: <A>(key: string, entry: Entry.Entry, then: Effect.Effect<A>) =>
        Effect.gen(function* () {
          log.push(`setThen ${key}`)
          const value = yield* then
          if (control.thenGate !== undefined) yield* Deferred.await(control.thenGate)
          const written = yield* Effect.either(store.set(key, entry))
          return [written._tag === "Left" ? written.left : undefined, value] as const
        }),
      removeThen: <A>(keys: ReadonlyArray<string>, then: Effect.Effect<A>) =>
        Effect.gen(function* () {
          log.push(`removeThen ${keys.join(",")}`)
          const value = yield* then
          const removed = yield* Effect.either(store.remove(keys))
          return [removed._tag === "Left" ? removed.left : undefined, value] as const
        }),
      removeNow: (keys, done) => {
        if (control.decline) return false
        if (control.throws > 0) {
          control.throws--
          throw new Error("driver bug")
        }
        log.push(`removeNow ${keys.join(",")}`)
        const fail = control.failures > 0
        if (fail) control.failures--
        const answer = () => {
          if (fail)
            return done(new CacheError.TierError({ tier: "test", operation: "remove", reason: "refused" }))
          Effect.runSync(store.remove(keys))
          done(undefined)
          if (control.twice) done(undefined)
        }
        if (control.hold) held.push(answer)
        else void Promise.resolve().then(answer)
        return true
      },
      setNow: (key, entry, done) => {
        if (control.decline) return false
        if (control.throws > 0) {
          control.throws--
          throw new Error("driver bug")
        }
        log.push(`setNow ${key}`)
        const fail = control.failures > 0
        if (fail) control.failures--
        const answer = () => {
          if (fail)
            return done(new CacheError.TierError({ tier: "test", operation: "set", reason: "refused" }))
          Effect.runSync(store.set(key, entry))
          done(undefined)
          if (control.twice) done(undefined)
        }
        if (control.hold) held.push(answer)
        else void Promise.resolve().then(answer)
        return true
      }
    }
    const hub = yield* TestBus.makeHub
    const testBus = TestBus.make(hub)
    const bus: InvalidationBus.InvalidationBus.Service = {
      ...testBus,
      // Bounds its own publishes, as RedisInvalidationBus does: the bus breaker adds no timer.
      callTimeout: Duration.millis(100),
      sequence: stream,
      publish: (message) =>
        Effect.zipRight(
          Effect.sync(() => log.push(`publish ${message.type} ${"key" in message ? message.key : ""}`)),
          testBus.publish(message)
        ),
      publishNow: (message, done) => {
        log.push(`publishNow ${message.type} ${"key" in message ? message.key : ""}`)
        if (control.busFailures > 0) {
          control.busFailures--
          void Promise.resolve().then(() =>
            done(new CacheError.BusError({ operation: "publish", reason: "refused" }))
          )
          return
        }
        const send = () =>
          Effect.runPromise(testBus.publish(message)).then(() => {
            done(undefined)
            if (control.twice) done(undefined)
          })
        // Answered after the tier's (twice), when the tier answers twice.
        if (control.twice) setTimeout(send, 5)
        else void send()
      }
    }
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const cache = yield* TieredCache.make({ instanceId: "a", ...cacheOptions }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2),
      Effect.provideService(InvalidationBus.InvalidationBus, bus)
    )
    const release = () => {
      for (const answer of held.splice(0)) answer()
    }
    return { cache, log, store, control, held, release, l1 }
  })

const valueIn = (tier: Tier.Tier.Service, key: string) =>
  Effect.map(
    tier.get(key),
    Option.map((entry) => entry.value)
  )

const tierErrorCount = (stats: { readonly tierErrors: Readonly<Record<string, number>> }) =>
  Object.values(stats.tierErrors).reduce((a, b) => a + b, 0)

describe("a write in one step (setNow and publishNow on one ordered stream)", () => {
  it.scoped("set and update start the write, then the message, and answer once both are answered", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.cache.set("k", 1)
      yield* w.cache.update("u", 2)
      expect(w.log).toEqual(["setNow k", "publishNow Remove k", "setNow u", "publishNow Update u"])
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some(1))
      expect(yield* valueIn(w.store, "u")).toEqual(Option.some(2))
      expect(yield* w.cache.get("k")).toEqual(Option.some(1))
      expect((yield* w.cache.invalidationStats).messagesSent).toBe(2)
      const stats = yield* w.cache.stats
      expect([stats.pendingChanges, tierErrorCount(stats)]).toEqual([0, 0])
    })
  )

  it.scoped("the set answers only once the write and the message are both answered", () =>
    Effect.gen(function* () {
      const w = yield* world()
      w.control.hold = true
      const set = yield* Effect.fork(w.cache.set("k", 1))
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      expect(w.log).toEqual(["setNow k", "publishNow Remove k"])
      // L1 holds the value already; the write has not been answered.
      expect(yield* w.cache.get("k")).toEqual(Option.some(1))
      expect(Option.isNone(yield* Fiber.poll(set))).toBe(true)
      w.release()
      yield* Fiber.join(set)
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some(1))
    })
  )

  it.scoped("a write the tier cannot start at once goes the Effect way, once", () =>
    Effect.gen(function* () {
      const w = yield* world()
      w.control.decline = true
      yield* w.cache.set("k", 1)
      expect(w.log).toEqual(["setThen k", "publish Remove k"])
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some(1))
      expect((yield* w.cache.invalidationStats).messagesSent).toBe(1)
      // The key's mark is cleared once: a computation of it is stored again.
      yield* w.cache.invalidate("k")
      expect(yield* w.cache.getOrCompute("k", Effect.succeed(2))).toBe(2)
      while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
      expect(yield* w.cache.get("k")).toEqual(Option.some(2))
    })
  )

  it.scoped("a failed write is counted and kept for recovery; L1 answers the value written", () =>
    Effect.gen(function* () {
      const w = yield* world({ recovery: { retryInterval: "1 hour" } })
      w.control.failures = 1
      yield* w.cache.set("k", 1)
      expect(w.log).toEqual(["setNow k", "publishNow Remove k"])
      const stats = yield* w.cache.stats
      expect([tierErrorCount(stats), stats.pendingChanges]).toEqual([1, 1])
      expect(yield* w.cache.get("k")).toEqual(Option.some(1))
    })
  )

  it.scoped("a setNow that throws is a failed write: counted, kept, its message still sent", () =>
    Effect.gen(function* () {
      const w = yield* world({ recovery: { retryInterval: "1 hour" } })
      w.control.throws = 1
      yield* w.cache.set("k", 1)
      expect(w.log).toEqual(["publishNow Remove k"])
      const stats = yield* w.cache.stats
      expect([tierErrorCount(stats), stats.pendingChanges]).toEqual([1, 1])
      expect(yield* w.cache.get("k")).toEqual(Option.some(1))
    })
  )

  it.scoped("failed writes open the breaker: the next write is refused the Effect way", () =>
    Effect.gen(function* () {
      const w = yield* world({ breaker: { failureThreshold: 2, openFor: "1 hour" } })
      w.control.failures = 2
      yield* w.cache.set("k1", 1)
      yield* w.cache.set("k2", 2)
      w.log.length = 0
      yield* w.cache.set("k3", 3)
      // Not sent to the tier at all; the message still goes.
      expect(w.log).toEqual(["publish Remove k3"])
      const stats = yield* w.cache.stats
      expect([tierErrorCount(stats), stats.breakerRejections]).toEqual([2, 1])
    })
  )

  it.scoped("a failed publish is counted and kept for recovery", () =>
    Effect.gen(function* () {
      const w = yield* world({ recovery: { retryInterval: "1 hour" } })
      w.control.busFailures = 1
      yield* w.cache.set("k", 1)
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some(1))
      const bus = yield* w.cache.invalidationStats
      expect([bus.messagesSent, bus.publishFailures]).toEqual([0, 1])
      expect((yield* w.cache.stats).pendingChanges).toBe(1)
    })
  )

  it.scoped("a computation of the key that ends while the write is in flight is not stored over it", () =>
    Effect.gen(function* () {
      const w = yield* world()
      const gate = yield* Deferred.make<void>()
      const reader = yield* Effect.fork(
        w.cache.getOrCompute("k", Effect.as(Deferred.await(gate), "computed"))
      )
      while ((yield* w.cache.stats).inFlight === 0) yield* Effect.yieldNow()
      w.control.hold = true
      const set = yield* Effect.fork(w.cache.set("k", "written"))
      while (w.held.length === 0) yield* Effect.yieldNow()
      // The computation ends while the write is under way: its caller gets it, nothing keeps it.
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(reader)).toBe("computed")
      w.control.hold = false
      w.release()
      yield* Fiber.join(set)
      while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
      expect(yield* w.cache.get("k")).toEqual(Option.some("written"))
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some("written"))
    })
  )

  it.scoped("a write under a tracer goes the Effect way, with its spans", () =>
    Effect.gen(function* () {
      const w = yield* world()
      const names: Array<string> = []
      const tracer = Tracer.make({
        span: (name, parent, context, links, startTime, kind) => {
          names.push(name)
          return new (class {
            readonly _tag = "Span"
            readonly name = name
            readonly spanId = `${names.length}`
            readonly traceId = "t"
            readonly parent = parent
            readonly context = context
            readonly status = { _tag: "Started" as const, startTime }
            readonly attributes = new Map<string, unknown>()
            readonly links = links
            readonly sampled = true
            readonly kind = kind
            end() {}
            attribute() {}
            event() {}
            addLinks() {}
          })() as unknown as Tracer.Span
        },
        context: (f) => f()
      })
      yield* Effect.withTracer(w.cache.set("k", 1), tracer)
      expect(w.log).toEqual(["setThen k", "publish Remove k"])
      expect(names).toContain("tiercache.tier.set")
    })
  )

  it.scoped("a write of a key whose computed value is still being written below L1 lands after it", () =>
    Effect.gen(function* () {
      const w = yield* world()
      const gate = yield* Deferred.make<void>()
      w.control.thenGate = gate
      // The computed value is answered, and its lower write (the Effect way) is held.
      expect(yield* w.cache.getOrCompute("k", Effect.succeed("computed"))).toBe("computed")
      while (!w.log.includes("setThen k")) yield* Effect.yieldNow()
      const set = yield* Effect.fork(w.cache.set("k", "written"))
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(set)
      while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some("written"))
      expect(yield* w.cache.get("k")).toEqual(Option.some("written"))
    })
  )

  it.scoped(
    "a tier and a bus that answer twice are counted once: a later write of the key is not disturbed",
    () =>
      Effect.gen(function* () {
        const w = yield* world({ recovery: { retryInterval: "1 hour" } })
        w.control.twice = true
        yield* w.cache.set("k", 1)
        w.control.twice = false
        // Answered once both were: the message delivered, nothing kept for recovery.
        expect((yield* w.cache.stats).pendingChanges).toBe(0)
        // The key's change is over once: a computation that began after it stores its value.
        const gate = yield* Deferred.make<void>()
        const reader = yield* Effect.fork(
          w.cache.getOrCompute("j", Effect.as(Deferred.await(gate), "computed"))
        )
        w.control.hold = true
        const set = yield* Effect.fork(w.cache.set("j", "written"))
        while (w.held.length === 0) yield* Effect.yieldNow()
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(reader)
        w.control.hold = false
        w.release()
        yield* Fiber.join(set)
        expect(yield* w.cache.get("j")).toEqual(Option.some("written"))
        expect((yield* w.cache.invalidationStats).messagesSent).toBe(2)
        // And a computation of "k" now is stored.
        yield* w.cache.invalidate("k")
        expect(yield* w.cache.getOrCompute("k", Effect.succeed(2))).toBe(2)
        while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
        expect(yield* w.cache.get("k")).toEqual(Option.some(2))
      })
  )

  it.scoped(
    "an L1 store that throws is the set's defect: nothing sent, the key cached again afterwards",
    () =>
      Effect.gen(function* () {
        const w = yield* world()
        const fast = (w.l1 as unknown as Record<symbol, { store: (...args: Array<unknown>) => unknown }>)[
          FastPathTypeId
        ]!
        const store = fast.store
        fast.store = () => {
          throw new Error("L1 broken")
        }
        const exit = yield* Effect.exit(w.cache.set("k", 1))
        fast.store = store
        expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
        expect(w.log).toEqual([])
        expect(Option.isNone(yield* w.store.get("k"))).toBe(true)
        // Its mark was cleared: a computation of the key is stored.
        expect(yield* w.cache.getOrCompute("k", Effect.succeed(2))).toBe(2)
        while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
        expect(yield* w.cache.get("k")).toEqual(Option.some(2))
      })
  )
})

describe("an invalidate in one step (removeNow and publishNow on one ordered stream)", () => {
  it.scoped("invalidate starts the removal, then the message, and answers once both are answered", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.cache.set("k", 1)
      w.log.length = 0
      w.control.hold = true
      const removal = yield* Effect.fork(w.cache.invalidate("k"))
      yield* Effect.yieldNow()
      yield* Effect.yieldNow()
      expect(w.log).toEqual(["removeNow k", "publishNow Remove k"])
      // L1 has dropped the key already; the removal has not been answered.
      expect(yield* w.l1.get("k")).toEqual(Option.none())
      expect(Option.isNone(yield* Fiber.poll(removal))).toBe(true)
      w.release()
      yield* Fiber.join(removal)
      expect(yield* valueIn(w.store, "k")).toEqual(Option.none())
      expect((yield* w.cache.invalidationStats).messagesSent).toBe(2)
      const stats = yield* w.cache.stats
      expect([stats.pendingChanges, tierErrorCount(stats)]).toEqual([0, 0])
    })
  )

  it.scoped(
    "a removal the tier cannot start at once goes the Effect way, once; invalidateMany always does",
    () =>
      Effect.gen(function* () {
        const w = yield* world()
        yield* w.cache.set("k", 1)
        yield* w.cache.set("m", 2)
        w.log.length = 0
        w.control.decline = true
        yield* w.cache.invalidate("k")
        w.control.decline = false
        yield* w.cache.invalidateMany(["m"])
        expect(w.log).toEqual(["removeThen k", "publish Remove k", "removeThen m", "publish Remove m"])
        expect(yield* valueIn(w.store, "k")).toEqual(Option.none())
        expect(yield* valueIn(w.store, "m")).toEqual(Option.none())
        // The key's mark is cleared once: a computation of it is stored again.
        expect(yield* w.cache.getOrCompute("k", Effect.succeed(2))).toBe(2)
        while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
        expect(yield* w.cache.get("k")).toEqual(Option.some(2))
      })
  )

  it.scoped("a failed removal, or a removeNow that throws, is counted and kept; its message still sent", () =>
    Effect.gen(function* () {
      const w = yield* world({ recovery: { retryInterval: "1 hour" } })
      yield* w.cache.set("k", 1)
      yield* w.cache.set("j", 2)
      w.log.length = 0
      w.control.failures = 1
      yield* w.cache.invalidate("k")
      w.control.throws = 1
      yield* w.cache.invalidate("j")
      expect(w.log).toEqual(["removeNow k", "publishNow Remove k", "publishNow Remove j"])
      const stats = yield* w.cache.stats
      expect([tierErrorCount(stats), stats.pendingChanges]).toEqual([2, 2])
      // L1 answers the removals; the tier still holds the values until the replay.
      expect(yield* w.cache.get("k")).toEqual(Option.none())
      expect(yield* w.cache.get("j")).toEqual(Option.none())
      expect(yield* valueIn(w.store, "k")).toEqual(Option.some(1))
    })
  )

  it.scoped("a computation of the key that ends while the removal is in flight is not stored", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.cache.set("k", "old")
      const gate = yield* Deferred.make<void>()
      yield* w.cache.invalidate("k")
      const reader = yield* Effect.fork(
        w.cache.getOrCompute("k", Effect.as(Deferred.await(gate), "computed"))
      )
      while ((yield* w.cache.stats).inFlight === 0) yield* Effect.yieldNow()
      w.control.hold = true
      const removal = yield* Effect.fork(w.cache.invalidate("k"))
      while (w.held.length === 0) yield* Effect.yieldNow()
      // The computation ends while the removal is under way: its caller gets it, nothing keeps it.
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(reader)).toBe("computed")
      w.control.hold = false
      w.release()
      yield* Fiber.join(removal)
      while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
      expect(yield* w.cache.get("k")).toEqual(Option.none())
      expect(yield* valueIn(w.store, "k")).toEqual(Option.none())
    })
  )

  it.scoped("a caller after the invalidate does not join a computation of the key begun before it", () =>
    Effect.gen(function* () {
      const w = yield* world()
      const gate = yield* Deferred.make<void>()
      const before = yield* Effect.fork(w.cache.getOrCompute("k", Effect.as(Deferred.await(gate), "before")))
      while ((yield* w.cache.stats).inFlight === 0) yield* Effect.yieldNow()
      yield* w.cache.invalidate("k")
      expect(w.log).toEqual(["removeNow k", "publishNow Remove k"])
      expect(yield* w.cache.getOrCompute("k", Effect.succeed("after"))).toBe("after")
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(before)).toBe("before")
    })
  )

  it.scoped("an invalidate built once and run twice decides each run when it runs", () =>
    Effect.gen(function* () {
      const w = yield* world()
      const invalidate = w.cache.invalidate("k")
      yield* w.cache.set("k", 1)
      w.log.length = 0
      w.control.decline = true
      yield* invalidate
      w.control.decline = false
      yield* w.cache.set("k", 2)
      yield* invalidate
      expect(w.log).toEqual([
        "removeThen k",
        "publish Remove k",
        "setNow k",
        "publishNow Remove k",
        "removeNow k",
        "publishNow Remove k"
      ])
      expect(yield* w.cache.get("k")).toEqual(Option.none())
    })
  )
})
