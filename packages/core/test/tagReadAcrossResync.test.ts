/**
 * A tag's time read from the lower tiers while the instance resyncs (its bus reconnected: the
 * messages it missed are lost, so it forgets every tag time it held). An answer read before the
 * resync may predate an invalidation whose message the instance missed: kept, it would make the
 * tag's entries valid on this instance for good, while every other instance refuses them.
 */
import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosBus, TestBus, TestTier } from "@tiercache/testing"
import { Deferred, Effect, Fiber, Option } from "effect"

const TAG_KEY = "__tiercache:tag:t"

/**
 * `tier` whose reads of a tag's record, while `hold` is armed, read the tier at once and answer
 * once released (an answer on its way back over a slow link): `reached` completes when one read.
 */
const holding = (tier: Tier.Tier.Service) =>
  Effect.gen(function* () {
    let armed: { reached: Deferred.Deferred<void>; release: Deferred.Deferred<void> } | undefined
    const held = <A, E>(keys: ReadonlyArray<string>, read: Effect.Effect<A, E>) =>
      Effect.suspend(() => {
        const hold = armed
        if (hold === undefined || !keys.includes(TAG_KEY)) return read
        return Effect.flatMap(read, (answer) =>
          Effect.zipRight(
            Effect.zipRight(Deferred.succeed(hold.reached, undefined), Deferred.await(hold.release)),
            Effect.succeed(answer)
          )
        )
      })
    const wrapped: Tier.Tier.Service = {
      ...tier,
      get: (key) => held([key], tier.get(key)),
      getMany: (keys) => held(keys, tier.getMany(keys))
    }
    const arm = Effect.gen(function* () {
      const hold = { reached: yield* Deferred.make<void>(), release: yield* Deferred.make<void>() }
      armed = hold
      return {
        reached: Deferred.await(hold.reached),
        release: Effect.zipRight(
          Effect.sync(() => {
            armed = undefined
          }),
          Deferred.succeed(hold.release, undefined)
        )
      }
    })
    return { tier: wrapped, arm }
  })

/** A (its tag reads held at will) and B over one L2 and one bus hub; B's publishes can be lost. */
const world = Effect.gen(function* () {
  const hub = yield* TestBus.makeHub
  const l2 = yield* TestTier.make()
  const heldL2 = yield* holding(l2)
  const a = yield* TieredCache.make({ instanceId: "A" }).pipe(
    Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, heldL2.tier),
    Effect.provide(TestBus.layer(hub))
  )
  const bBus = yield* ChaosBus.wrap(TestBus.make(hub))
  const b = yield* TieredCache.make({ instanceId: "B" }).pipe(
    Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, l2),
    Effect.provideService(InvalidationBus.InvalidationBus, bBus)
  )
  return { a, b, hub, bBus, arm: heldL2.arm }
})

/** Lets the other fibers run until `done` holds. */
const until = (done: Effect.Effect<boolean>) =>
  Effect.gen(function* () {
    for (let i = 0; i < 1000 && !(yield* done); i++) yield* Effect.yieldNow()
    expect(yield* done).toBe(true)
  })

describe("a tag's time read across a resync of the reader", () => {
  for (const read of ["get", "getMany"] as const) {
    it.scoped(`${read}: an answer read before the resync is not kept as the tag's time`, () =>
      Effect.gen(function* () {
        const { a, b, hub, bBus, arm } = yield* world
        yield* b.set("k", 1, { tags: ["t"] })
        // A reads k from L2 and the tag's record (none yet), whose answer is held on its way.
        const hold = yield* arm
        const reading = yield* Effect.fork(
          read === "get" ? Effect.asVoid(a.get("k")) : Effect.asVoid(a.getMany(["k"]))
        )
        yield* hold.reached
        // B invalidates the tag; its message never reaches A, whose bus then reconnects.
        yield* bBus.drop(true)
        yield* b.invalidateTag("t")
        yield* bBus.drop(false)
        yield* hub.reconnect
        yield* until(Effect.map(a.invalidationStats, (s) => s.resyncs === 1))
        // The held answer (the tag never invalidated) lands after the resync.
        yield* hold.release
        yield* Fiber.join(reading)
        // Every instance refuses k now, A as B: A reads the tag's time again.
        expect(yield* b.get("k")).toEqual(Option.none())
        expect(yield* a.get("k")).toEqual(Option.none())
        expect(yield* a.getMany(["k"])).toEqual([Option.none()])
      })
    )
  }
})
