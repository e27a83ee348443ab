/**
 * A read that begins while a removal of every key it may cover (a clear, a pattern, a tag) is
 * under way, finds the old value below before the removal reaches that tier, and answers only
 * after the removal ended: it overlapped the removal, so L1 must not keep that value
 * (README, What a read accepts: a change that began or ended while the read ran).
 */
import { describe, expect, it } from "@effect/vitest"
import { type CacheError, MemoryTier, Tier, TieredCache, type Tier as TierModule } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { type Duration, Effect, Fiber, Option, TestClock } from "effect"

type Cache = TieredCache.TieredCache.Service

/** A tier whose reads take their answer at once and return it `held` later (a slow reply). */
const slowReplies = (
  inner: TierModule.Tier.Service,
  held: Duration.DurationInput
): TierModule.Tier.Service => ({
  ...inner,
  get: (key) => Effect.tap(inner.get(key), () => Effect.sleep(held))
})

const build = Effect.gen(function* () {
  const stored = yield* TestTier.make()
  const chaos = yield* ChaosTier.wrap(stored)
  const l1 = yield* MemoryTier.make({ maxEntries: 100 })
  const cache = yield* TieredCache.make({ breaker: false }).pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, slowReplies(chaos, "30 millis"))
  )
  return { cache, l1, chaos }
})

const removals: ReadonlyArray<
  readonly [string, "clear" | "removeMatching", (cache: Cache) => Effect.Effect<void, CacheError.CacheError>]
> = [
  ["clear", "clear", (c) => c.clear],
  ["invalidatePattern", "removeMatching", (c) => c.invalidatePattern("user:*")]
]

describe("a read begun during a removal of every key, answering after it ended", () => {
  for (const [name, operation, removal] of removals) {
    it.scoped(`${name}: L1 does not keep the value the removal took away`, () =>
      Effect.gen(function* () {
        const { cache, l1, chaos } = yield* build
        yield* cache.set("user:1", "old")
        // The lower tier's part of the removal is slow; L1's part is done at once.
        yield* chaos.delay([operation], "20 millis")
        const removing = yield* Effect.fork(removal(cache))
        yield* TestClock.adjust("5 millis")
        expect(yield* l1.get("user:1")).toEqual(Option.none())
        // Begun during the removal: reads the lower tier before the removal reaches it (at 20 ms),
        // answers at 35 ms, after the removal ended.
        const reading = yield* Effect.fork(cache.get("user:1"))
        yield* TestClock.adjust("20 millis")
        yield* Fiber.join(removing)
        yield* TestClock.adjust("20 millis")
        // It overlapped the removal: its answer may be the old value (and here is, or it tests nothing).
        expect(yield* Fiber.join(reading)).toEqual(Option.some("old"))
        expect(yield* l1.get("user:1"), "L1").toEqual(Option.none())
        // And the next read finds nothing below either.
        const again = yield* Effect.fork(cache.get("user:1"))
        yield* TestClock.adjust("30 millis")
        expect(yield* Fiber.join(again)).toEqual(Option.none())
      })
    )
  }
})
