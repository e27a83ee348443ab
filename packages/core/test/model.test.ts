/**
 * Model check: random sequences of get, set, getOrCompute, invalidate, reads racing an
 * invalidation of their key on one instance, concurrent stampedes (untyped callers, or untyped
 * and typed callers mixed) and
 * clock steps against two or three instances sharing an L2 and a bus, every read checked
 * against a plain map of the last write. A write or invalidation counts as complete once its
 * bus messages have been delivered (the test waits for that after each one).
 */
import { describe, expect, it } from "@effect/vitest"
import type { TieredCache } from "@tiercache/core"
import { MultiInstance } from "@tiercache/testing"
import { Effect, Equal, Option, Schema, TestClock, TestContext } from "effect"
import fc from "fast-check"

type Cmd =
  | { readonly op: "get"; readonly i: number; readonly k: number }
  | { readonly op: "set"; readonly i: number; readonly k: number; readonly v: number; readonly ttl: number }
  | {
      readonly op: "compute"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
    }
  | {
      readonly op: "stampede"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly n: number
      /** Every other caller reads with Schema.Number (the flight is one, whoever leads it). */
      readonly mixed: boolean
    }
  | { readonly op: "invalidate"; readonly i: number; readonly k: number }
  | { readonly op: "readDuringInvalidate"; readonly i: number; readonly k: number; readonly r: number }
  | { readonly op: "invalidateTag"; readonly i: number; readonly g: number }
  | { readonly op: "advance"; readonly ms: number }

const cmd = (instances: number): fc.Arbitrary<Cmd> => {
  const i = fc.integer({ min: 0, max: instances - 1 })
  const k = fc.integer({ min: 0, max: 4 })
  const v = fc.integer({ min: 0, max: 1_000_000 })
  const ttl = fc.integer({ min: 1, max: 3000 })
  return fc.oneof(
    fc.record({ op: fc.constant("get" as const), i, k }),
    fc.record({ op: fc.constant("set" as const), i, k, v, ttl }),
    fc.record({ op: fc.constant("compute" as const), i, k, v, ttl }),
    fc.record({
      op: fc.constant("stampede" as const),
      i,
      k,
      v,
      n: fc.integer({ min: 2, max: 20 }),
      mixed: fc.boolean()
    }),
    fc.record({ op: fc.constant("invalidate" as const), i, k }),
    fc.record({ op: fc.constant("readDuringInvalidate" as const), i, k, r: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ op: fc.constant("invalidateTag" as const), i, g: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 2000 }) })
  )
}

const STAMPEDE_TTL = 1000

