/**
 * TTLs and grace windows under one millisecond. Expiry times are epoch milliseconds (Redis's PX,
 * the KeyValueStoreTier's records): at today's epoch an entry written with a TTL of a nanosecond
 * expired as it was written (1.7e12 + 1e-6 is 1.7e12 in a double), one of 0.3 ms lived for what
 * was left of the current millisecond at most. Such a TTL is refused as `InvalidTtl`, naming the
 * option and the value; 1 ms is the shortest, and is fresh for exactly that millisecond.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheStrategy, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestTier } from "@tiercache/testing"
import { Duration, Effect, Option, Schema, TestClock } from "effect"
import { hubWorld } from "./hubWorld.js"

/** Today's epoch, about: where a sub-millisecond TTL vanished in the double's rounding. */
const EPOCH = 1_754_000_000_000

const setup = Effect.gen(function* () {
  yield* TestClock.setTime(EPOCH)
  const { cache, l1, l2, hub } = yield* hubWorld
  const nothingWritten = Effect.gen(function* () {
    expect((yield* l2.snapshot).size).toBe(0)
    expect(Option.isNone(yield* l1.get("k"))).toBe(true)
    expect(yield* hub.published).toEqual([])
  })
  return { cache, l1, hub, nothingWritten }
})

/** A plain-JS caller: the cache seen through `any`, as code without TypeScript calls it. */
// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const untyped = (cache: TieredCache.TieredCache.Service): any => cache

/** An Effect a plain-JS call returned. */
const run = (effect: unknown) => effect as Effect.Effect<unknown, unknown>

/** Durations under 1 ms, as plain JS passes them, with how the error names each. */
const underOneMs: ReadonlyArray<readonly [unknown, string]> = [
  [Duration.nanos(1n), "got 1ns"],
  [Duration.micros(999n), "got 999000ns"],
  ["1 nanos", 'got "1 nanos"'],
  ["500 micros", 'got "500 micros"'],
  ["0.5 millis", 'got "0.5 millis"'],
  [0.3, "got 0.3"],
  [0.999, "got 0.999"],
  [1n, "got 1n"],
  [999_999n, "got 999999n"],
  [[0, 999_999], "got [0, 999999]"]
]

/** Exactly 1 ms, in each form. */
const oneMs: ReadonlyArray<unknown> = [
  1,
  1_000_000n,
  "1 millis",
  "1000 micros",
  Duration.millis(1),
  Duration.nanos(1_000_000n),
  [0, 1_000_000]
]

const expectRefused = (error: unknown, option: string, mention: string) => {
  expect(error).toMatchObject({ _tag: "CacheInputError", problem: "InvalidTtl" })
  expect((error as Error).message).toContain(option)
  expect((error as Error).message).toContain("at least 1 ms")
  expect((error as Error).message).toContain(mention)
}

