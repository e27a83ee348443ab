import { describe, expect, it } from "@effect/vitest"
import { CacheError, Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Chunk, Clock, Effect, Fiber, Layer, Option, TestClock } from "effect"
import { ChaosTier, TestTier } from "../src/index.js"

const entry = (value: unknown) => Entry.make({ value, now: 0, ttlMs: 60_000 })

/** A chaos tier over a fresh test tier. */
const chaosTier = (options?: ChaosTier.Options) =>
  Effect.gen(function* () {
    const inner = yield* TestTier.make({ name: "inner" })
    const chaos = yield* ChaosTier.wrap(inner, options)
    return { inner, chaos }
  })

/** Waits until `n` sleeps are registered with the TestClock. */
const awaitSleeps = (n: number) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000; i++) {
      if (Chunk.size(yield* TestClock.sleeps()) >= n) return
      yield* Effect.yieldNow()
    }
    return yield* Effect.dieMessage(`fewer than ${n} sleeps registered`)
  })

/** Runs `effect` in a fiber that also answers the Clock time at which it completed. */
const forkTimed = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.fork(Effect.flatMap(effect, (a) => Effect.map(Clock.currentTimeMillis, (at) => ({ a, at }))))

/** Every operation of a tier, each run once; answers the errors, in operation order. */
const everyOperation = (tier: Tier.Tier.Service) =>
  Effect.all([
    Effect.flip(tier.get("k")),
    Effect.flip(tier.getMany(["k"])),
    Effect.flip(tier.set("k", entry(1))),
    Effect.flip(tier.setMany([["k", entry(1)]])),
    Effect.flip(tier.remove(["k"])),
    Effect.flip(tier.removeMatching("*")),
    Effect.flip(tier.clear)
  ])

