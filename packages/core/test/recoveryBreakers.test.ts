import { describe, expect, it } from "@effect/vitest"
import { type CircuitBreaker, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosBus, ChaosTier, TestBus, TestTier } from "@tiercache/testing"
import { Duration, Effect, Option, TestClock } from "effect"

// Found by the model check's outages (model.ts): README, Semantics, "Changes made during an
// outage": the kept changes "are replayed to the lower tiers and the bus as soon as the
// connection reports ready (...the bus's reconnect), before the resync lets reads through to L2
// (...) the tier and bus breakers are then probed at once instead of waiting out their window".

/** Lets the replay and resync that a reconnection starts run to their end. */
const settle = Effect.forEach(Array.from({ length: 200 }), () => Effect.yieldNow(), { discard: true })

/** One instance over a TestTier L2 behind a ChaosTier (without writeIfNewer) and a ChaosBus. */
const withBus = Effect.gen(function* () {
  const store = yield* TestTier.make()
  const l2 = yield* ChaosTier.wrap(store)
  const bus = yield* ChaosBus.wrap(TestBus.make(yield* TestBus.makeHub))
  const cache = yield* TieredCache.make({ instanceId: "a" }).pipe(
    Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, l2),
    Effect.provideService(InvalidationBus.InvalidationBus, bus)
  )
  return { store, l2, bus, cache }
})

describe("recovery through breakers an outage opened", () => {
  it.scoped(
    "two changes kept while the outage opened L2's breaker are replayed at the bus's reconnect (L2 without writeIfNewer)",
    () =>
      Effect.gen(function* () {
        const { store, l2, bus, cache } = yield* withBus
        // Redis down: L2 and the bus fail; five failed calls open L2's breaker.
        yield* l2.fail("all")
        yield* bus.failPublish(true)
        yield* cache.update("x", 1, { ttl: "1 hour" })
        yield* cache.update("y", 2, { ttl: "1 hour" })
        for (let i = 0; i < 3; i++) yield* cache.get(`other${i}`)
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
        expect((yield* cache.stats).pendingChanges).toBe(2)
        // Redis back: the bus reports its reconnection.
        yield* l2.heal
        yield* bus.heal
        yield* bus.disconnect
        yield* settle
        expect((yield* cache.invalidationStats).resyncs).toBe(1)
        // The replay's read-compare-write (ifNewer.ts's fallback) reads both keys at once through
        // the breaker: one read probes, the other is refused while it does, and the refusal
        // interrupts the probe, so the replay fails and the breaker stays open. Nothing but
        // another call of this instance closes it: each retry fails the same way.
        expect(yield* store.get("x")).toEqual(Option.some(expect.objectContaining({ value: 1 })))
        expect(yield* store.get("y")).toEqual(Option.some(expect.objectContaining({ value: 2 })))
        expect((yield* cache.stats).pendingChanges).toBe(0)
      })
  )

  it.scoped(
    "changes kept while the outage opened the bus's breaker are replayed at the bus's reconnect (two messages or more)",
    () =>
      Effect.gen(function* () {
        const { store, l2, bus, cache } = yield* withBus
        // Two updates miss L2 and the bus; three invalidations miss the bus: five failed
        // publishes open the bus's breaker (L2's stays closed: two failures).
        yield* l2.fail("set", { times: 2 })
        yield* bus.failPublish(true)
        yield* cache.update("x", 1, { ttl: "1 hour" })
        yield* cache.update("y", 2, { ttl: "1 hour" })
        for (let i = 0; i < 3; i++) yield* cache.invalidate(`other${i}`)
        expect((yield* cache.invalidationStats).breaker).toBe("open")
        expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
        expect((yield* cache.stats).pendingChanges).toBe(5)
        yield* bus.heal
        yield* bus.disconnect
        yield* settle
        expect((yield* cache.invalidationStats).resyncs).toBe(1)
        expect(Option.map(yield* store.get("x"), (e) => e.value)).toEqual(Option.some(1))
        // The replay sends its messages (an Update per update, a RemoveBulk of the removals) at
        // once through the bus's breaker: one probes, the others are refused while it does, so
        // the replay fails and the changes stay kept for the bus until the next retry (5 s
        // later), although the bus reported ready and L1 was cleared meanwhile.
        expect((yield* cache.stats).pendingChanges).toBe(0)
      })
  )

  it.scoped("the same changes are replayed by the retry interval at the latest", () =>
    Effect.gen(function* () {
      const store = yield* TestTier.make()
      const l2 = yield* ChaosTier.wrap(store)
      const cache = yield* TieredCache.make({ instanceId: "a" }).pipe(
        Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
        Effect.provideService(Tier.L2, l2)
      )
      yield* l2.fail("all")
      yield* cache.set("x", 1, { ttl: "1 hour" })
      yield* cache.set("y", 2, { ttl: "1 hour" })
      for (let i = 0; i < 3; i++) yield* cache.get(`other${i}`)
      expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      yield* l2.heal
      // Past the breaker's window (10 s) and two retry intervals (5 s).
      yield* TestClock.adjust("20 seconds")
      yield* settle
      expect((yield* cache.stats).pendingChanges).toBe(0)
      expect(Option.map(yield* store.get("x"), (e) => e.value)).toEqual(Option.some(1))
    })
  )
})

