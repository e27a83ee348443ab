/**
 * A typed computation whose value's encoded form does not decode with the same schema (a schema
 * that does not round-trip: a transformation whose encode gives what its decode refuses). The
 * value was stored anyway and answered as computed; every later call read it, failed to decode
 * it (a miss) and computed again: nothing was ever answered from the cache, silently. Such a
 * value is now refused as a value that does not encode is: a `CacheInputError`
 * (`UnencodableValue`) for every waiter, nothing stored; so is a typed `set` or `update` of one.
 */
import { describe, expect, it } from "@effect/vitest"
import type { TieredCache } from "@tiercache/core"
import { MultiInstance } from "@tiercache/testing"
import { Effect, Exit, Fiber, Option, ParseResult, Schema, TestClock } from "effect"
import { hubWorld } from "./hubWorld.js"

/**
 * A count stored as "n:<count>": decode takes only that form, but encode (the bug) writes the
 * bare number's text, which decode refuses. Counts of 100 and more are encoded right.
 */
const Count = Schema.transformOrFail(Schema.String, Schema.Number, {
  strict: true,
  decode: (s, _, ast) =>
    s.startsWith("n:")
      ? ParseResult.succeed(Number(s.slice(2)))
      : ParseResult.fail(new ParseResult.Type(ast, s, `not a count: ${s}`)),
  encode: (n) => ParseResult.succeed(n >= 100 ? `n:${n}` : String(n))
})

describe("a typed computation whose value does not round-trip through its schema", () => {
  it.scoped("fails with UnencodableValue naming it; nothing is stored, the next call computes again", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, hub } = yield* hubWorld
      let runs = 0
      const compute = Effect.sync(() => {
        runs++
        return 7
      })
      for (let call = 1; call <= 2; call++) {
        const error = yield* Effect.flip(cache.getOrComputeTyped("k", Count, compute))
        expect(error).toMatchObject({ _tag: "CacheInputError", problem: "UnencodableValue" })
        expect(error.message).toContain("does not decode with the schema")
        expect(error.message).toContain("not a count: 7")
        expect(runs).toBe(call)
      }
      expect(Option.isNone(yield* l1.get("k"))).toBe(true)
      expect((yield* l2.snapshot).size).toBe(0)
      expect(yield* hub.published).toEqual([])
      const stats = yield* cache.stats
      expect([stats.computations, stats.computeErrors, stats.decodeErrors]).toEqual([2, 2, 0])
      // A value that does round-trip is stored and answered from the cache after.
      const big = Effect.sync(() => {
        runs++
        return 123
      })
      expect(yield* cache.getOrComputeTyped("big", Count, big)).toBe(123)
      expect(yield* cache.getOrComputeTyped("big", Count, big)).toBe(123)
      expect(runs).toBe(3)
      // The lower tiers are written after the answer.
      yield* MultiInstance.settle([cache], { hub })
      expect(Option.map(yield* l2.get("big"), (e) => e.value)).toEqual(Option.some("n:123"))
    })
  )

  it.scoped("every caller of the computation gets the error; it ran once", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* hubWorld
      let runs = 0
      const compute = Effect.zipRight(
        TestClock.sleep(10),
        Effect.sync(() => {
          runs++
          return 7
        })
      )
      const fibers = yield* Effect.forEach(Array.from({ length: 20 }), () =>
        Effect.fork(cache.getOrComputeTyped("k", Count, compute))
      )
      yield* TestClock.adjust(10)
      for (const fiber of fibers) {
        const exit = yield* Fiber.await(fiber)
        expect(exit).toMatchObject({ _tag: "Failure" })
        expect(Exit.isFailure(exit) && String(exit.cause)).toContain("UnencodableValue")
      }
      expect(runs).toBe(1)
      expect((yield* l2.snapshot).size).toBe(0)
    })
  )

  it.scoped("two instances: neither stores it, so neither serves the other an unreadable value", () =>
    Effect.gen(function* () {
      const { caches, l2 } = yield* MultiInstance.make(2)
      const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
      const error = yield* Effect.flip(a.getOrComputeTyped("k", Count, Effect.succeed(7)))
      expect(error).toMatchObject({ _tag: "CacheInputError", problem: "UnencodableValue" })
      expect((yield* l2!.snapshot).size).toBe(0)
      // An untyped computation of the key on the other instance is unaffected.
      expect(yield* b.getOrCompute("k", Effect.succeed("plain"))).toBe("plain")
      expect(yield* a.get("k")).toEqual(Option.some("plain"))
    })
  )

  // README (Typed reads): its callers get the error "as for a failed computation"; a failed
  // computation with a stale value answers that value (fail-safe), this one does not: the
  // error is the program's (its schema), not the source's, and a stale answer would hide it.
  it.scoped("with a stale value (no stale-while-revalidate), the callers still get the error", () =>
    Effect.gen(function* () {
      const { caches } = yield* MultiInstance.make(1, { cache: { staleWhileRevalidate: false } })
      const cache = caches[0]!
      yield* cache.set("k", 150, { schema: Count, ttl: "1 second", grace: "1 hour" })
      yield* TestClock.adjust("2 seconds")
      const error = yield* Effect.flip(cache.getOrComputeTyped("k", Count, Effect.succeed(7)))
      expect(error).toMatchObject({ _tag: "CacheInputError", problem: "UnencodableValue" })
      // A computation that fails is answered the stale value.
      expect(yield* cache.getOrComputeTyped("k", Count, Effect.fail("source down"))).toBe(150)
      expect((yield* cache.stats).failSafeHits).toBe(1)
    })
  )

  it.scoped("a typed set or update of such a value is refused the same way, before anything is written", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, hub } = yield* hubWorld
      for (const write of [cache.set("k", 7, { schema: Count }), cache.update("k", 7, { schema: Count })]) {
        const error = yield* Effect.flip(write)
        expect(error).toMatchObject({ _tag: "CacheInputError", problem: "UnencodableValue" })
        expect(error.message).toContain("not a count: 7")
      }
      expect(Option.isNone(yield* l1.get("k"))).toBe(true)
      expect((yield* l2.snapshot).size).toBe(0)
      expect(yield* hub.published).toEqual([])
      // One that round-trips is stored, and read back typed without a decode error.
      yield* cache.set("big", 123, { schema: Count })
      yield* cache.update("bigger", 456, { schema: Count })
      expect(yield* cache.getTyped("big", Count)).toEqual(Option.some(123))
      expect(yield* cache.getTyped("bigger", Count)).toEqual(Option.some(456))
      expect(yield* cache.get("big")).toEqual(Option.some("n:123"))
      expect((yield* cache.stats).decodeErrors).toBe(0)
    })
  )
})