describe("ChaosTier", () => {
  it.effect("without controls it is the wrapped tier, under the same name unless overridden", () =>
    Effect.gen(function* () {
      const { inner, chaos } = yield* chaosTier()
      expect(chaos.name).toBe("inner")
      expect(chaos.wrapped).toBe(inner)
      yield* chaos.setMany([
        ["a:1", entry(1)],
        ["a:2", entry(2)],
        ["b", entry(3)]
      ])
      yield* chaos.set("c", entry(4))
      expect(yield* chaos.get("c")).toEqual(Option.some(entry(4)))
      expect(yield* chaos.getMany(["a:1", "x"])).toEqual([Option.some(entry(1)), Option.none()])
      expect(yield* chaos.removeMatching("a:*")).toBe(2)
      yield* chaos.remove(["b"])
      expect([...(yield* inner.snapshot).keys()]).toEqual(["c"])
      yield* chaos.clear
      expect((yield* inner.snapshot).size).toBe(0)
      expect(yield* chaos.health).toEqual({ name: "inner", healthy: true, detail: "0 entries" })

      const named = yield* ChaosTier.wrap(inner, { name: "l2" })
      expect(named.name).toBe("l2")
      expect((yield* named.health).name).toBe("l2")
    })
  )

  it.effect("fail('all') makes every operation fail with an injected TierError; health is unhealthy", () =>
    Effect.gen(function* () {
      const { inner, chaos } = yield* chaosTier({ name: "l2" })
      yield* chaos.fail("all")
      const errors = yield* everyOperation(chaos)
      expect(errors.map((e) => e._tag)).toEqual(Array(7).fill("TierError"))
      expect(errors.map((e) => e.operation)).toEqual([
        "get",
        "getMany",
        "set",
        "setMany",
        "remove",
        "removeMatching",
        "clear"
      ])
      for (const e of errors) {
        expect(e.tier).toBe("l2")
        expect(e.reason).toBe("failure injected by ChaosTier")
      }
      expect((yield* inner.calls).set).toBe(0) // nothing reached the wrapped tier
      const health = yield* chaos.health
      expect(health.healthy).toBe(false)
      expect(health.name).toBe("l2")
      expect(health.detail).toContain("failure injected by ChaosTier")
    })
  )

  it.effect("fail on some operations leaves the others working; a reason is added to the error's", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.fail(["get", "remove"], { reason: "connection reset" })
      yield* chaos.set("k", entry(1))
      const error = yield* Effect.flip(chaos.get("k"))
      expect(error).toBeInstanceOf(CacheError.TierError)
      expect(error._tag).toBe("TierError")
      expect(error.reason).toBe("failure injected by ChaosTier: connection reset")
      expect(error.message).toBe("tier inner failed get: failure injected by ChaosTier: connection reset")
      expect((yield* Effect.flip(chaos.remove(["k"]))).operation).toBe("remove")
      expect(yield* chaos.getMany(["k"])).toEqual([Option.some(entry(1))])
      const health = yield* chaos.health
      expect(health).toEqual({
        name: "inner",
        healthy: false,
        detail: "failure injected by ChaosTier on get, remove"
      })
    })
  )

  it.effect("fail('health') reports unhealthy without touching the other operations", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.fail("health")
      expect(yield* chaos.health).toEqual({
        name: "inner",
        healthy: false,
        detail: "failure injected by ChaosTier"
      })
      yield* chaos.set("k", entry(1))
      expect(yield* chaos.get("k")).toEqual(Option.some(entry(1)))
      expect((yield* chaos.injected).health).toBe(1)
    })
  )

  it.effect("fail with `times` fails only the next calls of each operation", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.fail(["get", "set"], { times: 2 })
      expect((yield* Effect.flip(chaos.set("k", entry(1)))).operation).toBe("set")
      expect((yield* Effect.flip(chaos.get("k"))).operation).toBe("get")
      expect((yield* Effect.flip(chaos.set("k", entry(1)))).operation).toBe("set")
      yield* chaos.set("k", entry(1))
      expect((yield* Effect.flip(chaos.get("k"))).operation).toBe("get")
      expect(yield* chaos.get("k")).toEqual(Option.some(entry(1)))
      expect((yield* chaos.health).healthy).toBe(true)
      expect(yield* chaos.injected).toMatchObject({ get: 2, set: 2 })

      for (const times of [0, -1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(chaos.fail("all", { times }))
        expect(error._tag).toBe("CacheConfigError")
        expect(error.option).toBe("times")
      }
      expect((yield* chaos.health).healthy).toBe(true) // a refused control changes nothing
    })
  )

  it.effect("delay makes an operation complete exactly after the delay on the Clock, not before", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.set("k", entry(1))
      yield* chaos.delay("get", "5 seconds")
      const fiber = yield* forkTimed(chaos.get("k"))
      yield* awaitSleeps(1)
      yield* TestClock.adjust("4999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toEqual({ a: Option.some(entry(1)), at: 5000 })
      // Other operations are not delayed.
      expect(yield* chaos.getMany(["k"])).toEqual([Option.some(entry(1))])
    })
  )

  it.effect("a delayed write sleeps before it runs: the wrapped tier has nothing until the delay ends", () =>
    Effect.gen(function* () {
      const { inner, chaos } = yield* chaosTier()
      yield* chaos.delay("all", "1 second")
      const fiber = yield* forkTimed(chaos.set("k", entry(1)))
      yield* awaitSleeps(1)
      yield* TestClock.adjust("999 millis")
      expect((yield* inner.snapshot).has("k")).toBe(false)
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      expect((yield* Fiber.join(fiber)).at).toBe(1000)
      expect((yield* inner.snapshot).has("k")).toBe(true)

      const health = yield* forkTimed(chaos.health)
      yield* awaitSleeps(1)
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(health)).toMatchObject({ a: { healthy: true }, at: 2000 })
    })
  )

  it.effect("a delayed failing operation sleeps, then fails", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.delay("get", "2 seconds")
      yield* chaos.fail("get")
      const fiber = yield* Effect.fork(Effect.flip(chaos.get("k")))
      yield* awaitSleeps(1)
      yield* TestClock.adjust("1999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      expect((yield* Fiber.join(fiber))._tag).toBe("TierError")
    })
  )

  it.effect("drop loses writes and removals silently, and reads miss", () =>
    Effect.gen(function* () {
      const { inner, chaos } = yield* chaosTier()
      yield* inner.set("kept", entry("kept"))
      yield* inner.set("p:1", entry("p"))
      yield* chaos.drop("all")

      yield* chaos.set("lost", entry(1))
      yield* chaos.setMany([["lost2", entry(2)]])
      expect(yield* chaos.get("kept")).toEqual(Option.none())
      expect(yield* chaos.getMany(["kept", "lost"])).toEqual([Option.none(), Option.none()])
      yield* chaos.remove(["kept"])
      expect(yield* chaos.removeMatching("p:*")).toBe(0)
      yield* chaos.clear
      expect((yield* chaos.health).healthy).toBe(true)
      expect([...(yield* inner.snapshot).keys()].sort()).toEqual(["kept", "p:1"])
      expect(yield* inner.calls).toMatchObject({ set: 2, setMany: 0, remove: 0, removeMatching: 0, clear: 0 })

      yield* chaos.heal
      // The dropped writes stay lost; what the removals missed is still there.
      expect(yield* chaos.getMany(["lost", "lost2", "kept"])).toEqual([
        Option.none(),
        Option.none(),
        Option.some(entry("kept"))
      ])
      expect(yield* chaos.removeMatching("p:*")).toBe(1)
    })
  )

  it.effect(
    "bad arguments from plain JS are a TierError, also while dropping; nothing reaches the wrapped tier",
    () =>
      Effect.gen(function* () {
        // Before: a dropped getMany(null) was a defect (keys.map), and a dropped set(k, null)
        // succeeded; TestTier alone stored set(42, e) under the key 42 and died of set(k, null).
        const { inner, chaos } = yield* chaosTier()
        // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
        const js = (u: unknown): any => u
        for (const dropping of [false, true]) {
          if (dropping) yield* chaos.drop("all")
          for (const [operation, call] of [
            ["getMany", chaos.getMany(js(null))],
            ["set", chaos.set(js(42), entry(1))],
            ["set", chaos.set("k", js(null))],
            ["setMany", chaos.setMany(js([["k", entry(1)], ["j"]]))],
            ["remove", chaos.remove(js([null]))],
            ["removeMatching", chaos.removeMatching(js(undefined))]
          ] as const) {
            const exit = yield* Effect.exit(call as Effect.Effect<unknown, unknown>)
            const error = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
            const seen = error as { _tag?: string; operation?: string } | undefined
            expect([dropping, seen?._tag, seen?.operation]).toEqual([dropping, "TierError", operation])
          }
        }
        expect((yield* inner.snapshot).size).toBe(0)
        expect((yield* inner.calls).set + (yield* inner.calls).setMany).toBe(0)
      })
  )

  it.effect("drop on reads only: writes still land", () =>
    Effect.gen(function* () {
      const { inner, chaos } = yield* chaosTier()
      yield* chaos.drop(["get", "getMany"])
      yield* chaos.set("k", entry(1))
      expect(yield* chaos.get("k")).toEqual(Option.none())
      expect((yield* inner.snapshot).get("k")).toEqual(entry(1))
    })
  )

  it.effect("failRate 0 never fails, 1 always fails", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.failRate("get", 1)
      for (let i = 0; i < 20; i++) {
        const error = yield* Effect.flip(chaos.get("k"))
        expect(error.reason).toBe("failure injected by ChaosTier (failRate 1)")
      }
      yield* chaos.failRate("get", 0)
      for (let i = 0; i < 20; i++) expect(yield* chaos.get("k")).toEqual(Option.none())
      expect(yield* chaos.calls).toMatchObject({ get: 40 })
      expect(yield* chaos.injected).toMatchObject({ get: 20 })
    })
  )

  it.effect("failRate with a seed fails the same calls every time, at about the given rate", () =>
    Effect.gen(function* () {
      const pattern = Effect.gen(function* () {
        const { chaos } = yield* chaosTier()
        yield* chaos.failRate(["get"], 0.3, { seed: "chaos" })
        const outcomes: Array<boolean> = []
        for (let i = 0; i < 200; i++) outcomes.push(Option.isSome(yield* Effect.option(chaos.get("k"))))
        expect((yield* chaos.injected).get).toBe(outcomes.filter((ok) => !ok).length)
        return outcomes
      })
      const first = yield* pattern
      const second = yield* pattern
      expect(second).toEqual(first)
      const failures = first.filter((ok) => !ok).length
      expect(failures).toBeGreaterThan(30)
      expect(failures).toBeLessThan(90)

      const { chaos } = yield* chaosTier()
      for (const probability of [-0.1, 1.5, Number.NaN]) {
        const error = yield* Effect.flip(chaos.failRate("all", probability))
        expect(error._tag).toBe("CacheConfigError")
        expect(error.option).toBe("probability")
      }
    })
  )

  it.effect("heal removes every control; counts are kept", () =>
    Effect.gen(function* () {
      const { chaos } = yield* chaosTier()
      yield* chaos.fail(["get"])
      yield* chaos.failRate(["getMany"], 1)
      yield* chaos.drop(["set"])
      yield* chaos.delay("all", "1 hour")
      yield* chaos.heal
      // No clock adjustment: nothing sleeps any more.
      yield* chaos.set("k", entry(1))
      expect(yield* chaos.get("k")).toEqual(Option.some(entry(1)))
      expect(yield* chaos.getMany(["k"])).toEqual([Option.some(entry(1))])
      expect((yield* chaos.health).healthy).toBe(true)
      expect(Chunk.size(yield* TestClock.sleeps())).toBe(0)
      expect(yield* chaos.calls).toMatchObject({ get: 1, getMany: 1, set: 1, health: 1 })
    })
  )

  it.effect("calls counts every call of every operation, injected failures and drops included", () =>
    Effect.gen(function* () {
      const { inner, chaos } = yield* chaosTier()
      yield* chaos.get("k")
      yield* chaos.fail("all")
      yield* everyOperation(chaos)
      yield* chaos.health
      yield* chaos.heal
      yield* chaos.drop(["set"])
      yield* chaos.set("k", entry(1))
      expect(yield* chaos.calls).toEqual({
        get: 2,
        getMany: 1,
        set: 2,
        setMany: 1,
        remove: 1,
        removeMatching: 1,
        clear: 1,
        health: 1
      })
      expect(yield* chaos.injected).toEqual({
        get: 1,
        getMany: 1,
        set: 1,
        setMany: 1,
        remove: 1,
        removeMatching: 1,
        clear: 1,
        health: 1
      })
      expect(yield* inner.calls).toMatchObject({ get: 1, set: 0 })
    })
  )

  it.effect("layer provides one ChaosTier as both Tier.L2 and the ChaosTier tag", () =>
    Effect.gen(function* () {
      const chaos = yield* ChaosTier.ChaosTier
      const l2 = yield* Tier.L2
      expect(l2).toBe(chaos)
      expect(l2.name).toBe("shared")
      yield* l2.set("k", entry(1))
      yield* chaos.fail("get")
      expect((yield* Effect.flip(l2.get("k"))).tier).toBe("shared")
      yield* chaos.heal
      expect(yield* l2.get("k")).toEqual(Option.some(entry(1)))
    }).pipe(Effect.provide(ChaosTier.layer({ name: "shared" })))
  )
})

