/**
 * Batches far larger than one command should carry: RedisTier sends them in chunks, and each
 * chunk is bounded by the command timeout as a lone command is, so that a healthy Redis never
 * fails a large batch for its size.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Duration, Effect, Either, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

/**
 * A short command timeout: a batch bounded as a whole by it fails on size alone, while a chunk
 * (1,000 commands, or one UNLINK of 1,000 keys) takes up to about 140 ms in a cold process.
 */
const COMMAND_TIMEOUT = Duration.millis(300)
const Connection = connectionLayer({ commandTimeout: COMMAND_TIMEOUT })
const Env = Layer.mergeAll(
  Connection,
  RedisTier.layer({ prefix: "lb:" }).pipe(Layer.provide(Connection))
).pipe(Layer.provideMerge(RedisServer.layer()))

/** One cache instance on connections of its own (default timeouts), with its MemoryTier L1. */
const instance = (instanceId: string) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100_000 })
    const shared = Layer.merge(RedisTier.layer({ prefix: "lb:" }), RedisInvalidationBus.layer()).pipe(
      Layer.provide(connectionLayer())
    )
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1), shared)))
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1 }
  })

/** Writes `keys` (under the prefix) straight into Redis, 10,000 per pipeline. */
const plant = (look: Redis, keys: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const value = Entry.serialize(Entry.make({ value: 1, now: Date.now(), ttlMs: 600_000 }))
    for (let i = 0; i < keys.length; i += 10_000) {
      const pipeline = look.pipeline()
      for (const key of keys.slice(i, i + 10_000)) pipeline.set(`lb:${key}`, value, "PX", 600_000)
      yield* Effect.promise(() => pipeline.exec())
    }
  })

/**
 * How many of `keys` the tier answers to as many gets at once, then to one getMany (the reason
 * of its failure when it fails).
 */
const answered = (tier: Tier.Tier.Service, keys: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const each = yield* Effect.forEach(keys, (key) => Effect.either(tier.get(key)), {
      concurrency: "unbounded"
    })
    const many = yield* Effect.either(tier.getMany(keys))
    return {
      each: each.filter((r) => Either.isRight(r) && Option.isSome(r.right)).length,
      many: Either.isRight(many) ? many.right.filter(Option.isSome).length : many.left.reason
    }
  })

describe("RedisTier batches far larger than one command", () => {
  layer(Env, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "remove of 400,000 keys succeeds within a 300 ms command timeout (each chunk bounded alone)",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const keys = Array.from({ length: 400_000 }, (_, i) => `key:${i}`)
          yield* plant(look, keys)
          const removed = yield* Effect.either(tier.remove(keys))
          expect(Either.isRight(removed) ? "removed" : removed.left.reason).toBe("removed")
          expect(yield* Effect.promise(() => look.dbsize())).toBe(0)
        })
    )

    it.scoped(
      "invalidateMany of many keys tells the other instances in messages of bounded size: no subscriber is dropped",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          // Redis drops a Pub/Sub subscriber whose pending output passes its limit (32 MB by
          // default: a RemoveBulk of some 300,000 keys); here the limit is 256 kB, for 20,000 keys.
          yield* Effect.acquireRelease(
            Effect.promise(() => look.config("SET", "client-output-buffer-limit", "pubsub 256kb 0 0")),
            () => Effect.promise(() => look.config("SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60"))
          )
          const a = yield* instance("a")
          const b = yield* instance("b")
          const keys = Array.from({ length: 20_000 }, (_, i) => `user:${i}:profile:settings`)
          yield* plant(look, keys)
          // b holds every key in its L1.
          expect((yield* b.cache.getMany(keys)).every(Option.isSome)).toBe(true)
          yield* a.cache.invalidateMany(keys)
          // b's L1 lets go of every key (by the messages, or by the resync of a dropped subscriber).
          yield* eventually(
            Effect.flatMap(b.l1.getMany(keys), (found) =>
              found.some(Option.isSome) ? Effect.fail("still held") : Effect.void
            )
          )
          yield* Effect.sleep("200 millis")
          expect((yield* b.cache.invalidationStats).resyncs).toBe(0)
          expect((yield* a.cache.invalidationStats).resyncs).toBe(0)
          expect(yield* Effect.promise(() => look.dbsize())).toBe(0)
        })
    )

    it.scoped(
      "getMany of 160 values of 100 kB (16 MB), and 160 gets of them at once, answer them all within a 300 ms command timeout",
      () =>
        Effect.gen(function* () {
          // Before: a script call answered every value of its keys (512 for getMany, 64 for the
          // gets of one tick), whatever their size below largeValueBytes: 16 MB copied into the
          // script took longer than the command timeout, and every key was a miss (a tier
          // failure each time).
          const tier = yield* Tier.L2
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const now = Date.now()
          const value = Entry.serialize(Entry.make({ value: "x".repeat(100_000), now, ttlMs: 600_000 }))
          const keys = Array.from({ length: 160 }, (_, i) => `mid:${i}`)
          const pipeline = look.pipeline()
          for (const key of keys) pipeline.set(`lb:${key}`, value, "PX", 600_000)
          yield* Effect.promise(() => pipeline.exec())
          expect(yield* answered(tier, keys)).toEqual({ each: 160, many: 160 })
        })
    )

    it.scoped(
      "50 gets at once, and a getMany, of large values the tier wrote answer them all within a 300 ms command timeout",
      () =>
        Effect.gen(function* () {
          // Before: with the tier's large-value marker set, the read script took each key's first
          // largeValueBytes (GETRANGE) into the script, for every key of its call: 50 of 512 kB
          // (25 MB) passed the command timeout, and every key of the call was a miss. Now a call
          // stops once it has read about largeValueBytes, large values' first bytes included.
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const tier = yield* Effect.flatMap(
            Layer.build(connectionLayer({ commandTimeout: COMMAND_TIMEOUT, largeValueBytes: 524_288 })),
            (context) => Effect.provide(RedisTier.make({ prefix: "big:" }), context)
          )
          const now = Date.now()
          const keys = Array.from({ length: 50 }, (_, i) => `big:${i}`)
          const entry = Entry.make({ value: "y".repeat(600_000), now, ttlMs: 600_000 })
          yield* tier.setMany(keys.map((key) => [key, entry] as const))
          expect(yield* Effect.promise(() => look.exists("big:__tiercache:large"))).toBe(1)
          expect(yield* answered(tier, keys)).toEqual({ each: 50, many: 50 })
        })
    )

    it.scoped(
      "setMany of 200,000 entries succeeds within a 300 ms command timeout (each chunk bounded alone)",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const now = Date.now()
          const entries = Array.from(
            { length: 200_000 },
            (_, i) => [`set:${i}`, Entry.make({ value: i, now, ttlMs: 600_000 })] as const
          )
          const written = yield* Effect.either(tier.setMany(entries))
          expect(Either.isRight(written) ? "written" : written.left.reason).toBe("written")
          expect(yield* Effect.promise(() => look.dbsize())).toBe(200_000)
          const last = yield* tier.get("set:199999")
          expect(Option.map(last, (e) => e.value)).toEqual(Option.some(199_999))
        })
    )
  })
})
