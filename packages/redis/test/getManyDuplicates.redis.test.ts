/**
 * getMany with a key listed more than once, against a real Redis: each distinct key is read
 * once (Redis's own count of key lookups says so), answered at every position that lists it;
 * every listing counts as a request, a promotion or a decode error once per key.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option, Schema } from "effect"
import type { Redis } from "ioredis"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const prefix = "dup:"

/** Redis's count of key lookups that found a key / found none, and of script calls. */
const lookups = (look: Redis) =>
  Effect.promise(async () => {
    const stats = (await look.info("stats")) as string
    const commands = (await look.info("commandstats")) as string
    const field = (text: string, name: string) => Number(new RegExp(`${name}:(\\d+)`).exec(text)?.[1] ?? 0)
    const calls = (name: string) =>
      Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(commands)?.[1] ?? 0)
    return {
      hits: field(stats, "keyspace_hits"),
      misses: field(stats, "keyspace_misses"),
      scripts: calls("evalsha") + calls("eval") + calls("fcall")
    }
  })

/** How `read` moved Redis's counts. */
const moved = <A, E, R>(look: Redis, read: Effect.Effect<A, E, R>) =>
  Effect.gen(function* () {
    const before = yield* lookups(look)
    const answer = yield* read
    const after = yield* lookups(look)
    return {
      answer,
      hits: after.hits - before.hits,
      misses: after.misses - before.misses,
      scripts: after.scripts - before.scripts
    }
  })

/** A cache over MemoryTier and RedisTier, for the test's scope. */
const build = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
  const context = yield* Layer.build(
    TieredCache.layer({ instanceId: "dup" }).pipe(
      Layer.provide(
        Layer.merge(
          Layer.succeed(Tier.L1, l1),
          RedisTier.layer({ prefix }).pipe(Layer.provide(connectionLayer()))
        )
      )
    )
  )
  return { cache: Context.get(context, TieredCache.TieredCache), l1 }
})

const some = Option.some
const none = Option.none()

describe("getMany with a key listed twice on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("each distinct key read once: Redis's lookups as for the list without repeats", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const { cache, l1 } = yield* build
        yield* cache.set("a", "A", { ttl: "1 minute" })
        yield* cache.set("b", "B", { ttl: "1 minute" })
        yield* l1.clear
        const once = yield* moved(look, cache.getMany(["a", "b", "x"]))
        expect(once.answer).toEqual([some("A"), some("B"), none])
        yield* l1.clear
        const twice = yield* moved(look, cache.getMany(["a", "b", "a", "x", "x", "a"]))
        expect(twice.answer).toEqual([some("A"), some("B"), some("A"), none, none, some("A")])
        expect([twice.hits, twice.misses, twice.scripts]).toEqual([once.hits, once.misses, once.scripts])
        const stats = yield* cache.stats
        // 3 + 6 requests; promotions once per key and call.
        expect([stats.requests, stats.l1Hits, stats.l2Hits, stats.misses, stats.promotions]).toEqual([
          9, 0, 6, 3, 4
        ])
        // Promoted: the next call reads Redis for x alone, once.
        const xOnly = yield* moved(look, cache.getMany(["x"]))
        const fromL1 = yield* moved(look, cache.getMany(["x", "a", "x", "a"]))
        expect(fromL1.answer).toEqual([none, some("A"), none, some("A")])
        expect([fromL1.hits, fromL1.misses, fromL1.scripts]).toEqual([
          xOnly.hits,
          xOnly.misses,
          xOnly.scripts
        ])
        // Redis counts a lookup per key read (a and b found, x not): the counts can tell.
        expect(once.hits).toBeGreaterThanOrEqual(2)
        expect(once.misses).toBeGreaterThanOrEqual(1)
      })
    )

    it.scoped("typed, the key's data in Redis not decoding: a miss at each position, one decode error", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const { cache, l1 } = yield* build
        yield* cache.set("t", "text", { ttl: "1 minute" })
        yield* cache.set("n", 7, { ttl: "1 minute" })
        yield* l1.clear
        // Foreign data under the prefix: not an entry at all.
        yield* Effect.promise(() => look.set(`${prefix}g`, "garbage {", "PX", 60_000))
        expect(yield* cache.getMany(["t", "n", "g", "t", "g", "n"], Schema.Number)).toEqual([
          none,
          some(7),
          none,
          none,
          none,
          some(7)
        ])
        const stats = yield* cache.stats
        expect([stats.requests, stats.l2Hits, stats.misses, stats.decodeErrors, stats.promotions]).toEqual([
          6, 2, 4, 1, 1
        ])
        expect(yield* l1.get("t")).toEqual(none)
        expect(yield* cache.getMany(["t", "t"])).toEqual([some("text"), some("text")])
      })
    )

    it.scoped(
      "invalidate racing getMany of a key listed twice, 100 times: both positions agree, nothing old kept",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const { cache, l1 } = yield* build
          for (let i = 0; i < 100; i++) {
            const key = `race:${i}`
            yield* cache.set(key, "old", { ttl: "1 minute" })
            yield* cache.set("other", "O", { ttl: "1 minute" })
            yield* l1.clear
            const read = cache.getMany([key, "other", key])
            const [answers] = yield* Effect.all(
              i % 2 === 0
                ? [read, cache.invalidate(key)]
                : [Effect.zipRight(Effect.yieldNow(), read), cache.invalidate(key)],
              { concurrency: "unbounded" }
            )
            expect([i, answers[1]]).toEqual([i, some("O")])
            expect([i, answers[0]]).toEqual([i, answers[2]])
            expect([i, yield* l1.get(key)]).toEqual([i, none])
            expect([i, yield* Effect.promise(() => look.exists(`${prefix}${key}`))]).toEqual([i, 0])
            expect([i, yield* cache.getMany([key, key])]).toEqual([i, [none, none]])
          }
        })
    )
  })
})