describe("ChaosTier under a TieredCache", () => {
  /** A cache with a MemoryTier L1 and a chaos L2, built in the test's scope. */
  const cacheOverChaos = (options?: TieredCache.Options) =>
    Effect.gen(function* () {
      const l1 = yield* MemoryTier.make({ maxEntries: 100 })
      const { chaos } = yield* chaosTier({ name: "l2" })
      const cache = yield* TieredCache.make(options).pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, chaos)
      )
      return { cache, chaos }
    })

  it.scoped("getOrCompute keeps answering while L2 fails everything; the L2 errors are counted", () =>
    Effect.gen(function* () {
      const { cache, chaos } = yield* cacheOverChaos()
      yield* chaos.fail("all")
      expect(yield* cache.getOrCompute("k", Effect.succeed(7))).toBe(7)
      expect(yield* cache.getOrCompute("k", Effect.succeed(8))).toBe(7) // from L1
      // The computed value's L2 write runs after the callers are answered: wait for it.
      while ((yield* cache.stats).inFlight > 0) yield* Effect.yieldNow()
      const stats = yield* cache.stats
      expect(stats.computations).toBe(1)
      expect(stats.tierErrors).toEqual({ l2: 2 }) // the read, then the write of the computed value
      expect(yield* chaos.injected).toMatchObject({ get: 1, set: 1 })
      expect((yield* cache.health).status).toBe("degraded")
    })
  )

  it.scoped("with tier timeouts off, getOrCompute waits out a 5 s L2 get delay in full", () =>
    Effect.gen(function* () {
      const { cache, chaos } = yield* cacheOverChaos({ breaker: false })
      yield* chaos.delay("get", "5 seconds")
      const fiber = yield* forkTimed(cache.getOrCompute("k", Effect.succeed(7)))
      yield* awaitSleeps(1)
      yield* TestClock.adjust("4999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toEqual({ a: 7, at: 5000 })
      const stats = yield* cache.stats
      expect(stats.computations).toBe(1)
      expect(stats.tierErrors).toEqual({})
    })
  )

  it.scoped("with the default 1 s tier timeout, a 5 s L2 get delay is cut at 1 s and computes", () =>
    Effect.gen(function* () {
      const { cache, chaos } = yield* cacheOverChaos()
      yield* chaos.delay("get", "5 seconds")
      const fiber = yield* forkTimed(cache.getOrCompute("k", Effect.succeed(7)))
      yield* awaitSleeps(1)
      yield* TestClock.adjust("999 millis")
      expect(yield* Fiber.poll(fiber)).toEqual(Option.none())
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(fiber)).toEqual({ a: 7, at: 1000 })
      const stats = yield* cache.stats
      expect(stats.computations).toBe(1)
      expect(stats.tierErrors).toEqual({ l2: 1 }) // the timed-out read
      expect((yield* chaos.calls).get).toBe(1)
    })
  )

  it.scoped("a cache built from layers is steered through the ChaosTier tag", () =>
    Effect.gen(function* () {
      const cache = yield* TieredCache.TieredCache
      const chaos = yield* ChaosTier.ChaosTier
      yield* chaos.fail(["set"])
      yield* cache.set("k", "v")
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
      expect((yield* cache.stats).tierErrors).toEqual({ test: 1 })
      expect((yield* chaos.calls).set).toBe(1)
    }).pipe(
      Effect.provide(
        TieredCache.layer().pipe(
          Layer.provideMerge(Layer.merge(MemoryTier.layer({ maxEntries: 100 }), ChaosTier.layer()))
        )
      )
    )
  )
})
