/**
 * An invalidation overlapping the background Redis write of a computed value (getOrCompute
 * answers once L1 holds the value): once the invalidation has returned, Redis holds nothing.
 * The Redis writes are slowed at random through ChaosTier so that the two overlap.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, RedisServer } from "@tiercache/testing"
import { Context, Duration, Effect, Layer, Random } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const instance = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
  const connection = yield* Layer.build(connectionLayer())
  const redis = yield* RedisTier.make({ prefix: "over:" }).pipe(
    Effect.provideService(
      RedisConnection.RedisConnection,
      Context.get(connection, RedisConnection.RedisConnection)
    )
  )
  const chaos = yield* ChaosTier.wrap(redis)
  const context = yield* Layer.build(
    TieredCache.layer({ instanceId: "overtake" }).pipe(
      Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1), Layer.succeed(Tier.L2, chaos)))
    )
  )
  return { cache: Context.get(context, TieredCache.TieredCache), l1, chaos }
})

type Cache = TieredCache.TieredCache.Service

const kinds: ReadonlyArray<readonly [string, (cache: Cache, key: string) => Effect.Effect<void, unknown>]> = [
  ["invalidate", (c, k) => c.invalidate(k)],
  ["invalidateMany", (c, k) => c.invalidateMany(["other", k])],
  ["invalidatePattern", (c, k) => c.invalidatePattern(`${k.slice(0, k.indexOf(":") + 1)}*`)],
  ["clear", (c) => c.clear]
]

describe("an invalidation overtaking a computed value's Redis write", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    for (const [name, invalidate] of kinds) {
      it.scoped(`${name}, 100 times: once it returned, Redis holds nothing`, () =>
        Effect.gen(function* () {
          const look = yield* observer
          const { cache, chaos } = yield* instance
          for (let i = 0; i < 100; i++) {
            const key = `${name}${i}:k`
            yield* chaos.delay("set", Duration.millis(yield* Random.nextIntBetween(0, 8)))
            yield* cache.getOrCompute(key, Effect.succeed(`v${i}`), { ttl: "1 minute" })
            yield* invalidate(cache, key)
            expect([i, yield* Effect.promise(() => look.get(`over:${key}`))]).toEqual([i, null])
          }
          // Nothing landed after its invalidation either.
          yield* Effect.sleep("50 millis")
          expect(yield* Effect.promise(() => look.keys("over:*"))).toEqual([])
        })
      )
    }
  })
})
