/**
 * A tier's defect (a bug of a user-written Tier: a throw inside Effect.sync, an Effect.die, a
 * method that throws when called) is that tier's failure, as a TierError is: counted, logged
 * with the defect as its cause, fed to the breaker; the cache's read goes on as a miss and its
 * write succeeds when another tier took it. It used to make the cache's call die, although the
 * README says reads through the cache never fail because of a tier. An interruption is never
 * taken for a failure: it still reaches the caller.
 */
import { describe, expect, it } from "@effect/vitest"
import {
  type CacheError,
  CacheMetrics,
  Entry,
  InvalidationBus,
  MemoryTier,
  Tier,
  TieredCache
} from "@tiercache/core"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Cause, Effect, Exit, Fiber, Layer, Metric, Option, Schema, TestClock } from "effect"
import { capture, keptChangeWorld } from "./keptReplay.js"

type How = "die" | "sync" | "throw" | "fail"
type Op = "get" | "getMany" | "set" | "setMany" | "remove" | "removeMatching" | "clear" | "health"

/** The controls of a broken tier: which operations break, how, and the calls that reached it. */
interface Broken {
  readonly ops: Set<Op>
  how: How
  calls: number
}

/**
 * A user-written tier over `store` whose operations in `broken.ops` break as `broken.how` says:
 * `die` (Effect.die), `sync` (a throw inside Effect.sync), `throw` (the method throws when
 * called, before answering an Effect; `clear` and `health` are fields, which die instead),
 * `fail` (a failure that is not a TierError: a plain Error, as plain JavaScript may fail).
 */
const brokenTier = (name: string, store: Tier.Tier.Service, broken: Broken): Tier.Tier.Service => {
  const bug = (op: Op) => new Error(`${name}: driver bug in ${op}`)
  /** Counted when it runs (a guard builds the call's Effect before its breaker refuses it). */
  const call = <A>(
    op: Op,
    run: () => Effect.Effect<A, CacheError.TierError>
  ): Effect.Effect<A, CacheError.TierError> => {
    if (broken.ops.has(op) && broken.how === "throw") {
      broken.calls++
      throw bug(op)
    }
    return Effect.suspend(() => {
      broken.calls++
      if (!broken.ops.has(op)) return run()
      if (broken.how === "fail") return Effect.fail(bug(op) as unknown as CacheError.TierError)
      return broken.how === "die"
        ? Effect.die(bug(op))
        : Effect.sync(() => {
            throw bug(op)
          })
    })
  }
  const field = <A, E>(op: Op, effect: Effect.Effect<A, E>): Effect.Effect<A, E> =>
    Effect.suspend(() => {
      broken.calls++
      return broken.ops.has(op) ? Effect.die(bug(op)) : effect
    })
  return {
    name,
    get: (key) => call("get", () => store.get(key)),
    getMany: (keys) => call("getMany", () => store.getMany(keys)),
    set: (key, entry) => call("set", () => store.set(key, entry)),
    setMany: (entries) => call("setMany", () => store.setMany(entries)),
    remove: (keys) => call("remove", () => store.remove(keys)),
    removeMatching: (glob) => call("removeMatching", () => store.removeMatching(glob)),
    clear: field("clear", store.clear),
    health: field("health", store.health)
  }
}

/** A cache over a MemoryTier L1 and a broken L2 (over a TestTier), with the given breaker. */
const world = (breaker: TieredCache.Options["breaker"], how: How) =>
  Effect.gen(function* () {
    const log = capture()
    const store = yield* TestTier.make()
    const broken: Broken = { ops: new Set(), how, calls: 0 }
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const cache = yield* TieredCache.make({ breaker }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, brokenTier("user", store, broken)),
      Effect.provide(log.layer)
    )
    return { cache, store, broken, l1, lines: log.lines }
  })

const planted = (value: unknown) => Entry.make({ value, now: 0, ttlMs: 3_600_000 })

