/**
 * A read overlapping an invalidation of its key, against a real Redis (issue: after
 * `set(k)`, dropping k from L1 and running `invalidate(k)` and `get(k)` at once, `get(k)` kept
 * answering the old value from L1 although Redis held nothing).
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option, Schema } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const instance = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
  const context = yield* Layer.build(
    TieredCache.layer({ instanceId: "race" }).pipe(
      Layer.provide(
        Layer.merge(
          Layer.succeed(Tier.L1, l1),
          RedisTier.layer({ prefix: "race:" }).pipe(Layer.provide(connectionLayer()))
        )
      )
    )
  )
  return { cache: Context.get(context, TieredCache.TieredCache), l1 }
})

type Cache = TieredCache.TieredCache.Service

const reads: ReadonlyArray<
  readonly [string, (cache: Cache, key: string) => Effect.Effect<unknown, unknown>]
> = [
  ["get", (c, k) => c.get(k)],
  ["getTyped", (c, k) => c.getTyped(k, Schema.String)],
  ["getMany", (c, k) => c.getMany([k])],
  ["getOrCompute", (c, k) => c.getOrCompute(k, Effect.succeed("computed"))]
]

describe("a read overlapping invalidate on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    for (const [name, read] of reads) {
      it.scoped(`${name} + invalidate, 100 times: neither L1 nor Redis keeps the old value`, () =>
        Effect.gen(function* () {
          const look = yield* observer
          const { cache, l1 } = yield* instance
          for (let i = 0; i < 100; i++) {
            const key = `${name}:${i}`
            yield* cache.set(key, "old", { ttl: "1 minute" })
            yield* l1.remove([key])
            yield* Effect.all(
              i % 2 === 0
                ? [Effect.either(read(cache, key)), cache.invalidate(key)]
                : [cache.invalidate(key), Effect.either(read(cache, key))],
              { concurrency: "unbounded" }
            )
            const inL1 = yield* l1.get(key)
            expect([i, Option.map(inL1, (e) => e.value)]).not.toEqual([i, Option.some("old")])
            const inRedis = yield* Effect.promise(() => look.get(`race:${key}`))
            expect([i, inRedis?.includes('"old"') === true]).toEqual([i, false])
            expect([i, yield* cache.get(key)]).not.toEqual([i, Option.some("old")])
          }
        })
      )
    }
  })
})
