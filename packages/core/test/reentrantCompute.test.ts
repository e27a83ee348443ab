import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestTier } from "@tiercache/testing"
import { Deferred, Effect, Either, Fiber, Option } from "effect"

// A computation that calls getOrCompute of its own key (directly, through another key's
// computation, or in a fiber it forks) would wait for its own flight: the flight never ended,
// and every later caller of the key waited with it, until the cache closed.

type Cache = TieredCache.TieredCache.Service

const memoryCache = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
  const l2 = yield* TestTier.make()
  return yield* TieredCache.make().pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, l2)
  )
})

/** Runs `effect` in a fiber; fails the test when it has not ended after many yields (a hang). */
const endsWithoutTime = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(effect)
    for (let i = 0; i < 1000 && fiber.unsafePoll() === null; i++) yield* Effect.yieldNow()
    expect(fiber.unsafePoll(), "ended, not waiting for itself").not.toBeNull()
    return yield* Fiber.join(fiber)
  })

/** The problem of a refused inner call, or its value. */
const problemOf = <A>(effect: Effect.Effect<A, unknown>) =>
  Effect.map(Effect.either(effect), (e) =>
    Either.isRight(e)
      ? e.right
      : (e.left as { _tag?: string })._tag === "CacheInputError"
        ? (e.left as { problem: string }).problem
        : e.left
  )

describe("a computation that calls getOrCompute of its own key", () => {
  it.scoped("is refused with a typed error instead of waiting for itself; its own value is stored", () =>
    Effect.gen(function* () {
      const cache: Cache = yield* memoryCache
      let inner: unknown
      const compute = Effect.gen(function* () {
        inner = yield* problemOf(cache.getOrCompute("k", Effect.succeed("inner")))
        return "outer"
      })
      expect(yield* endsWithoutTime(cache.getOrCompute("k", compute))).toBe("outer")
      expect(inner).toBe("ReentrantComputation")
      yield* MultiInstance.settle([cache])
      expect(yield* cache.get("k")).toEqual(Option.some("outer"))
      expect((yield* cache.stats).inFlight).toBe(0)
    })
  )

  it.scoped("through another key's computation (a cycle), and from a fiber the computation forks", () =>
    Effect.gen(function* () {
      const cache: Cache = yield* memoryCache
      // a's computation reads b, whose computation reads a.
      const b = Effect.map(
        problemOf(cache.getOrCompute("a", Effect.succeed("never"))),
        (p) => `b(${String(p)})`
      )
      const a = Effect.map(cache.getOrCompute("b", b), (v) => `a(${v})`)
      expect(yield* endsWithoutTime(cache.getOrCompute("a", a))).toBe("a(b(ReentrantComputation))")
      // A fiber forked by the computation is part of it.
      const forking = Effect.flatMap(
        Effect.fork(problemOf(cache.getOrCompute("c", Effect.succeed("inner")))),
        (fiber) => Effect.map(Fiber.join(fiber), (p) => `c(${String(p)})`)
      )
      expect(yield* endsWithoutTime(cache.getOrCompute("c", forking))).toBe("c(ReentrantComputation)")
    })
  )

  it.scoped(
    "two computations waiting for each other's key (callers of a and b at once): one is refused",
    () =>
      Effect.gen(function* () {
        const cache: Cache = yield* memoryCache
        // a's computation reads b and b's reads a, each started by its own caller: each flight
        // joins the other's, and without a check both wait forever.
        const started = { a: yield* Deferred.make<void>(), b: yield* Deferred.make<void>() }
        const computation = (own: "a" | "b", other: "a" | "b") =>
          Effect.gen(function* () {
            yield* Deferred.succeed(started[own], undefined)
            yield* Deferred.await(started[other])
            const read = yield* problemOf(cache.getOrCompute(other, Effect.succeed(`${other} inner`)))
            return `${own}(${String(read)})`
          })
        const both = Effect.all(
          [cache.getOrCompute("a", computation("a", "b")), cache.getOrCompute("b", computation("b", "a"))],
          {
            concurrency: "unbounded"
          }
        )
        const [a, b] = yield* endsWithoutTime(both)
        // One of the two calls is refused; the other flight answers with the refused one's value.
        if (a === "a(ReentrantComputation)") expect(b).toBe(`b(${a})`)
        else expect([b, a]).toEqual(["b(ReentrantComputation)", "a(b(ReentrantComputation))"])
      })
  )

  it.scoped("other callers of the key still wait for the computation, as before", () =>
    Effect.gen(function* () {
      const cache: Cache = yield* memoryCache
      let computations = 0
      const compute = Effect.sync(() => ++computations).pipe(Effect.zipLeft(Effect.yieldNow()))
      const answers = yield* Effect.all(
        Array.from({ length: 5 }, () => cache.getOrCompute("k", compute)),
        { concurrency: "unbounded" }
      )
      expect(answers).toEqual([1, 1, 1, 1, 1])
      expect(computations).toBe(1)
    })
  )
})