/** The exit of `effect` under `log`'s logger: never a defect. */
const settled = <A, E>(effect: Effect.Effect<A, E>, layer: Layer.Layer<never>) =>
  Effect.gen(function* () {
    const exit = yield* Effect.exit(Effect.provide(effect, layer))
    if (Exit.isFailure(exit)) expect(Cause.isDie(exit.cause)).toBe(false)
    return exit
  })

const breakers = [false, { failureThreshold: 1000 }] as const

describe("a lower tier's defect is that tier's failure", () => {
  for (const breaker of breakers) {
    for (const how of ["die", "sync", "throw", "fail"] as const) {
      it.scoped(`reads go on as misses (${how}, breaker ${breaker === false ? "off" : "on"})`, () =>
        Effect.gen(function* () {
          const { cache, store, broken, lines } = yield* world(breaker, how)
          const log = capture()
          yield* store.plant("a", planted("A"))
          yield* store.plant("b", planted("B"))
          broken.ops.add("get")
          broken.ops.add("getMany")
          const reads: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>, unknown]> = [
            ["get", cache.get("a"), Option.none()],
            ["get allowStale", cache.get("a", { allowStale: true }), Option.none()],
            ["getTyped", cache.getTyped("a", Schema.String), Option.none()],
            ["getMany", cache.getMany(["a", "b"]), [Option.none(), Option.none()]],
            ["getMany typed", cache.getMany(["a", "b"], Schema.String), [Option.none(), Option.none()]],
            ["getOrCompute", cache.getOrCompute("c", Effect.succeed("computed")), "computed"],
            [
              "getOrComputeTyped",
              cache.getOrComputeTyped("d", Schema.String, Effect.succeed("typed")),
              "typed"
            ]
          ]
          for (const [name, read, expected] of reads) {
            const exit = yield* settled(read, log.layer)
            expect([name, exit]).toEqual([name, Exit.succeed(expected)])
          }
          const stats = yield* cache.stats
          expect(stats.tierErrors).toEqual({ user: 7 })
          expect(stats.requests).toBe(stats.misses)
          expect(stats.requests).toBe(9)
          // Each logged at Warning level with the defect as its cause.
          expect(log.lines.length).toBe(7)
          for (const line of log.lines) {
            expect(line).toMatch(/^WARN tiercache: tier user failed get(Many)?: /)
            expect(line).toContain("driver bug in get")
          }
          expect(lines).toEqual([])
        })
      )

      it.scoped(
        `writes and removals succeed through L1 (${how}, breaker ${breaker === false ? "off" : "on"})`,
        () =>
          Effect.gen(function* () {
            const { cache, broken, l1 } = yield* world(breaker, how)
            const log = capture()
            for (const op of ["set", "setMany", "remove", "removeMatching", "clear"] as const)
              broken.ops.add(op)
            const writes: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
              ["set", cache.set("s", 1)],
              ["update", cache.update("u", 2)],
              ["set tagged", cache.set("t", 3, { tags: ["tag"] })],
              ["getOrCompute", cache.getOrCompute("c", Effect.succeed(4))],
              ["invalidate", cache.invalidate("s")],
              ["invalidateMany", cache.invalidateMany(["u", "x"])],
              ["invalidatePattern", cache.invalidatePattern("c*")],
              ["clear", cache.clear]
            ]
            for (const [name, write] of writes) {
              const exit = yield* settled(write, log.layer)
              expect([name, Exit.isSuccess(exit)]).toEqual([name, true])
              if (name === "set") expect(Option.isSome(yield* l1.get("s"))).toBe(true)
            }
            // Documented: an invalidateTag no lower tier took fails with CacheWriteError (typed).
            const tagged = yield* settled(cache.invalidateTag("tag"), log.layer)
            expect(tagged).toMatchObject({ _tag: "Failure" })
            expect(Exit.isFailure(tagged) && Cause.failureOption(tagged.cause)).toMatchObject(
              Option.some({ _tag: "CacheWriteError" })
            )
            const stats = yield* cache.stats
            expect(stats.tierErrors.user).toBe(9)
            expect(stats.pendingChanges).toBeGreaterThan(0)
            expect(log.lines.filter((l) => l.includes("driver bug in")).length).toBe(9)
          })
      )
    }
  }

  it.scoped("health reports a tier whose health check dies as unhealthy", () =>
    Effect.gen(function* () {
      for (const breaker of breakers) {
        const { cache, broken } = yield* world(breaker, "die")
        broken.ops.add("health")
        const health = yield* cache.health
        expect(health.status).toBe("degraded")
        expect(health.tiers[1]).toMatchObject({ name: "user", healthy: false })
        expect(health.tiers[1]!.detail).toContain("driver bug in health")
      }
    })
  )

  it.scoped("the breaker counts defects: it opens, and reads then skip the tier", () =>
    Effect.gen(function* () {
      const { cache, broken } = yield* world({ failureThreshold: 3, openFor: "1 minute" }, "die")
      broken.ops.add("get")
      for (let i = 0; i < 3; i++) expect(yield* cache.get(`k${i}`)).toEqual(Option.none())
      expect((yield* cache.stats).breakers).toEqual({ user: "open" })
      const calls = broken.calls
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect(broken.calls).toBe(calls)
      expect((yield* cache.stats).breakerRejections).toBe(1)
      // Past its window, a probe that works closes it again.
      broken.ops.clear()
      yield* TestClock.adjust("1 minute")
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect((yield* cache.stats).breakers).toEqual({ user: "closed" })
    })
  )

  it.scoped("many callers at once over a tier that dies: one computation, every caller answered", () =>
    Effect.gen(function* () {
      for (const breaker of breakers) {
        const { cache, broken } = yield* world(breaker, "die")
        for (const op of ["get", "set"] as const) broken.ops.add(op)
        let runs = 0
        const compute = Effect.zipRight(
          TestClock.sleep(10),
          Effect.sync(() => ++runs)
        )
        const fibers = yield* Effect.forEach(
          Array.from({ length: 50 }, () => cache.getOrCompute("k", compute)),
          (e) => Effect.fork(e)
        )
        yield* TestClock.adjust(10)
        const answers = yield* Fiber.join(Fiber.all(fibers))
        expect(new Set(answers)).toEqual(new Set([1]))
        expect(runs).toBe(1)
        const gets = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => cache.get(`m${i}`)),
          (e) => e,
          {
            concurrency: "unbounded"
          }
        )
        expect(gets.every(Option.isNone)).toBe(true)
      }
    })
  )

  it.scoped("two instances sharing a tier that dies keep working through their L1s and the bus", () =>
    Effect.gen(function* () {
      const store = yield* TestTier.make()
      const broken: Broken = { ops: new Set(), how: "die", calls: 0 }
      const hub = yield* TestBus.makeHub
      const shared = Layer.merge(
        Layer.succeed(Tier.L2, brokenTier("user", store, broken)),
        Layer.succeed(InvalidationBus.InvalidationBus, TestBus.make(hub))
      )
      const { caches } = yield* MultiInstance.make(2, { shared })
      const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
      yield* a.set("k", "from a")
      yield* b.set("j", "from b")
      yield* MultiInstance.settle(caches, { hub })
      for (const op of ["get", "getMany", "set", "remove"] as const) broken.ops.add(op)
      expect(yield* b.get("k")).toEqual(Option.none())
      expect(yield* b.getMany(["k", "j"])).toEqual([Option.none(), Option.some("from b")])
      expect(yield* a.get("k")).toEqual(Option.some("from a"))
      expect(yield* b.getOrCompute("k", Effect.succeed("b's"))).toBe("b's")
      // An update that missed the shared tier (kept for the replay, as after any failure of it):
      // b no longer answers its old copy.
      yield* a.update("j", "from a, later")
      yield* MultiInstance.settle(caches, { hub })
      expect(yield* b.get("j")).not.toEqual(Option.some("from b"))
      expect((yield* a.stats).pendingChanges).toBe(1)
      yield* a.invalidate("j")
      yield* MultiInstance.settle(caches, { hub })
      expect(yield* b.get("j")).toEqual(Option.none())
      for (const c of caches) expect((yield* c.stats).tierErrors.user).toBeGreaterThan(0)
    })
  )

  it.scoped("an L1 of the user's that dies is that tier's failure: reads go on to L2", () =>
    Effect.gen(function* () {
      const l1Store = yield* TestTier.make({ name: "l1" })
      const broken: Broken = { ops: new Set(["get", "getMany", "set"]), how: "die", calls: 0 }
      const l2 = yield* TestTier.make({ name: "l2" })
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, brokenTier("mine", l1Store, broken)),
        Effect.provideService(Tier.L2, l2)
      )
      yield* l2.plant("a", planted("A"))
      expect(yield* cache.get("a")).toEqual(Option.some("A"))
      expect(yield* cache.getMany(["a", "b"])).toEqual([Option.some("A"), Option.none()])
      yield* cache.set("s", 1)
      expect(yield* cache.get("s")).toEqual(Option.some(1))
      expect(yield* cache.getOrCompute("c", Effect.succeed(2))).toBe(2)
      expect((yield* cache.stats).tierErrors.mine).toBeGreaterThan(0)
    })
  )

  it.scoped("an interruption is not a failure: it reaches the caller", () =>
    Effect.gen(function* () {
      for (const breaker of breakers) {
        const store = yield* TestTier.make()
        const l2: Tier.Tier.Service = {
          ...store,
          name: "user",
          get: (key) => (key === "self" ? Effect.interrupt : Effect.never)
        }
        const cache = yield* TieredCache.make({ breaker }).pipe(
          Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
          Effect.provideService(Tier.L2, l2)
        )
        // A caller interrupted while the tier hangs.
        const fiber = yield* Effect.fork(cache.get("hangs"))
        yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(fiber)
        expect(Exit.isInterrupted(exit)).toBe(true)
        // A tier that interrupts its own call: not swallowed as a miss either.
        const own = yield* Effect.exit(cache.get("self"))
        expect(Exit.isFailure(own) && Cause.isInterruptedOnly(own.cause)).toBe(true)
        expect((yield* cache.stats).tierErrors).toEqual({})
      }
    })
  )
})

