import { describe, expect, it } from "@effect/vitest"
import { type Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Duration, Effect, Option, TestClock } from "effect"

// A lower tier and a bus that name the same ordered stream (`sequence`, as RedisTier and
// RedisInvalidationBus on one connection do) get a write and its bus message sent together:
// the message after the write was sent, before its reply. Everything else about a write stays
// as it is without the shared stream: failures, the breaker, the changes kept for recovery.

/** What the tier and the bus did, in order. */
type Log = Array<string>

const world = (options: { readonly busSequence?: unknown; readonly cache?: TieredCache.Options } = {}) =>
  Effect.gen(function* () {
    const log: Log = []
    /** The number of `setThen` calls still to die (a defect of the tier's own, e.g. a driver bug). */
    const dying = { calls: 0 }
    const stream = { name: "one connection" }
    const store = yield* TestTier.make()
    const l2: Tier.Tier.Service = {
      ...store,
      callTimeout: Duration.millis(100),
      set: (key, entry) =>
        Effect.zipRight(
          store.set(key, entry),
          Effect.sync(() => log.push(`set ${key}`))
        ),
      remove: (keys) =>
        Effect.zipRight(
          store.remove(keys),
          Effect.sync(() => log.push(`remove ${keys.join(",")}`))
        ),
      sequence: stream,
      removeThen: <A>(keys: ReadonlyArray<string>, then: Effect.Effect<A>) =>
        Effect.gen(function* () {
          log.push(`removing ${keys.join(",")}`)
          const value = yield* then
          const removed = yield* Effect.either(store.remove(keys))
          log.push(`removed ${keys.join(",")}`)
          return [removed._tag === "Left" ? removed.left : undefined, value] as const
        }),
      setThen: <A>(key: string, entry: Entry.Entry, then: Effect.Effect<A>) =>
        Effect.gen(function* () {
          if (dying.calls > 0) {
            dying.calls--
            return yield* Effect.dieMessage("driver bug")
          }
          log.push(`sent ${key}`)
          const value = yield* then
          const written = yield* Effect.either(store.set(key, entry))
          log.push(`replied ${key}`)
          return [written._tag === "Left" ? written.left : undefined, value] as const
        })
    }
    const hub = yield* TestBus.makeHub
    const testBus = TestBus.make(hub)
    const bus: InvalidationBus.InvalidationBus.Service = {
      ...testBus,
      sequence: "busSequence" in options ? options.busSequence : stream,
      publish: (message) =>
        Effect.zipRight(
          Effect.sync(() => log.push(`publish ${message.type} ${"key" in message ? message.key : ""}`)),
          testBus.publish(message)
        )
    }
    const cache = yield* TieredCache.make({ instanceId: "a", ...options.cache }).pipe(
      Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
      Effect.provideService(Tier.L2, l2),
      Effect.provideService(InvalidationBus.InvalidationBus, bus)
    )
    return { cache, log, store, hub, dying }
  })

/**
 * Sets k, m and n, clears the log, runs `before`, then invalidates k and invalidates m and n
 * together.
 */
const removeThree = (
  w: Effect.Effect.Success<ReturnType<typeof world>>,
  before: Effect.Effect<void> = Effect.void
) =>
  Effect.gen(function* () {
    yield* w.cache.set("k", 1)
    yield* w.cache.set("m", 2)
    yield* w.cache.set("n", 3)
    w.log.length = 0
    yield* before
    yield* w.cache.invalidate("k")
    yield* w.cache.invalidateMany(["m", "n"])
  })

/**
 * The log of removeThree's removals on the ordered stream: each message between its removal's
 * sending and its reply.
 */
const REMOVED_THREE = [
  "removing k",
  "publish Remove k",
  "removed k",
  "removing m,n",
  "publish RemoveBulk ",
  "removed m,n"
]