describe("TTLs under 1 ms", () => {
  it.scoped("a ttl under 1 ms is refused by every write, before anything is written", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      const js = untyped(cache)
      for (const [ttl, mention] of underOneMs) {
        for (const effect of [
          js.set("k", 1, { ttl }),
          js.update("k", 1, { ttl }),
          js.set("k", 1, { ttl, schema: Schema.Number }),
          js.getOrCompute("k", Effect.succeed(1), { ttl }),
          js.getOrComputeTyped("k", Schema.Number, Effect.succeed(1), { ttl })
        ]) {
          expectRefused(yield* Effect.flip(effect as Effect.Effect<unknown, unknown>), "ttl", mention)
        }
        // The same duration as a Custom strategy.
        if (typeof ttl !== "number" || ttl > 0) {
          const strategy = CacheStrategy.Custom(ttl as Duration.DurationInput)
          for (const effect of [
            js.set("k", 1, { strategy }),
            js.getOrCompute("k", Effect.succeed(1), { strategy })
          ]) {
            expectRefused(
              yield* Effect.flip(effect as Effect.Effect<unknown, unknown>),
              "strategy TTL",
              mention
            )
          }
        }
      }
      yield* nothingWritten
      expect((yield* cache.stats).computations).toBe(0)
      // A timeout may be shorter (it is no expiry time); met first, its text is still refused as a ttl.
      expect(yield* cache.getOrCompute("t", Effect.succeed(1), { timeouts: { hard: "700 micros" } })).toBe(1)
      expectRefused(yield* Effect.flip(cache.set("k", 1, { ttl: "700 micros" })), "ttl", '"700 micros"')
    })
  )

  it.scoped("a grace window is 0 or at least 1 ms: one in between is refused", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      const js = untyped(cache)
      for (const [grace, mention] of underOneMs) {
        for (const effect of [
          js.set("k", 1, { ttl: "1 minute", grace }),
          js.update("k", 1, { ttl: "1 minute", grace }),
          js.getOrCompute("k", Effect.succeed(1), { ttl: "1 minute", grace })
        ]) {
          expectRefused(yield* Effect.flip(effect as Effect.Effect<unknown, unknown>), "grace", mention)
        }
      }
      yield* nothingWritten
      // Zero and 1 ms are fine: 1 ms past its TTL the entry answers stale for that millisecond.
      for (const grace of [0, 0n, "0 millis", Duration.zero, [0, 0]]) {
        yield* run(js.set("k", 1, { ttl: 1, grace }))
        expect(yield* cache.get("k")).toEqual(Option.some(1))
      }
      for (const grace of oneMs) {
        yield* run(js.set("k", 1, { ttl: 1, grace }))
        yield* TestClock.adjust(1)
        expect(yield* cache.get("k")).toEqual(Option.none())
        expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.some(1))
        yield* TestClock.adjust(1)
        expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.none())
      }
    })
  )

  it.scoped("a ttl of exactly 1 ms, in every form, is fresh for that millisecond and gone at the next", () =>
    Effect.gen(function* () {
      const { cache } = yield* setup
      const js = untyped(cache)
      for (const ttl of oneMs) {
        yield* run(js.set("k", "set", { ttl }))
        expect(yield* cache.get("k")).toEqual(Option.some("set"))
        yield* TestClock.adjust(1)
        expect(yield* cache.get("k")).toEqual(Option.none())
        // getOrCompute: the second call of the millisecond is answered from the cache.
        let runs = 0
        const compute = Effect.sync(() => ++runs)
        expect(yield* run(js.getOrCompute("c", compute, { ttl }))).toBe(1)
        expect(yield* run(js.getOrCompute("c", compute, { ttl }))).toBe(1)
        yield* TestClock.adjust(1)
        expect(yield* run(js.getOrCompute("c", compute, { ttl }))).toBe(2)
        yield* TestClock.adjust(1)
      }
    })
  )

  it.scoped("defaults under 1 ms are a CacheConfigError at build, naming the option", () =>
    Effect.gen(function* () {
      const build = (options: unknown) =>
        Effect.flip(
          TieredCache.make(options as TieredCache.Options).pipe(
            Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 1 })),
            Effect.provideServiceEffect(Tier.L2, TestTier.make())
          )
        )
      for (const [d, mention] of underOneMs) {
        for (const option of ["defaultTtl", "defaultGrace", "failSafeThrottle"]) {
          const error = yield* build({ [option]: d })
          expect(error).toMatchObject({ _tag: "CacheConfigError", option })
          expect(error.message).toContain("at least 1 ms")
          expect(error.message).toContain(mention)
        }
      }
      const strategy = yield* build({ defaultTtl: CacheStrategy.Custom("500 micros") })
      expect(strategy).toMatchObject({ _tag: "CacheConfigError", option: "defaultTtl" })
      // 1 ms (and a zero grace or throttle) builds.
      for (const d of oneMs) {
        yield* TieredCache.make({
          defaultTtl: d as Duration.DurationInput,
          defaultGrace: d as Duration.DurationInput,
          failSafeThrottle: d as Duration.DurationInput
        }).pipe(
          Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 1 })),
          Effect.provideServiceEffect(Tier.L2, TestTier.make())
        )
      }
      yield* TieredCache.make({ defaultGrace: 0, failSafeThrottle: 0 }).pipe(
        Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 1 })),
        Effect.provideServiceEffect(Tier.L2, TestTier.make())
      )
    })
  )

  // Another program's Update may carry any TTL: it is not refused (not counted as malformed), and
  // replaces this instance's copy as any Update does (a copy that soon expires, not the old value).
  it.scoped("a received Update with a TTL under 1 ms still applies", () =>
    Effect.gen(function* () {
      const { cache, l1, hub } = yield* setup
      for (const ttl of ['"ttl_ms":0.5', '"ttl_secs":0.0001', '"ttl_ms":0.000001']) {
        yield* cache.set("k", "old")
        yield* hub.publishRaw(`{"type":"Update","key":"k","value":"new",${ttl},"origin":"other"}`)
        yield* MultiInstance.settle([cache], { hub })
        // This instance's L1 no longer holds the old value (the sender wrote the shared tiers).
        const copy = Option.map(yield* l1.get("k"), (e) => e.value)
        expect([ttl, Option.getOrElse(copy, () => "none")]).not.toEqual([ttl, "old"])
      }
      const stats = yield* cache.invalidationStats
      expect([stats.malformedMessages, stats.messagesApplied]).toEqual([0, 3])
    })
  )
})
