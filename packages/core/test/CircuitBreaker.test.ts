import { describe, expect, it } from "@effect/vitest"
import { CacheError, CircuitBreaker, Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import {
  Clock,
  Deferred,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  LogLevel,
  Option,
  TestClock
} from "effect"

// The public breaker and guard (CircuitBreaker.ts), as a user builds them by hand.

const failure = () => "failed" as const
const open = () => "open" as const
const late = () => "timed out" as const

describe("CircuitBreaker", () => {
  it.effect(
    "opens after failureThreshold failures in a row, refuses calls, then lets one probe through",
    () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make("test", { failureThreshold: 3, openFor: "10 seconds" })
        const call = (ok: boolean) =>
          Effect.either(breaker.run(ok ? Effect.succeed("ok") : Effect.fail(failure()), open, late))
        // A success in between resets the count.
        yield* call(false)
        yield* call(false)
        yield* call(true)
        yield* call(false)
        yield* call(false)
        expect(breaker.state()).toBe("closed")
        yield* call(false)
        expect(breaker.state()).toBe("open")
        // Refused without running the call.
        let ran = 0
        const counted = Effect.sync(() => ++ran)
        expect(yield* Effect.either(breaker.run(counted, open, late))).toMatchObject({ left: "open" })
        expect([ran, breaker.rejected()]).toEqual([0, 1])
        // After openFor, one probe: a failure opens it again for another openFor.
        yield* TestClock.adjust("10 seconds")
        expect(yield* call(false)).toMatchObject({ left: "failed" })
        expect(breaker.state()).toBe("open")
        expect(yield* call(true)).toMatchObject({ left: "open" })
        // The next probe succeeds: closed.
        yield* TestClock.adjust("10 seconds")
        expect(yield* call(true)).toMatchObject({ right: "ok" })
        expect(breaker.state()).toBe("closed")
      })
  )

  // A breaker's window is a duration of this process (openFor), not a time shared with other
  // machines: it was measured on the wall clock (Clock millis), so a wall clock stepped back
  // while the breaker was open (NTP correcting a clock that ran ahead, a VM resumed) kept the
  // tier refused for openFor plus the step: here an hour, every read skipping L2 meanwhile.
  // Expected: openFor of the clock's monotonic time (Clock nanos, which a wall step leaves alone
  // on the live clock, and which a TestClock moves with its millis).
  it.effect("its window is monotonic time: a wall clock stepped back does not keep it open", () =>
    Effect.gen(function* () {
      let step = 0
      const test = yield* Effect.clock
      // The live clock's shape: wall time (millis) that can step back, monotonic time (nanos) that cannot.
      const stepped: Clock.Clock = {
        [Clock.ClockTypeId]: Clock.ClockTypeId,
        unsafeCurrentTimeMillis: () => test.unsafeCurrentTimeMillis() - step,
        currentTimeMillis: Effect.sync(() => test.unsafeCurrentTimeMillis() - step),
        unsafeCurrentTimeNanos: () => test.unsafeCurrentTimeNanos(),
        currentTimeNanos: Effect.sync(() => test.unsafeCurrentTimeNanos()),
        sleep: (duration) => test.sleep(duration)
      }
      const breaker = yield* Effect.withClock(
        CircuitBreaker.make("test", { failureThreshold: 1, openFor: "10 seconds" }),
        stepped
      )
      yield* Effect.either(breaker.run(Effect.fail(failure()), open, late))
      expect(breaker.state()).toBe("open")
      step = 3_600_000
      yield* TestClock.adjust("9999 millis")
      expect(yield* Effect.either(breaker.run(Effect.succeed("ok"), open, late))).toMatchObject({
        left: "open"
      })
      yield* TestClock.adjust("1 millis")
      expect(yield* Effect.either(breaker.run(Effect.succeed("ok"), open, late))).toMatchObject({
        right: "ok"
      })
      expect(breaker.state()).toBe("closed")
    })
  )

  it.effect(
    "while its one probe runs it is half-open and refuses others; an interrupted probe proves nothing",
    () =>
      Effect.gen(function* () {
        const breaker = yield* CircuitBreaker.make("test", { failureThreshold: 1, openFor: "10 seconds" })
        yield* Effect.either(breaker.run(Effect.fail(failure()), open, late))
        yield* TestClock.adjust("10 seconds")
        const probe = yield* Effect.fork(breaker.run(Effect.never, open, late, true))
        yield* Effect.yieldNow()
        expect(breaker.state()).toBe("half-open")
        expect(yield* Effect.either(breaker.run(Effect.succeed("ok"), open, late))).toMatchObject({
          left: "open"
        })
        yield* Fiber.interrupt(probe)
        expect(breaker.state()).toBe("open")
        // The next call probes at once, and its success closes the breaker.
        expect(yield* Effect.either(breaker.run(Effect.succeed("ok"), open, late))).toMatchObject({
          right: "ok"
        })
        expect(breaker.state()).toBe("closed")
      })
  )

  it.effect("a probe that dies (a defect) counts as a failure: the breaker opens again, then probes", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make("test", { failureThreshold: 1, openFor: "10 seconds" })
      yield* Effect.either(breaker.run(Effect.fail(failure()), open, late))
      expect(breaker.state()).toBe("open")
      yield* TestClock.adjust("10 seconds")
      const exit = yield* Effect.exit(breaker.run(Effect.dieMessage("boom"), open, late))
      expect(Exit.isFailure(exit) && Option.isSome(Exit.causeOption(exit))).toBe(true)
      expect(breaker.state()).toBe("open")
      yield* TestClock.adjust("10 seconds")
      expect(yield* breaker.run(Effect.succeed("ok"), open, late)).toBe("ok")
      expect(breaker.state()).toBe("closed")
    })
  )

  it.effect("an interrupted probe leaves closed a breaker that another call closed meanwhile", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make("test", { failureThreshold: 1, openFor: "10 seconds" })
      // A call made while closed, still running when the breaker opens.
      const gate = yield* Deferred.make<void>()
      const straggler = yield* Effect.fork(
        breaker.run(Effect.as(Deferred.await(gate), "late ok"), open, late, true)
      )
      yield* Effect.yieldNow()
      yield* Effect.either(breaker.run(Effect.fail(failure()), open, late))
      expect(breaker.state()).toBe("open")
      yield* TestClock.adjust("10 seconds")
      const probe = yield* Effect.fork(breaker.run(Effect.never, open, late, true))
      yield* Effect.yieldNow()
      expect(breaker.state()).toBe("half-open")
      // The straggler succeeds: the tier answers, the breaker closes.
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(straggler)).toBe("late ok")
      expect(breaker.state()).toBe("closed")
      // Interrupting the hung probe proves nothing about the tier.
      yield* Fiber.interrupt(probe)
      expect(breaker.state()).toBe("closed")
      expect(yield* breaker.run(Effect.succeed("ok"), open, late)).toBe("ok")
    })
  )

  it.effect("an interrupted probe of an earlier open period leaves the current probe alone", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make("test", { failureThreshold: 1, openFor: "1 second" })
      const fail = Effect.either(breaker.run(Effect.fail(failure()), open, late, true))
      // A call started while closed, still running.
      const gate = yield* Deferred.make<string>()
      const straggler = yield* Effect.fork(breaker.run(Deferred.await(gate), open, late, true))
      yield* Effect.yieldNow()
      yield* fail
      yield* TestClock.adjust("1 second")
      const first = yield* Effect.fork(breaker.run(Effect.never, open, late, true))
      yield* Effect.yieldNow()
      // The straggler succeeds (closed), then the breaker opens again and a second probe runs.
      yield* Deferred.succeed(gate, "ok")
      yield* Fiber.join(straggler)
      yield* fail
      yield* TestClock.adjust("1 second")
      const second = yield* Effect.fork(breaker.run(Effect.never, open, late, true))
      yield* Effect.yieldNow()
      expect(breaker.state()).toBe("half-open")
      yield* Fiber.interrupt(first)
      // The second probe is still the only one: other calls are refused.
      expect(breaker.state()).toBe("half-open")
      expect(yield* Effect.either(breaker.run(Effect.succeed("third"), open, late, true))).toEqual(
        Either.left("open")
      )
      yield* Fiber.interrupt(second)
      expect(breaker.state()).toBe("open")
    })
  )

  for (const selfBounded of [false, true]) {
    it.scoped(
      `reads of a tier ${selfBounded ? "that bounds its own calls " : ""}that die open its breaker`,
      () =>
        Effect.gen(function* () {
          const l1 = yield* MemoryTier.make({ maxEntries: 100 })
          const inner = yield* TestTier.make()
          const dying: Tier.Tier.Service = {
            ...inner,
            name: "dying",
            ...(selfBounded ? { callTimeout: Duration.millis(500) } : {}),
            get: () => Effect.die(new Error("driver bug"))
          }
          const cache = yield* TieredCache.make({ breaker: { failureThreshold: 3 } }).pipe(
            Effect.provideService(Tier.L1, l1),
            Effect.provideService(Tier.L2, dying)
          )
          // Each read a miss: the tier's defect is its failure (tierDefects.ts), counted.
          for (let i = 0; i < 3; i++) expect(yield* cache.get(`k${i}`)).toEqual(Option.none())
          expect((yield* cache.stats).tierErrors).toEqual({ dying: 3 })
          expect((yield* cache.stats).breakers).toEqual({ dying: "open" })
          // Open: reads go on as misses without calling the tier.
          expect(yield* cache.get("k")).toEqual(Option.none())
        })
    )
  }

  for (const selfBounded of [false, true]) {
    it.scoped(
      `a read begun while closed that succeeds after the breaker opened: each change is logged${selfBounded ? " (direct read)" : ""}`,
      () =>
        Effect.gen(function* () {
          const lines: Array<string> = []
          const logger = Logger.make(({ message }) => {
            lines.push(String(Array.isArray(message) ? message.join(" ") : message))
          })
          yield* Effect.gen(function* () {
            const l1 = yield* MemoryTier.make({ maxEntries: 100 })
            const inner = yield* TestTier.make()
            const gate = yield* Deferred.make<void>()
            const tier: Tier.Tier.Service = {
              ...inner,
              name: "l2",
              ...(selfBounded ? { callTimeout: Duration.millis(500) } : {}),
              get: (key) =>
                key === "slow"
                  ? Effect.as(Deferred.await(gate), Option.none<Entry.Entry>())
                  : Effect.fail(new CacheError.TierError({ tier: "l2", operation: "get", reason: "down" }))
            }
            const cache = yield* TieredCache.make({ breaker: { failureThreshold: 1 } }).pipe(
              Effect.provideService(Tier.L1, l1),
              Effect.provideService(Tier.L2, tier)
            )
            const slow = yield* Effect.fork(cache.get("slow"))
            yield* Effect.yieldNow()
            yield* cache.get("bad") // opens the breaker
            expect((yield* cache.stats).breakers).toEqual({ l2: "open" })
            yield* Deferred.succeed(gate, undefined)
            yield* Fiber.join(slow)
            // The read that began before the breaker opened succeeded: closed, and logged.
            expect((yield* cache.stats).breakers).toEqual({ l2: "closed" })
            expect(lines.filter((l) => l.includes("breaker"))).toEqual([
              expect.stringContaining("closed -> open"),
              expect.stringContaining("open -> closed")
            ])
          }).pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
            Logger.withMinimumLogLevel(LogLevel.All)
          )
        })
    )
  }

  it.scoped("through a cache: an L2 read that dies while probing does not keep L2 refused", () =>
    Effect.gen(function* () {
      const store = yield* TestTier.make()
      let mode: "fail" | "die" | "ok" = "fail"
      const l2: Tier.Tier.Service = {
        ...store,
        get: (key) =>
          Effect.suspend(() =>
            mode === "die"
              ? Effect.dieMessage("driver bug")
              : mode === "fail"
                ? Effect.fail(new CacheError.TierError({ tier: "test", operation: "get", reason: "down" }))
                : store.get(key)
          )
      }
      const l1 = yield* MemoryTier.make({ maxEntries: 100 })
      const cache = yield* TieredCache.make({ breaker: { failureThreshold: 1, openFor: "1 second" } }).pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      yield* cache.get("x")
      expect((yield* cache.stats).breakers).toEqual({ test: "open" })
      yield* TestClock.adjust("1 second")
      mode = "die"
      yield* Effect.exit(cache.get("x"))
      mode = "ok"
      yield* store.plant("k", Entry.make({ value: "in L2", now: 1000, ttlMs: 3_600_000 }))
      yield* TestClock.adjust("1 second")
      expect(yield* cache.get("k")).toEqual(Option.some("in L2"))
      expect((yield* cache.stats).breakers).toEqual({ test: "closed" })
    })
  )

  it.effect("bounds a call by its timeout unless the call bounds itself", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make("test", { timeout: "1 second" })
      const slow = Effect.as(Effect.sleep("5 seconds"), "done")
      const bounded = yield* Effect.fork(Effect.either(breaker.run(slow, open, late)))
      yield* TestClock.adjust("1 second")
      expect(yield* Fiber.join(bounded)).toMatchObject({ left: "timed out" })
      const selfBounded = yield* Effect.fork(Effect.either(breaker.run(slow, open, late, true)))
      yield* TestClock.adjust("5 seconds")
      expect(yield* Fiber.join(selfBounded)).toMatchObject({ right: "done" })
    })
  )

  it.effect("a guarded tier refuses calls with a TierError while open", () =>
    Effect.gen(function* () {
      const inner = yield* TestTier.make()
      const tier = yield* CircuitBreaker.guard(inner, { failureThreshold: 1, openFor: "1 minute" })
      yield* inner.failOn(["get"])
      const failed = yield* Effect.flip(tier.get("k"))
      expect(CircuitBreaker.isRejection(failed)).toBe(false)
      expect(tier.state()).toBe("open")
      yield* inner.failOn("none")
      const refused = yield* Effect.flip(tier.get("k"))
      expect(refused).toBeInstanceOf(CacheError.TierError)
      expect(CircuitBreaker.isRejection(refused)).toBe(true)
      yield* TestClock.adjust("1 minute")
      yield* tier.set("k", Entry.make({ value: 1, now: 0, ttlMs: 3_600_000 }))
      expect(tier.state()).toBe("closed")
      expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some(1))
    })
  )

  it.effect("bad options from plain JS are a CacheConfigError naming the option", () =>
    Effect.gen(function* () {
      // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
      const js = (options: unknown): any => options
      const inner = yield* TestTier.make()
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        ["fast", "options"],
        [null, "options"],
        [{ timeout: "bogus" }, "timeout"],
        [{ timeout: null }, "timeout"],
        [{ timeout: 0 }, "timeout"],
        [{ openFor: -5 }, "openFor"],
        [{ openFor: Number.NaN }, "openFor"],
        [{ failureThreshold: 0 }, "failureThreshold"],
        [{ failureThreshold: 1.5 }, "failureThreshold"],
        [{ failureThreshold: "3" }, "failureThreshold"]
      ]
      for (const [options, option] of cases) {
        const builds: ReadonlyArray<Effect.Effect<unknown, CacheError.CacheConfigError>> = [
          CircuitBreaker.make("test", js(options)),
          CircuitBreaker.guard(inner, js(options))
        ]
        for (const built of builds) {
          const error = yield* Effect.flip(built)
          expect(error).toBeInstanceOf(CacheError.CacheConfigError)
          expect(error).toMatchObject({ option })
        }
      }
      // The same checks for a cache's `breaker` option, named within it.
      const build = (breaker: unknown) =>
        Effect.flip(
          Effect.scoped(
            TieredCache.make({ breaker: js(breaker) }).pipe(
              Effect.provide(Layer.merge(MemoryTier.layer({ maxEntries: 1 }), Layer.succeed(Tier.L2, inner)))
            )
          )
        )
      expect(yield* build("on")).toMatchObject({ _tag: "CacheConfigError", option: "breaker" })
      expect(yield* build({ openFor: 0 })).toMatchObject({ option: "breaker.openFor" })
      expect(yield* build({ failureThreshold: -1 })).toMatchObject({ option: "breaker.failureThreshold" })
      expect(yield* build({ timeout: "soon" })).toMatchObject({ option: "breaker.timeout" })
    })
  )
})