describe("a write and its bus message on one ordered stream", () => {
  it.scoped("set and update send the message after the write, without waiting for its reply", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.cache.set("k", 1)
      yield* w.cache.update("u", 2)
      expect(w.log).toEqual([
        "sent k",
        "publish Remove k",
        "replied k",
        "sent u",
        "publish Update u",
        "replied u"
      ])
      expect(Option.map(yield* w.store.get("k"), (e) => e.value)).toEqual(Option.some(1))
      const stats = yield* w.cache.invalidationStats
      expect(stats.messagesSent).toBe(2)
      expect((yield* w.cache.stats).pendingChanges).toBe(0)
    })
  )

  it.scoped("a bus on another stream waits for the write's reply, as without setThen", () =>
    Effect.gen(function* () {
      for (const busSequence of [undefined, { name: "another connection" }]) {
        const w = yield* world({ busSequence })
        yield* w.cache.set("k", 1)
        yield* w.cache.invalidate("k")
        expect(w.log).toEqual(["set k", "publish Remove k", "remove k", "publish Remove k"])
      }
    })
  )

  it.scoped(
    "invalidate and invalidateMany send their messages after the removal, without waiting for its reply",
    () =>
      Effect.gen(function* () {
        const w = yield* world()
        yield* removeThree(w)
        expect(w.log).toEqual(REMOVED_THREE)
        for (const key of ["k", "m", "n"]) {
          expect(yield* w.store.get(key)).toEqual(Option.none())
          expect(yield* w.cache.get(key)).toEqual(Option.none())
        }
        expect((yield* w.cache.invalidationStats).messagesSent).toBe(5)
        expect((yield* w.cache.stats).pendingChanges).toBe(0)
      })
  )

  it.scoped("a failed removal still sends its message once, and is kept and replayed", () =>
    Effect.gen(function* () {
      const w = yield* world({ cache: { recovery: { retryInterval: "100 millis" } } })
      yield* removeThree(w, w.store.failOn(["remove"]))
      expect(w.log).toEqual(REMOVED_THREE)
      const stats = yield* w.cache.stats
      expect(stats.pendingChanges).toBe(3)
      expect([...Object.values(stats.tierErrors)].reduce((a, b) => a + b, 0)).toBe(2)
      // L1 answers the removal; the tier still holds the values until the replay.
      expect(yield* w.cache.get("k")).toEqual(Option.none())
      expect(Option.isSome(yield* w.store.get("k"))).toBe(true)
      yield* w.store.failOn([])
      yield* TestClock.adjust("1 second")
      while ((yield* w.cache.stats).pendingChanges > 0) yield* TestClock.adjust("100 millis")
      for (const key of ["k", "m", "n"]) expect(yield* w.store.get(key)).toEqual(Option.none())
    })
  )

  it.scoped("a computed value is written and announced together, once", () =>
    Effect.gen(function* () {
      const w = yield* world()
      expect(yield* w.cache.getOrCompute("c", Effect.succeed(3))).toBe(3)
      // The lower write happens after the callers got their answer: wait for it.
      while ((yield* w.cache.stats).inFlight > 0) yield* Effect.yieldNow()
      expect(w.log).toEqual(["sent c", "publish Remove c", "replied c"])
    })
  )

  it.scoped("a failed write still sends its message once, and is kept for recovery", () =>
    Effect.gen(function* () {
      const w = yield* world()
      yield* w.store.failOn(["set"])
      yield* w.cache.set("k", 1)
      expect(w.log).toEqual(["sent k", "publish Remove k", "replied k"])
      const stats = yield* w.cache.stats
      expect(stats.pendingChanges).toBe(1)
      expect([...Object.values(stats.tierErrors)].reduce((a, b) => a + b, 0)).toBe(1)
      // L1 answers the value written.
      expect(yield* w.cache.get("k")).toEqual(Option.some(1))
    })
  )

  it.scoped("a write that dies in the tier counts against the breaker, as a failed one does", () =>
    Effect.gen(function* () {
      const w = yield* world({ cache: { breaker: { failureThreshold: 1, openFor: "1 hour" } } })
      w.dying.calls = 1
      // The tier's defect is its failure (tierDefects.ts): the write succeeds in L1, the failure
      // is counted, the message (which the tier died before sending) still goes, once...
      yield* w.cache.set("k1", 1)
      expect((yield* w.cache.stats).tierErrors).toEqual({ test: 1 })
      expect(w.log).toEqual(["publish Remove k1"])
      // ...and opened the breaker: the next write is not sent to the tier.
      w.log.length = 0
      yield* w.cache.set("k2", 2)
      expect(w.log).toEqual(["publish Remove k2"])
      expect((yield* w.cache.stats).breakerRejections).toBe(1)
    })
  )

  it.scoped("with the breaker open nothing is sent to the tier, and the message still goes once", () =>
    Effect.gen(function* () {
      const w = yield* world({ cache: { breaker: { failureThreshold: 1, openFor: "1 hour" } } })
      yield* w.store.failOn(["set"])
      yield* w.cache.set("k1", 1)
      w.log.length = 0
      yield* w.cache.set("k2", 2)
      expect(w.log).toEqual(["publish Remove k2"])
      expect((yield* w.cache.stats).breakerRejections).toBe(1)
      expect((yield* w.cache.invalidationStats).messagesSent).toBe(2)
    })
  )
})