const run = (instances: number, cmds: ReadonlyArray<Cmd>) =>
  Effect.gen(function* () {
    const { caches, hub } = yield* MultiInstance.make(instances)
    // Every key k carries the tag g(k % 2); an entry is valid while fresh and created after its
    // tag's last invalidation (computed entries are dated from the computation's start).
    const model = new Map<
      string,
      { readonly value: number; readonly expiresAt: number; readonly createdAt: number }
    >()
    const tagTimes = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]
    const tagOf = (k: number) => `g${k % 2}`
    const reads = caches.map(() => 0)
    const computations = caches.map(() => 0)
    let now = 0
    const settle = MultiInstance.settle(caches, { hub })
    const fresh = (k: number) => {
      const m = model.get(`k${k}`)
      return m !== undefined && now < m.expiresAt && m.createdAt > tagTimes[k % 2]! ? m : undefined
    }
    const computeOn = (i: number, v: number) =>
      Effect.sync(() => {
        computations[i]!++
        return v
      })

    for (const c of cmds) {
      if (c.op === "advance") {
        yield* TestClock.adjust(c.ms)
        now += c.ms
        continue
      }
      const cache: TieredCache.TieredCache.Service = caches[c.i]!
      if (c.op === "invalidateTag") {
        yield* cache.invalidateTag(`g${c.g}`)
        tagTimes[c.g] = now
        yield* settle
        continue
      }
      const key = `k${c.k}`
      const tags = [tagOf(c.k)]
      const expected = fresh(c.k)
      switch (c.op) {
        case "get": {
          reads[c.i]!++
          const got = yield* cache.get(key)
          expect([c, got]).toEqual([c, expected === undefined ? Option.none() : Option.some(expected.value)])
          break
        }
        case "set":
          yield* cache.set(key, c.v, { ttl: c.ttl, tags })
          model.set(key, { value: c.v, expiresAt: now + c.ttl, createdAt: now })
          yield* settle
          break
        case "compute": {
          reads[c.i]!++
          const before = computations[c.i]!
          const got = yield* cache.getOrCompute(key, computeOn(c.i, c.v), { ttl: c.ttl, tags })
          if (expected !== undefined) {
            expect([c, got, computations[c.i]! - before]).toEqual([c, expected.value, 0])
          } else {
            expect([c, got, computations[c.i]! - before]).toEqual([c, c.v, 1])
            model.set(key, { value: c.v, expiresAt: now + c.ttl, createdAt: now })
          }
          yield* settle
          break
        }
        case "stampede": {
          reads[c.i]! += c.n
          const before = computations[c.i]!
          const options = { ttl: STAMPEDE_TTL, tags }
          const got = yield* Effect.all(
            Array.from({ length: c.n }, (_, j): Effect.Effect<unknown, unknown> => {
              const computation = computeOn(c.i, c.v).pipe(Effect.delay("1 millis"))
              return c.mixed && j % 2 === 1
                ? cache.getOrComputeTyped(key, Schema.Number, computation, options)
                : cache.getOrCompute(key, computation, options)
            }),
            { concurrency: "unbounded" }
          ).pipe(
            Effect.fork,
            Effect.tap(() => TestClock.adjust(1)),
            Effect.flatMap((f) => f.await),
            Effect.flatten
          )
          now += 1
          if (expected === undefined) {
            // Missing: exactly one computation (stored 1 ms later) for all the callers.
            expect([c, got.every((g) => g === c.v), computations[c.i]! - before]).toEqual([c, true, 1])
            model.set(key, { value: c.v, expiresAt: now + STAMPEDE_TTL, createdAt: now - 1 })
          } else {
            // The callers all read before the clock moved, while the value was fresh.
            expect([c, got.every((g) => g === expected.value), computations[c.i]! - before]).toEqual([
              c,
              true,
              0
            ])
          }
          yield* settle
          break
        }
        case "invalidate":
          yield* cache.invalidate(key)
          model.delete(key)
          yield* settle
          break
        case "readDuringInvalidate": {
          // A read and an invalidation of the same key on one instance at once: the read answers
          // the value before the invalidation or nothing; afterwards every read agrees with the
          // model (no tier kept the old value).
          reads[c.i]!++
          const read: Effect.Effect<Option.Option<unknown>, unknown> = c.r === 0
            ? cache.get(key)
            : c.r === 1
              ? Effect.map(cache.getMany([key]), (found) => found[0]!)
              : cache.getTyped(key, Schema.Number)
          const [got] = yield* Effect.all([read, cache.invalidate(key)], { concurrency: "unbounded" })
          const allowed = [Option.none(), ...(expected === undefined ? [] : [Option.some(expected.value)])]
          expect([c, allowed.some((a) => Option.getEquivalence(Equal.equals)(a, got))]).toEqual([c, true])
          model.delete(key)
          yield* settle
          break
        }
      }
    }
    for (let i = 0; i < caches.length; i++) {
      const s = yield* caches[i]!.stats
      // Every read counted exactly once, and the outcomes add up.
      expect(s.requests).toBe(reads[i])
      expect(s.l1Hits + s.l2Hits + s.coalesced + s.misses).toBe(s.requests)
      expect(s.computations).toBe(computations[i])
      expect(s.inFlight).toBe(0)
    }
  })

describe("model check", () => {
  it("random operations on 2 and 3 instances agree with a map of the last write", async () => {
    for (const instances of [2, 3]) {
      await fc.assert(
        fc.asyncProperty(fc.array(cmd(instances), { minLength: 1, maxLength: 60 }), (cmds) =>
          Effect.runPromise(run(instances, cmds).pipe(Effect.scoped, Effect.provide(TestContext.TestContext)))
        ),
        { numRuns: 100 }
      )
    }
  }, 120_000)
})
