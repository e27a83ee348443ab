/**
 * Calls made all at once (internal/allAtOnce.ts) and the cache paths that make them: a caller
 * interrupted at any step ends. Effect 3.22's concurrent forEach never ends when its fiber is
 * interrupted while it yields inside forEach's own uninterruptible steps; a fiber yields every
 * 2,048 steps by default, every 12 here, so that each step is reached.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Fiber, FiberRef, Option } from "effect"
import { allAtOnce } from "../src/internal/allAtOnce.js"

/**
 * Runs `make()` in a daemon fiber yielding every 12 steps after `pad` steps, interrupts it after
 * `wait` yields of the test's fiber, and answers whether it ended (a hung fiber must not hold up
 * the test's end, hence the daemon).
 */
const endsWhenInterrupted = (make: () => Effect.Effect<unknown, unknown>, pad: number, wait: number) =>
  Effect.gen(function* () {
    let padding: Effect.Effect<void> = Effect.void
    for (let i = 0; i < pad; i++) padding = Effect.zipRight(padding, Effect.void)
    const fiber = yield* Effect.forkDaemon(
      Effect.locally(Effect.zipRight(padding, make()), FiberRef.currentMaxOpsBeforeYield, 12)
    )
    for (let i = 0; i < wait; i++) yield* Effect.yieldNow()
    yield* Fiber.interruptFork(fiber)
    for (let i = 0; i < 500 && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* Effect.yieldNow()
    return Option.isSome(yield* Fiber.poll(fiber))
  })

/** Every pad of 0..7 steps and every interruption after 0..23 yields: the runs that never ended. */
const hungRuns = (make: () => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const hung: Array<string> = []
    for (let pad = 0; pad < 8; pad++) {
      for (let wait = 0; wait < 24; wait++) {
        if (!(yield* endsWhenInterrupted(make, pad, wait))) hung.push(`${pad}:${wait}`)
      }
    }
    return hung
  })

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
      expect(yield* hungRuns(() => allAtOnce(["a", "b", "c"], () => Effect.yieldNow()))).toEqual([])
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
      expect(yield* hungRuns(() => cache.health)).toEqual([])
    })
  )
})
