/**
 * TestBus hands every payload on its hub to every subscriber, as its doc says: unlike
 * RedisInvalidationBus, it stamps no namespace and drops nothing itself (no message of another
 * namespace, no malformed one); the cache sees them all and counts them.
 */
import { describe, expect, it } from "@effect/vitest"
import type { InvalidationMessage } from "@tiercache/core"
import { Effect, Exit, Option } from "effect"
import { MultiInstance, TestBus } from "../src/index.js"

/** One instance on a fresh TestTier and hub, holding "k" in its L1 only. */
const holdingK = Effect.gen(function* () {
  const { caches, l2, hub } = yield* MultiInstance.make(1)
  const cache = caches[0]!
  yield* cache.set("k", "v")
  yield* l2!.remove(["k"])
  return { cache, hub: hub! }
})

describe("TestBus", () => {
  it.scoped("a message stamped with another namespace reaches the cache and applies to its L1", () =>
    Effect.gen(function* () {
      const { cache, hub } = yield* holdingK
      yield* hub.publishRaw(JSON.stringify({ type: "Remove", key: "k", namespace: "another-app:" }))
      yield* MultiInstance.settle([cache], { hub })
      expect(yield* cache.get("k")).toEqual(Option.none())
      expect((yield* cache.invalidationStats).messagesApplied).toBe(1)
    })
  )

  it.scoped("the cache's own messages go on the hub without a namespace", () =>
    Effect.gen(function* () {
      const { cache, hub } = yield* holdingK
      yield* cache.invalidate("k")
      const sent = (yield* hub.published).map((raw) => JSON.parse(raw) as Record<string, unknown>)
      expect(sent.map((m) => [m.type, "namespace" in m])).toEqual([
        ["Remove", false],
        ["Remove", false]
      ])
    })
  )

  it.scoped("a malformed payload reaches the cache, counted in its invalidationStats", () =>
    Effect.gen(function* () {
      const { cache, hub } = yield* holdingK
      yield* hub.publishRaw("not json")
      yield* MultiInstance.settle([cache], { hub })
      expect((yield* cache.invalidationStats).malformedMessages).toBe(1)
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
    })
  )

  // As RedisInvalidationBus (RedisInvalidationBus.test.ts): a message JSON cannot encode, or none
  // at all from plain JavaScript, is a BusError. TestBus died on a bigint value.
  it.effect("a message that cannot be encoded is a BusError; nothing reaches the hub", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const bus = TestBus.make(hub)
      for (const message of [{ type: "Update", key: "k", value: 1n, ttl_secs: 1 }, null, undefined]) {
        const exit = yield* Effect.exit(
          bus.publish(message as unknown as InvalidationMessage.InvalidationMessage)
        )
        expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
          _tag: "BusError",
          reason: "message cannot be encoded"
        })
      }
      expect(yield* hub.published).toEqual([])
    })
  )
})
