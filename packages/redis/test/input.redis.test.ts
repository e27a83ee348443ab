import { describe, expect, layer } from "@effect/vitest"
import { Glob, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, RedisServer } from "@tiercache/testing"
import { Context, Duration, Effect, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const PREFIX = "in:"

/** Each instance's own connections, RedisTier (prefix `in:`) and bus, as on its own machine. */
const Shared = Layer.merge(RedisTier.layer({ prefix: PREFIX }), RedisInvalidationBus.layer()).pipe(
  Layer.provide(connectionLayer())
)

/** One instance with a MemoryTier L1 (returned too, to look at what it holds). */
const instance = (instanceId: string) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 1_000 })
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1), Layer.fresh(Shared)))
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1 }
  })

/** The keys Redis holds under the cache's prefix and `base`, without the prefix, sorted. */
const redisKeys = (look: Redis, base: string) =>
  Effect.promise(async () =>
    (await look.keys(`${Glob.escape(PREFIX + base)}*`)).map((k) => k.slice(PREFIX.length)).sort()
  )

let n = 0
const fresh = (name: string) => `${name}:${Date.now().toString(36)}:${++n}:`

describe("TieredCache input on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("invalidatePattern removes from every L1 exactly the keys SCAN MATCH removes from Redis", () =>
      Effect.gen(function* () {
        const a = yield* instance("a")
        const b = yield* instance("b")
        const look = yield* observer
        const base = fresh("u")
        const keys = [`${base}日本`, `${base}é`, `${base}e`, `${base}日`].sort()
        for (const key of keys) yield* a.cache.set(key, key, { ttl: "1 minute" })
        yield* MultiInstance.settle([a.cache, b.cache], { pause: Effect.sleep("1 millis"), rounds: 2000 })
        for (const key of keys) expect(yield* b.cache.get(key)).toEqual(Option.some(key)) // in b's L1 now
        const inL1 = (i: { l1: Tier.Tier.Service }) =>
          Effect.map(
            Effect.forEach(keys, (key) => i.l1.get(key)),
            (found) => keys.filter((_, j) => Option.isSome(found[j]!))
          )
        const settled = (expected: ReadonlyArray<string>) =>
          Effect.gen(function* () {
            for (let i = 0; i < 2000; i++) {
              const [ka, kb] = [yield* inL1(a), yield* inL1(b)]
              if (ka.join() === expected.join() && kb.join() === expected.join()) break
              yield* Effect.sleep("1 millis")
            }
            expect(yield* redisKeys(look, base)).toEqual(expected)
            expect(yield* inL1(a)).toEqual(expected)
            expect(yield* inL1(b)).toEqual(expected)
          })

        // 日 is three bytes: `日?` matches none of these keys in Redis, and so in no L1.
        yield* a.cache.invalidatePattern(`${Glob.escape(base)}日?`)
        yield* settled(keys)
        expect(yield* a.cache.get(`${base}日本`)).toEqual(Option.some(`${base}日本`))
        // é is two bytes: `??` matches it (and nothing else here) in Redis, and so in every L1.
        yield* a.cache.invalidatePattern(`${Glob.escape(base)}??`)
        const left = keys.filter((k) => k !== `${base}é`)
        yield* settled(left)
        expect(yield* b.cache.get(`${base}é`)).toEqual(Option.none())
        // `日???` matches 日本 (six bytes) but not 日 (three).
        yield* b.cache.invalidatePattern(`${Glob.escape(base)}日???`)
        yield* settled(left.filter((k) => k !== `${base}日本`))
      })
    )

    it.scoped("keys with lone surrogates are refused, so they never share one Redis entry", () =>
      Effect.gen(function* () {
        const a = yield* instance("a")
        const look = yield* observer
        const base = fresh("lone")
        for (const key of [`${base}k\uD800`, `${base}k\uDBFF`, `${base}\uDC00`]) {
          const error = yield* Effect.flip(a.cache.set(key, key))
          expect(error).toMatchObject({ _tag: "CacheInputError", problem: "InvalidKey" })
          expect(yield* Effect.flip(a.cache.getOrCompute(key, Effect.succeed(1)))).toMatchObject({
            _tag: "CacheInputError"
          })
        }
        expect(yield* redisKeys(look, base)).toEqual([])
        // The key Redis would have stored them under stays a key of its own.
        yield* a.cache.set(`${base}k\uFFFD`, "replacement", { ttl: "1 minute" })
        expect(yield* redisKeys(look, base)).toEqual([`${base}k\uFFFD`])
      })
    )

    it.scoped(
      "a TTL plus grace over 2^52 ms is refused at the call; the breaker stays closed; the bound works",
      () =>
        Effect.gen(function* () {
          const a = yield* instance("a")
          const look = yield* observer
          const base = fresh("ttl")
          const tooLong = [
            { ttl: 1e300 },
            { ttl: Duration.millis(1e300) },
            { ttl: 2 ** 52 + 1 },
            { ttl: 2 ** 52, grace: 1 },
            { ttl: 1_000, grace: 2 ** 52 },
            { ttl: "1 minute", grace: Duration.days(1e12) }
          ] as const
          for (let round = 0; round < 2; round++) {
            for (const options of tooLong) {
              const error = yield* Effect.flip(a.cache.set(`${base}big`, "v", options))
              expect(error).toMatchObject({ _tag: "CacheInputError", problem: "InvalidTtl" })
              expect((error as Error).message).toContain("2^52 ms")
              const computed = yield* Effect.flip(
                a.cache.getOrCompute(`${base}big`, Effect.succeed("v"), options)
              )
              expect(computed).toMatchObject({ _tag: "CacheInputError", problem: "InvalidTtl" })
            }
          }
          expect(yield* redisKeys(look, base)).toEqual([])
          const stats = yield* a.cache.stats
          expect(stats.breakers).toEqual({ redis: "closed" })
          expect(stats.tierErrors).toEqual({})
          // Normal writes still reach Redis.
          yield* a.cache.set(`${base}normal`, "n", { ttl: "1 minute" })
          expect(yield* Effect.promise(() => look.exists(`${PREFIX}${base}normal`))).toBe(1)

          // At the bound: stored in Redis with that lifetime, and read back from it.
          yield* a.cache.set(`${base}max`, "m", { ttl: 2 ** 52 - 1_000, grace: 1_000 })
          const pttl = yield* Effect.promise(() => look.pttl(`${PREFIX}${base}max`))
          expect(pttl).toBeGreaterThan(2 ** 52 - 60_000)
          expect(pttl).toBeLessThanOrEqual(2 ** 52)
          const b = yield* instance("b")
          expect(yield* b.cache.get(`${base}max`)).toEqual(Option.some("m"))
          expect((yield* a.cache.stats).tierErrors).toEqual({})
        })
    )
  })
})