/**
 * A tier of the user's that answers what the Tier contract does not allow: an entry without
 * `tags` (a record deserialized by hand), one whose times are not numbers, `null` in a Some, a
 * bare entry instead of an Option, a getMany answer of the wrong length. The cache's read died of
 * a TypeError deep inside it; such an answer is now that tier's failure (the read a miss).
 */
describe("a lower tier's malformed answer is that tier's failure", () => {
  const entry = { value: 1, expiresAt: 1e15, staleUntil: 1e15, createdAt: 0, tags: [] }
  const malformed: ReadonlyArray<readonly [string, unknown, string]> = [
    ["an entry without tags", Option.some({ ...entry, tags: undefined }), "entry.tags"],
    ["tags that are not strings", Option.some({ ...entry, tags: [1] }), "entry.tags"],
    ["times that are not numbers", Option.some({ ...entry, expiresAt: "1e15" }), "entry.expiresAt"],
    ["a staleUntil before expiresAt", Option.some({ ...entry, staleUntil: 0 }), "entry.staleUntil"],
    ["null in a Some", Option.some(null), "entry"],
    ["a bare entry, not an Option", entry, "not an Option"],
    ["undefined", undefined, "not an Option"],
    [
      "an entry whose fields throw when read",
      Option.some(
        new Proxy(entry, {
          get: () => {
            throw new Error("a trap")
          }
        })
      ),
      "answered what could not be read: a trap"
    ]
  ]
  for (const [name, answer, mention] of malformed) {
    it.scoped(name, () =>
      Effect.gen(function* () {
        const log = capture()
        const store = yield* TestTier.make()
        const l2: Tier.Tier.Service = {
          ...store,
          name: "user",
          get: () => Effect.succeed(answer as Option.Option<Entry.Entry>),
          getMany: (keys) => Effect.succeed(keys.map(() => answer as Option.Option<Entry.Entry>))
        }
        const cache = yield* TieredCache.make().pipe(
          Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
          Effect.provideService(Tier.L2, l2),
          Effect.provide(log.layer)
        )
        const reads: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>, unknown]> = [
          ["get", cache.get("k"), Option.none()],
          ["getTyped", cache.getTyped("k", Schema.Number), Option.none()],
          ["getMany", cache.getMany(["k", "j"]), [Option.none(), Option.none()]],
          ["getOrCompute", cache.getOrCompute("c", Effect.succeed(2)), 2]
        ]
        for (const [op, read, expected] of reads) {
          const exit = yield* settled(read, log.layer)
          expect([op, exit]).toEqual([op, Exit.succeed(expected)])
        }
        expect((yield* cache.stats).tierErrors).toEqual({ user: 4 })
        expect(log.lines.length).toBe(4)
        for (const line of log.lines) expect(line).toContain(mention)
        // Nothing malformed reached L1.
        expect(yield* cache.get("c")).toEqual(Option.some(2))
      })
    )
  }

  it.scoped("a getMany answer of another length than its keys", () =>
    Effect.gen(function* () {
      for (const answer of [[], [Option.none(), Option.none(), Option.none()], "x", undefined]) {
        const store = yield* TestTier.make()
        const l2: Tier.Tier.Service = {
          ...store,
          name: "user",
          getMany: () => Effect.succeed(answer as ReadonlyArray<Option.Option<Entry.Entry>>)
        }
        const cache = yield* TieredCache.make().pipe(
          Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
          Effect.provideService(Tier.L2, l2)
        )
        expect(yield* cache.getMany(["k", "j"])).toEqual([Option.none(), Option.none()])
        expect((yield* cache.stats).tierErrors).toEqual({ user: 1 })
      }
    })
  )
})

