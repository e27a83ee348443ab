/**
 * The tier suite's tests of computations (single flight, failures, interruption), typed reads
 * and statistics.
 *
 * @internal
 */
import { expect, type Vitest } from "@effect/vitest"
import { Entry, type TieredCache } from "@tiercache/core"
import { Deferred, Effect, Exit, Fiber, Option, Schema, TestClock } from "effect"
import { type Context, freshKey } from "./suiteContext.js"

const User = Schema.Struct({ id: Schema.Number, name: Schema.String, since: Schema.DateFromString })

/** Registers the computation, typed-read and statistics tests with `it`. */
export const registerComputeTests = <R>(
  it: Vitest.MethodsNonLive<R, boolean>,
  { instances, live }: Context<R>
): void => {
  it.scoped("1000 concurrent getOrCompute calls on one missing key compute once", () =>
    Effect.gen(function* () {
      const { caches } = yield* instances(1)
      const cache = caches[0]!
      const key = freshKey("stampede")
      let runs = 0
      const compute = Effect.sync(() => ++runs).pipe(Effect.delay("20 millis"), Effect.as("value"))
      const fiber = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 1000 }, () => cache.getOrCompute(key, compute)),
          { concurrency: "unbounded" }
        )
      )
      if (!live) yield* TestClock.adjust("20 millis")
      const results = yield* Fiber.join(fiber)
      expect(runs).toBe(1)
      expect(results.every((r) => r === "value")).toBe(true)
      const s = yield* cache.stats
      expect([s.misses, s.coalesced, s.computations, s.requests]).toEqual([1, 999, 1, 1000])
    })
  )

  it.scoped("a failing computation fails every waiter and is not cached", () =>
    Effect.gen(function* () {
      const { caches } = yield* instances(1)
      const cache = caches[0]!
      const key = freshKey("fail")
      let runs = 0
      const gate = yield* Deferred.make<void>()
      const failing = Effect.suspend(() => {
        runs++
        return Effect.zipRight(Deferred.await(gate), Effect.fail("boom" as const))
      })
      const fiber = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 10 }, () => Effect.exit(cache.getOrCompute(key, failing))),
          { concurrency: "unbounded" }
        )
      )
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      const exits = yield* Fiber.join(fiber)
      expect(exits.every((e) => Exit.isFailure(e) && JSON.stringify(e).includes("boom"))).toBe(true)
      expect(runs).toBe(1)
      expect(yield* cache.getOrCompute(key, Effect.succeed("ok"))).toBe("ok")
      const s = yield* cache.stats
      expect([s.computations, s.computeErrors, s.coalesced, s.misses]).toEqual([2, 1, 9, 2])
    })
  )

  it.scoped("interrupting the first caller does not interrupt the other waiters", () =>
    Effect.gen(function* () {
      const { caches } = yield* instances(1)
      const cache = caches[0]!
      const key = freshKey("interrupt")
      const gate = yield* Deferred.make<void>()
      let completed = 0
      const compute = Deferred.await(gate).pipe(
        Effect.zipRight(Effect.sync(() => ++completed)),
        Effect.as({ ok: true })
      )
      const first = yield* Effect.fork(cache.getOrCompute(key, compute))
      yield* Effect.yieldNow()
      const others = yield* Effect.fork(
        Effect.all(
          Array.from({ length: 5 }, () => cache.getOrCompute(key, compute)),
          { concurrency: "unbounded" }
        )
      )
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(first)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(others)).toEqual(Array.from({ length: 5 }, () => ({ ok: true })))
      expect(completed).toBe(1)
      // The computed value was stored although its first caller went away.
      expect(yield* cache.get(key)).toEqual(Option.some({ ok: true }))
    })
  )

  it.scoped(
    "getTyped and getOrComputeTyped decode with Schema; bad data is a miss, recomputed and overwritten",
    () =>
      Effect.gen(function* () {
        const { caches, l2, settle } = yield* instances(2)
        const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
        const key = freshKey("typed")
        const alice = { id: 1, name: "alice", since: new Date("2020-01-02T00:00:00.000Z") }
        const got = yield* a.getOrComputeTyped(key, User, Effect.succeed(alice), { ttl: "1 minute" })
        expect(got).toEqual(alice)
        yield* settle
        // Stored encoded: the date is a string in L2.
        const stored = yield* l2.get(key)
        expect(Option.map(stored, (e) => e.value)).toEqual(
          Option.some({ id: 1, name: "alice", since: "2020-01-02T00:00:00.000Z" })
        )
        const viaB = yield* b.getTyped(key, User)
        expect(viaB).toEqual(Option.some(alice))
        expect((yield* b.getTyped(key, User)).pipe(Option.map((u) => u.since instanceof Date))).toEqual(
          Option.some(true)
        )

        // Plant data of the wrong shape straight into L2.
        const bad = freshKey("typed-bad")
        const clockNow = yield* Effect.clockWith((c) => c.currentTimeMillis)
        yield* l2.set(bad, Entry.make({ value: { id: "not a number" }, now: clockNow, ttlMs: 60_000 }))
        expect(yield* b.getTyped(bad, User)).toEqual(Option.none())
        let runs = 0
        const fixed = yield* b.getOrComputeTyped(
          bad,
          User,
          Effect.sync(() => {
            runs++
            return alice
          }),
          { ttl: "1 minute" }
        )
        expect(fixed).toEqual(alice)
        expect(runs).toBe(1)
        yield* settle
        expect(Option.map(yield* l2.get(bad), (e) => (e.value as { name: string }).name)).toEqual(
          Option.some("alice")
        )
        expect(yield* a.getTyped(bad, User)).toEqual(Option.some(alice))
        const s = yield* b.stats
        expect(s.decodeErrors).toBe(2)
      })
  )

  it.scoped("stats are exact after a scripted sequence", () =>
    Effect.gen(function* () {
      const { caches, settle } = yield* instances(2)
      const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
      const k1 = freshKey("s1")
      const k2 = freshKey("s2")
      const k3 = freshKey("s3")
      yield* a.set(k1, 1) // a write: no request
      yield* settle
      yield* a.get(k1) // a: L1 hit
      yield* a.get(k1) // a: L1 hit
      yield* b.get(k1) // b: L2 hit + promotion
      yield* b.get(k1) // b: L1 hit
      yield* b.get(k2) // b: miss
      yield* b.getOrCompute(k2, Effect.succeed(2)) // b: miss + computation
      yield* settle
      yield* b.getOrCompute(k2, Effect.succeed(-1)) // b: L1 hit
      yield* a.getOrCompute(k2, Effect.succeed(-1)) // a: L2 hit + promotion
      const gate = yield* Deferred.make<void>()
      const slow = Deferred.await(gate).pipe(Effect.as(3))
      const fibers = yield* Effect.forEach([1, 2, 3], () => Effect.fork(a.getOrCompute(k3, slow)))
      yield* Effect.yieldNow()
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.forEach(fibers, Fiber.join) // a: 1 miss + computation, 2 coalesced
      yield* settle // the computation's lower-tier write and message are done
      yield* a.getMany([k1, k2, k3, freshKey("none")]) // a: 3 L1 hits, 1 miss
      const sa = yield* a.stats
      const sb = yield* b.stats
      expect({
        requests: sa.requests,
        l1Hits: sa.l1Hits,
        l2Hits: sa.l2Hits,
        coalesced: sa.coalesced,
        misses: sa.misses,
        promotions: sa.promotions,
        computations: sa.computations,
        inFlight: sa.inFlight
      }).toEqual({
        requests: 10,
        l1Hits: 5,
        l2Hits: 1,
        coalesced: 2,
        misses: 2,
        promotions: 1,
        computations: 1,
        inFlight: 0
      })
      expect({
        requests: sb.requests,
        l1Hits: sb.l1Hits,
        l2Hits: sb.l2Hits,
        coalesced: sb.coalesced,
        misses: sb.misses,
        promotions: sb.promotions,
        computations: sb.computations
      }).toEqual({
        requests: 5,
        l1Hits: 2,
        l2Hits: 1,
        coalesced: 0,
        misses: 2,
        promotions: 1,
        computations: 1
      })
      expect(sa.hitRate).toBeCloseTo(6 / 10)
      expect(sa.l1HitRate).toBeCloseTo(5 / 10)
    })
  )
}
