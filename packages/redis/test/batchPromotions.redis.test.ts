/**
 * getMany over three tiers (MemoryTier, RedisTier, an in-memory third tier) while Redis takes no
 * writes (CLIENT PAUSE WRITE, as a Redis stuck on a long command or paused would): the keys found
 * in the third tier are promoted into Redis at once, so the batch waits one command timeout for
 * those writes, not one per key.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer, TestTier } from "@tiercache/testing"
import { Context, Effect, Layer, Logger, LogLevel, Option } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { connectionLayer, observer, timed } from "./utils.js"

describe("getMany promoting into a Redis that takes no writes", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "20 keys found in the third tier: answered within a few command timeouts (500 ms), not 20",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const connection = yield* Layer.build(connectionLayer())
          const redis = yield* RedisTier.make().pipe(
            Effect.provideService(
              RedisConnection.RedisConnection,
              Context.get(connection, RedisConnection.RedisConnection)
            )
          )
          const l3 = yield* TestTier.make({ name: "l3" })
          const now = Date.now()
          const keys = Array.from({ length: 20 }, (_, i) => `k${i}`)
          for (const key of keys) yield* l3.plant(key, Entry.make({ value: key, now, ttlMs: 600_000 }))
          // A breaker that stays closed through the batch's failures: each write is sent and times out.
          const cache = yield* TieredCache.make({ breaker: { failureThreshold: 100 } }).pipe(
            Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
            Effect.provideService(Tier.L2, redis),
            Effect.provideService(Tier.Tiers, [l3])
          )
          yield* Effect.acquireRelease(
            Effect.promise(() => look.call("CLIENT", "PAUSE", "20000", "WRITE")),
            () => Effect.promise(() => look.call("CLIENT", "UNPAUSE"))
          )
          // Before: each promotion into Redis waited out its timeout in turn (20 x 500 ms).
          const [ms, answers] = yield* timed(
            cache.getMany(keys).pipe(Logger.withMinimumLogLevel(LogLevel.Error))
          )
          expect(answers).toEqual(keys.map((key) => Option.some(key)))
          expect(ms).toBeLessThan(4_000)
          // Promoted into L1 all the same.
          expect((yield* cache.getMany(keys)).every(Option.isSome)).toBe(true)
          expect((yield* cache.stats).l1Hits).toBe(20)
        })
    )
  })
})