/**
 * The replay of changes kept during an outage calls the tier too (writeIfNewer, or a read and a
 * write): a defect there is the tier's failure as well, so the change stays kept and the next
 * replay, every retryInterval, tries again (a replay that died ended the repeating fiber: the
 * change would never have been replayed).
 */
describe("a tier that dies while changes are replayed", () => {
  it.scoped("the change stays kept and a later replay lands it", () =>
    Effect.gen(function* () {
      // An outage (a typed failure) kept the change; its replays then meet the defect twice.
      const w = yield* keptChangeWorld(Effect.die(new Error("driver bug in writeIfNewer")), {
        tierName: "user"
      })
      for (let i = 0; i < 2; i++) {
        yield* TestClock.adjust("1 second")
        expect((yield* w.cache.stats).pendingChanges).toBe(1)
      }
      yield* TestClock.adjust("1 second")
      // Each replay's defect logged as the tier's failure (with the first write's).
      expect(w.lines.filter((l) => l.includes("driver bug in writeIfNewer")).length).toBe(2)
      expect(w.replays()).toBe(3)
      const stats = yield* w.cache.stats
      expect([stats.pendingChanges, stats.replayedChanges]).toEqual([0, 1])
      expect(Option.map(yield* w.store.get("k"), (e) => e.value)).toEqual(Option.some("kept"))
    })
  )
})