/**
 * While a clear or pattern invalidation is kept (the tier failed it), this instance answers the
 * keys it covers as misses without asking the tier (recovery.ts's gate): a tier that comes back
 * with older data cannot undo the clear before it is replayed. Such an answer is not a call of the
 * tier, and must not tell the tier's breaker that the tier answered.
 */
/**
 * A ChaosTier over a TestTier and a cache over it with `breaker`; with `bounded`, the tier
 * declares a callTimeout shorter than the breaker's timeout, so that the cache reads it directly
 * while the breaker is closed (tierAccess.ts `single`).
 */
const gated = (bounded: boolean, breaker: CircuitBreaker.Options) =>
  Effect.gen(function* () {
    const chaos = yield* ChaosTier.wrap(yield* TestTier.make())
    const l2: Tier.Tier.Service = bounded ? { ...chaos, callTimeout: Duration.millis(100) } : chaos
    const cache = yield* TieredCache.make({ breaker, recovery: { retryInterval: "1 hour" } }).pipe(
      Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
      Effect.provideService(Tier.L2, l2)
    )
    return { l2: chaos, cache }
  })

describe.each([false, true])(
  "a read answered by the kept clear, without the tier (direct reads %s)",
  (bounded) => {
    it.scoped("is not the breaker's probe: an open breaker stays open while the tier is down", () =>
      Effect.gen(function* () {
        const { l2, cache } = yield* gated(bounded, { failureThreshold: 2, openFor: "10 seconds" })
        yield* l2.fail("all")
        // The clear misses L2 (kept), and a write fails too: the breaker opens.
        yield* cache.clear
        yield* cache.set("a", 1)
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
        yield* TestClock.adjust("10 seconds")
        const callsBefore = (yield* l2.calls).get
        // Past the window: a read of a key the kept clear covers answers a miss...
        expect(yield* cache.get("b")).toEqual(Option.none())
        expect(yield* cache.getMany(["c", "d"])).toEqual([Option.none(), Option.none()])
        // ...without a call of the tier, so it proves nothing: the breaker is still open, and the
        // next call of the tier is the probe (it fails: open again).
        expect((yield* l2.calls).get).toBe(callsBefore)
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      })
    )

    it.scoped("does not reset the breaker's count of failures: a failing tier's breaker still opens", () =>
      Effect.gen(function* () {
        const { l2, cache } = yield* gated(bounded, { failureThreshold: 3, openFor: "10 seconds" })
        yield* l2.fail("all")
        yield* cache.clear
        // Writes fail, each followed by reads the kept clear answers: three failures in a row of
        // the tier (the clear's and two writes'), whatever the reads in between.
        for (const key of ["a", "b"]) {
          yield* cache.set(key, 1)
          expect(yield* cache.get(`${key}-read`)).toEqual(Option.none())
        }
        expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      })
    )
  }
)
