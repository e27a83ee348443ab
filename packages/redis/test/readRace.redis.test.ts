/**
 * A read overlapping an invalidation of its key, against a real Redis (issue: after
 * `set(k)`, dropping k from L1 and running `invalidate(k)` and `get(k)` at once, `get(k)` kept
 * answering the old value from L1 although Redis held nothing); and a read on one instance
 * overlapping another instance's change of its key, told over the bus.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Equal, Layer, Option, Schema } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, redisInstance } from "./utils.js"

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

// README (What a read accepts): a value found below L1 is stored above only if no write or
// invalidation of its key began or ended while the read ran; one from another instance reaches
// this one as a bus message, applied here as a change. A's read of Redis overlapping B's change
// must not leave A's L1 with the old value once B's message has arrived.
describe("a read on one instance overlapping another instance's change on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    const changes: ReadonlyArray<
      readonly [string, (cache: Cache, key: string) => Effect.Effect<unknown, unknown>]
    > = [
      ["set", (c, k) => c.set(k, "new")],
      ["update", (c, k) => c.update(k, "new")],
      ["invalidate", (c, k) => c.invalidate(k)],
      ["invalidatePattern", (c, k) => c.invalidatePattern(`${k}*`)],
      ["invalidateTag", (c, k) => c.invalidateTag(`t:${k}`)]
    ]
    for (const [readName, read] of reads) {
      for (const [changeName, change] of changes) {
        it.scoped(`${readName} on A + ${changeName} on B, 40 times: A never keeps the old value`, () =>
          Effect.gen(function* () {
            const a = yield* redisInstance(`a-${readName}-${changeName}`)
            const b = yield* redisInstance(`b-${readName}-${changeName}`)
            const wrong: Array<unknown> = []
            for (let i = 0; i < 40; i++) {
              const key = `across:${readName}:${changeName}:${i}`
              yield* b.cache.set(key, "old", { ttl: "1 minute", tags: [`t:${key}`] })
              yield* a.l1.remove([key])
              yield* Effect.all(
                i % 2 === 0
                  ? [Effect.either(read(a.cache, key)), change(b.cache, key)]
                  : [change(b.cache, key), Effect.either(read(a.cache, key))],
                { concurrency: "unbounded" }
              )
              // B's message reaches A within a second; from then on A answers as B does (what B
              // left, or what A's computation stored after it), never the old value.
              const settled = yield* eventually(
                Effect.flatMap(Effect.zip(a.cache.get(key), b.cache.get(key)), ([x, y]) =>
                  Equal.equals(x, y) && !Equal.equals(x, Option.some("old")) ? Effect.void : Effect.fail(x)
                ),
                "1 second"
              ).pipe(Effect.isSuccess)
              if (!settled) wrong.push([i, yield* a.cache.get(key)])
            }
            expect(wrong).toEqual([])
          })
        )
      }
    }
  })
})
