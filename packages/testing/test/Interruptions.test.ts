import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Interruptions, TestTier } from "@tiercache/testing"
import { Effect, Exit } from "effect"

// A mark set in one step and cleared by a region entered in the next (the mistake the helper is
// for), against the same mark set inside the region.

const marks = () => {
  const held = new Set<string>()
  return {
    held,
    // The gap: an interruption after the suspend and before ensuring's region leaves the mark.
    gapped: (run: string) =>
      Effect.suspend(() => {
        held.add(run)
        return Effect.ensuring(
          Effect.yieldNow(),
          Effect.sync(() => held.delete(run))
        )
      }),
    // No gap: the mark is set inside the region that clears it.
    whole: (run: string) =>
      Effect.uninterruptibleMask((restore) => {
        held.add(run)
        return Effect.ensuring(
          restore(Effect.yieldNow()),
          Effect.sync(() => held.delete(run))
        )
      })
  }
}

describe("Interruptions.atEachStep", () => {
  it.effect("finds a mark left by an interruption between two steps", () =>
    Effect.gen(function* () {
      const { held, gapped } = marks()
      const result = yield* Interruptions.atEachStep(
        (run, padding) => Effect.zipRight(padding, gapped(run)),
        (run) => Effect.succeed(!held.has(run))
      )
      expect(result.failed.length).toBeGreaterThan(0)
      expect(result.interrupted + result.completed).toBe(24 * 16)
      expect(result.interrupted).toBeGreaterThan(0)
      expect(result.completed).toBeGreaterThan(0)
    })
  )

  it.effect("passes the same mark set inside its region, and runs prepare before each run", () =>
    Effect.gen(function* () {
      const { held, whole } = marks()
      let prepared = 0
      const result = yield* Interruptions.atEachStep(
        (run, padding) => Effect.zipRight(padding, whole(run)),
        (run) => Effect.succeed(!held.has(run)),
        { pads: 13, waits: 8, prepare: () => Effect.sync(() => prepared++) }
      )
      expect(result.failed).toEqual([])
      expect(prepared).toBe(13 * 8)
      expect(result.interrupted + result.completed).toBe(13 * 8)
      expect(result.interrupted).toBeGreaterThan(0)
      expect(result.completed).toBeGreaterThan(0)
    })
  )

  it.scoped("cachesAgain: true for a key the cache stores, false when no tier keeps it", () =>
    Effect.gen(function* () {
      const make = (l1: Tier.Tier.Service, l2: Tier.Tier.Service) =>
        TieredCache.make({ breaker: false }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2)
        )
      const cache = yield* make(yield* MemoryTier.make({ maxEntries: 10 }), yield* TestTier.make())
      yield* cache.set("k", "old")
      expect(yield* Interruptions.cachesAgain(cache, "k")).toBe(true)
      // Every write fails: each getOrCompute computes anew.
      const l1 = yield* TestTier.make()
      const l2 = yield* TestTier.make()
      yield* l1.failOn(["set"])
      yield* l2.failOn(["set"])
      expect(yield* Interruptions.cachesAgain(yield* make(l1, l2), "k")).toBe(false)
    })
  )

  it.effect("refuses options that would test nothing or never advance", () =>
    Effect.gen(function* () {
      const run = () => Effect.void
      const ok = () => Effect.succeed(true)
      for (const options of [
        { pads: 0 },
        { waits: -1 },
        { yieldEvery: 9 },
        { pads: 1.5 },
        { waits: "3" as unknown as number }
      ]) {
        const exit = yield* Effect.exit(Interruptions.atEachStep(run, ok, options))
        expect(Exit.isFailure(exit) && exit.toString()).toContain("Interruptions.atEachStep")
      }
    })
  )
})

describe("Interruptions.hungRuns", () => {
  it.effect("names the runs after which an interrupted effect never ended", () =>
    Effect.gen(function* () {
      // Uninterruptible once past its first step: every interruption after that never ends it.
      const stuck = () => Effect.zipRight(Effect.yieldNow(), Effect.uninterruptible(Effect.never))
      const hung = yield* Interruptions.hungRuns(stuck, { pads: 2, waits: 6, withinMs: 20 })
      expect(hung.length).toBeGreaterThan(0)
      expect(hung.every((run) => /^[01]:[0-5]$/.test(run))).toBe(true)
      // Effect.all's concurrent mode in Effect 3.22: hangs when cut at one of its own yields.
      const all = () =>
        Effect.all([Effect.yieldNow(), Effect.yieldNow(), Effect.yieldNow()], { concurrency: "unbounded" })
      expect((yield* Interruptions.hungRuns(all, { withinMs: 20 })).length).toBeGreaterThan(0)
    })
  )

  it.effect("answers no run for an effect that always ends, on the TestClock", () =>
    Effect.gen(function* () {
      const ends = () => Effect.forEach([1, 2, 3], () => Effect.yieldNow())
      expect(yield* Interruptions.hungRuns(ends)).toEqual([])
    })
  )
})
