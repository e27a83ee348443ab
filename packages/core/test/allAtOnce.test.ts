/**
 * Calls made all at once (internal/allAtOnce.ts) and the cache paths that make them: a caller
 * interrupted at any step ends. Effect 3.22's concurrent forEach never ends when its fiber is
 * interrupted while it yields inside forEach's own uninterruptible steps; a fiber yields every
 * 2,048 steps by default, every 12 here, so that each step is reached.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Interruptions, TestTier } from "@tiercache/testing"
import { Effect } from "effect"
import { allAtOnce } from "../src/internal/allAtOnce.js"

describe("calls made all at once, interrupted at any step", () => {
  it.live("allAtOnce starts every call before any ends, and answers in the items' order", () =>
    Effect.gen(function* () {
      let started = 0
      const seen: Array<number> = []
      const answers = yield* allAtOnce([30, 10, 20], (ms) =>
        Effect.gen(function* () {
          started++
          yield* Effect.sleep(`${ms} millis`)
          seen.push(started)
          return ms * 10
        })
      )
      expect(answers).toEqual([300, 100, 200])
      expect(seen).toEqual([3, 3, 3])
    })
  )

  it.effect("allAtOnce's caller ends, interrupted at any step", () =>
    Effect.gen(function* () {
      expect(
        yield* Interruptions.hungRuns(() => allAtOnce(["a", "b", "c"], () => Effect.yieldNow()), {
          withinMs: 50
        })
      ).toEqual([])
    })
  )

  it.scoped("a health check ends, interrupted at any step", () =>
    Effect.gen(function* () {
      const l1 = yield* MemoryTier.make({ maxEntries: 10 })
      const l2 = yield* TestTier.make()
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      expect((yield* cache.health).status).toBe("healthy")
      expect(yield* Interruptions.hungRuns(() => cache.health, { withinMs: 50 })).toEqual([])
    })
  )
})