/**
 * A user-written tier from plain JavaScript whose `writeIfNewer` answers something else than an
 * array of one boolean per change. Reading `undefined` made the replay pass die (logged at Error
 * level as a replay that died, the tier's error not counted nor fed to its breaker); a string, an
 * object or a short array was read as "not applied" (a newer entry held): the kept change was
 * dropped as done although no tier took it. Such an answer is now the tier's failure, as a
 * malformed read answer is: counted, logged at Warning level, fed to the breaker, the change
 * kept for the next replay.
 */
describe("a tier whose writeIfNewer answers what the contract does not allow", () => {
  const malformed: ReadonlyArray<readonly [string, unknown, string]> = [
    ["undefined", undefined, "undefined, not an array of booleans"],
    ["a string", "applied", "not an array of booleans"],
    ["an object", { applied: [true] }, "not an array of booleans"],
    ["an empty array", [], "0 answers for 1 changes"],
    ["two answers for one change", [true, true], "2 answers for 1 changes"],
    ["a string in the array", ["yes"], "at [0]"],
    ["an Option in the array", [Option.some(true)], "at [0]"]
  ]
  for (const [name, answer, mention] of malformed) {
    it.scoped(`${name}: the tier's failure, the change kept and replayed later`, () =>
      Effect.gen(function* () {
        const cacheName = `writeIfNewer answers ${name}`
        const w = yield* keptChangeWorld(Effect.succeed(answer as ReadonlyArray<boolean>), {
          tierName: "user",
          cache: { name: cacheName, breaker: { failureThreshold: 3, openFor: "1 second" } }
        })
        for (let i = 1; i <= 2; i++) {
          yield* TestClock.adjust("1 second")
          expect(w.replays()).toBe(i)
          const stats = yield* w.cache.stats
          expect([stats.pendingChanges, stats.replayedChanges]).toEqual([1, 0])
          // The first write's failure, then each malformed answer; the Metric says as much.
          expect(stats.tierErrors).toEqual({ user: 1 + i })
          const metric = CacheMetrics.tierErrors.pipe(
            Metric.tagged("cache", cacheName),
            Metric.tagged("tier", "user")
          )
          expect((yield* Metric.value(metric)).count).toBe(1 + i)
        }
        // Fed to the breaker: three failures in a row opened it.
        expect((yield* w.cache.stats).breakers).toEqual({ user: "open" })
        expect(w.lines.filter((l) => l.startsWith("ERROR"))).toEqual([])
        const said = w.lines.filter((l) => l.includes("writeIfNewer"))
        expect(said.length).toBe(2)
        for (const line of said) {
          expect(line).toMatch(/^WARN tiercache: tier user failed writeIfNewer: answered /)
          expect(line).toContain(mention)
        }
        // The breaker's window is over: the next replay probes it and lands the change.
        yield* TestClock.adjust("1 second")
        expect(w.replays()).toBe(3)
        const stats = yield* w.cache.stats
        expect([stats.pendingChanges, stats.replayedChanges]).toEqual([0, 1])
        expect(stats.breakers).toEqual({ user: "closed" })
        expect(Option.map(yield* w.store.get("k"), (e) => e.value)).toEqual(Option.some("kept"))
      })
    )
  }
})

describe("a tag's invalidation time written past a malformed writeIfNewer answer", () => {
  it.scoped("is that tier's failure: counted, logged, the time kept for the replay", () =>
    Effect.gen(function* () {
      for (const answer of [undefined, "applied", [], [true, true], [1]]) {
        const store = yield* TestTier.make()
        const l2: Tier.Tier.Service = {
          ...store,
          name: "user",
          writeIfNewer: () => Effect.succeed(answer as unknown as ReadonlyArray<boolean>)
        }
        const log = capture()
        const cache = yield* TieredCache.make().pipe(
          Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
          Effect.provideService(Tier.L2, l2),
          Effect.provide(log.layer)
        )
        // Documented: an invalidateTag no lower tier took fails with CacheWriteError.
        const exit = yield* settled(cache.invalidateTag("tag"), log.layer)
        expect(Exit.isFailure(exit) && Cause.failureOption(exit.cause)).toMatchObject(
          Option.some({ _tag: "CacheWriteError" })
        )
        const stats = yield* cache.stats
        expect([answer, stats.tierErrors, stats.pendingChanges]).toEqual([answer, { user: 1 }, 1])
        expect(log.lines.filter((l) => l.includes("failed writeIfNewer: answered")).length).toBe(1)
      }
    })
  )
})
