/**
 * An InvalidationBus of the user's whose publish dies (an Effect.die, a throw inside
 * Effect.sync, a method that throws when called): set, update, invalidate and invalidateTag died
 * with it, after L1 and the lower tiers had taken the change. Such a publish is now a failed one,
 * as a BusError is: counted (publishFailures), logged with the defect, fed to the bus's breaker,
 * the change kept for the replay; the write succeeds.
 */
import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestBus, TestTier } from "@tiercache/testing"
import { Cause, Effect, Exit, Fiber, Logger, LogLevel, Option } from "effect"

const bug = new Error("bus driver bug")
const dying: ReadonlyArray<readonly [string, () => Effect.Effect<void, never>]> = [
  ["die", () => Effect.die(bug)],
  [
    "sync",
    () =>
      Effect.sync(() => {
        throw bug
      })
  ],
  [
    "throw",
    () => {
      throw bug
    }
  ]
]

describe("a bus whose publish dies", () => {
  for (const breaker of [false, undefined] as const) {
    for (const [how, publish] of dying) {
      it.scoped(
        `writes succeed and keep the change (${how}, breaker ${breaker === false ? "off" : "on"})`,
        () =>
          Effect.gen(function* () {
            const lines: Array<string> = []
            const logger = Logger.make(({ logLevel, message, cause }) => {
              if (LogLevel.greaterThanEqual(logLevel, LogLevel.Warning))
                lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
            })
            const hub = yield* TestBus.makeHub
            const bus: InvalidationBus.InvalidationBus.Service = { ...TestBus.make(hub), publish }
            const l2 = yield* TestTier.make()
            const cache = yield* TieredCache.make(breaker === false ? { breaker } : {}).pipe(
              Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
              Effect.provideService(Tier.L2, l2),
              Effect.provideService(InvalidationBus.InvalidationBus, bus),
              Effect.provide(Logger.replace(Logger.defaultLogger, logger))
            )
            const writes: ReadonlyArray<readonly [string, Effect.Effect<unknown, unknown>]> = [
              ["set", cache.set("k", 1)],
              ["update", cache.update("u", 2)],
              ["invalidate", cache.invalidate("x")],
              ["invalidateMany", cache.invalidateMany(["y", "z"])],
              ["invalidatePattern", cache.invalidatePattern("p*")],
              ["invalidateTag", cache.invalidateTag("t")],
              ["clear", cache.clear]
            ]
            for (const [name, write] of writes) {
              const exit = yield* Effect.exit(
                Effect.provide(write, Logger.replace(Logger.defaultLogger, logger))
              )
              expect([name, exit]).toEqual([name, Exit.void])
            }
            const stats = yield* cache.invalidationStats
            expect(stats.publishFailures).toBeGreaterThanOrEqual(writes.length)
            expect((yield* cache.stats).pendingChanges).toBeGreaterThan(0)
            expect(lines.some((l) => l.includes("bus driver bug"))).toBe(true)
            // Reads and computations go on.
            expect(yield* cache.getOrCompute("c", Effect.succeed(3))).toBe(3)
            expect(yield* cache.get("k")).toEqual(Option.none())
          })
      )
    }
  }

  it.scoped("an interrupted publish still interrupts: it is no failure", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const bus: InvalidationBus.InvalidationBus.Service = {
        ...TestBus.make(hub),
        publish: () => Effect.interrupt
      }
      const cache = yield* TieredCache.make({ breaker: false }).pipe(
        Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 10 })),
        Effect.provideServiceEffect(Tier.L2, TestTier.make()),
        Effect.provideService(InvalidationBus.InvalidationBus, bus)
      )
      const fiber = yield* Effect.fork(cache.invalidate("k"))
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause)).toBe(true)
      expect((yield* cache.invalidationStats).publishFailures).toBe(0)
    })
  )
})
