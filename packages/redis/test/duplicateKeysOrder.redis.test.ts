/**
 * A write naming one key twice (a `setMany` or `remove` batch listing it twice, `writeIfNewer`'s
 * changes, the cache's `invalidateMany`) while a large write of that key is in flight: it waited
 * for its own registration in the key order (keyOrder.ts), for good. It now lands after the
 * large write, within a bounded time, and what Redis holds is what was called last.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const prefix = "dko:"

/** Values of 1 KiB or more are large (written on the large-value connection). */
const largeValueBytes = 1024

const largeValue = "x".repeat(5_000)

/** A RedisTier alone, keys under `prefix`. */
const tierAlone = Effect.map(
  Layer.build(RedisTier.layer({ prefix }).pipe(Layer.provide(connectionLayer({ largeValueBytes })))),
  (context) => Context.get(context, Tier.L2)
)

/** A cache over MemoryTier and RedisTier, keys under `prefix`. */
const cacheOver = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
  const context = yield* Layer.build(
    TieredCache.layer({ instanceId: "dko" }).pipe(
      Layer.provide(
        Layer.merge(
          Layer.succeed(Tier.L1, l1),
          RedisTier.layer({ prefix }).pipe(Layer.provide(connectionLayer({ largeValueBytes })))
        )
      )
    )
  )
  return Context.get(context, TieredCache.TieredCache)
})

/**
 * `effect` in a fiber of its own, waited for at most 5 s: a write that waits for itself never
 * ends, and the cache's writes are uninterruptible (a timeout on them, or the end of a parent
 * fiber that interrupts it, would wait as long).
 */
const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.flatMap(Effect.forkDaemon(effect), (fiber) =>
    Fiber.join(fiber).pipe(
      Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("still waiting after 5 s") })
    )
  )

/**
 * `then` called while a large write of `key` is in flight (called just before it, its entry
 * dated a second ago: older than what `then` writes).
 */
const duringLargeWrite = <A, E>(
  write: (key: string, entry: Entry.Entry) => Effect.Effect<void, unknown>,
  key: string,
  then: Effect.Effect<A, E>
) =>
  Effect.map(
    Effect.all(
      [write(key, Entry.make({ value: largeValue, now: Date.now() - 1_000, ttlMs: 60_000 })), bounded(then)],
      { concurrency: "unbounded" }
    ),
    ([, a]) => a
  )

const entry = (value: string) => Entry.make({ value, now: Date.now(), ttlMs: 60_000 })

/** The value of the entry Redis holds under `key` (null when none). */
const stored = (key: string) =>
  Effect.gen(function* () {
    const look = yield* observer
    const raw = yield* Effect.promise(() => look.get(prefix + key))
    return raw === null ? null : (Entry.deserialize(raw)?.value ?? "not an entry")
  })

describe("a write naming a key twice while a large write of it is in flight", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("RedisTier.setMany: lands after the large write, its later entry kept", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        yield* duringLargeWrite(
          tier.set,
          "many",
          tier.setMany([
            ["many", entry("first")],
            ["other", entry("other")],
            ["many", entry("second")]
          ])
        )
        expect(yield* stored("many")).toBe("second")
        expect(yield* stored("other")).toBe("other")
        expect(Option.map(yield* tier.get("many"), (e) => e.value)).toEqual(Option.some("second"))
      })
    )

    it.scoped("RedisTier.remove: lands after the large write", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        yield* tier.set("other-removed", entry("other"))
        yield* duringLargeWrite(tier.set, "removed", tier.remove(["removed", "other-removed", "removed"]))
        expect(yield* stored("removed")).toBeNull()
        expect(yield* stored("other-removed")).toBeNull()
      })
    )

    it.scoped("RedisTier.writeIfNewer: lands after the large write, its later change kept", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const first = entry("first")
        const second = entry("second")
        const applied = yield* duringLargeWrite(
          tier.set,
          "recovered",
          tier.writeIfNewer!([
            { key: "recovered", entry: first, at: first.createdAt },
            { key: "recovered", entry: second, at: second.createdAt }
          ])
        )
        expect(applied).toEqual([true, true])
        expect(yield* stored("recovered")).toBe("second")
        // With no large write in flight: writeIfNewer always takes the key order.
        const third = entry("third")
        yield* bounded(
          tier.writeIfNewer!([
            { key: "recovered", entry: undefined, at: third.createdAt - 1 },
            { key: "recovered", entry: third, at: third.createdAt }
          ])
        )
        expect(yield* stored("recovered")).toBe("third")
      })
    )

    // What a user saw: invalidateMany with a key listed twice, called during a large set of that
    // key, never returned (the cache's writes are uninterruptible: no timeout ended it either).
    it.scoped("TieredCache.invalidateMany: returns, and no tier keeps the large value", () =>
      Effect.gen(function* () {
        const cache = yield* cacheOver
        yield* Effect.all(
          [cache.set("hot", largeValue), bounded(cache.invalidateMany(["hot", "cold", "hot"]))],
          { concurrency: "unbounded", discard: true }
        )
        expect(yield* stored("hot")).toBeNull()
        expect(yield* cache.get("hot")).toEqual(Option.none())
      })
    )
  })
})
