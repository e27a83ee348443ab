/**
 * getMany attacked as a user would, against a real Redis: what it answers must be what `get` of
 * each key answers, in the position of the key; and it must end.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Interruptions, RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

/** An instance on the suite's Redis: MemoryTier over RedisTier, with the bus when asked. */
const instance = (
  id: string,
  prefix: string,
  options: { readonly bus?: boolean; readonly largeValueBytes?: number } = {}
) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const connection = connectionLayer({
      keyPrefix: prefix,
      ...(options.largeValueBytes === undefined ? {} : { largeValueBytes: options.largeValueBytes })
    })
    const shared =
      options.bus === true ? Layer.merge(RedisTier.layer(), RedisInvalidationBus.layer()) : RedisTier.layer()
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId: id }).pipe(
        Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1), shared.pipe(Layer.provide(connection))))
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1 }
  })

describe("getMany hunt on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("foreign data under the prefix: getMany answers each key as get does", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const { cache, l1 } = yield* instance("f", "f:", { largeValueBytes: 1024 })
        yield* cache.set("ok", "OK", { ttl: "1 minute" })
        const now = Date.now()
        const env = (o: object) => JSON.stringify(o)
        const foreign: Record<string, string> = {
          garbage: "garbage {",
          number: "12",
          array: "[1,2]",
          nul: "null",
          noV: env({ e: now + 60_000, s: now + 60_000, c: now }),
          badTags: env({ v: 1, e: now + 60_000, s: now + 60_000, c: now, t: [1] }),
          strTags: env({ v: 1, e: now + 60_000, s: now + 60_000, c: now, t: "abc" }),
          sBeforeE: env({ v: 1, e: now + 60_000, s: now, c: now }),
          expired: env({ v: 1, e: now - 1, s: now - 1, c: now - 10 }),
          future: env({ v: "F", e: now + 60_000, s: now + 60_000, c: now + 3_600_000 }),
          proto: env({ v: { ["__proto__"]: { x: 1 } }, e: now + 60_000, s: now + 60_000, c: now }),
          bigForeign: "x".repeat(5000),
          bigEntry: env({ v: "y".repeat(5000), e: now + 60_000, s: now + 60_000, c: now }),
          empty: ""
        }
        for (const [key, value] of Object.entries(foreign)) {
          yield* Effect.promise(() => look.set(`f:${key}`, value, "PX", 60_000))
        }
        yield* Effect.promise(() => look.hset("f:hash", "a", "1"))
        yield* Effect.promise(() => look.rpush("f:list", "a"))
        yield* Effect.promise(() =>
          look.set("f:noexpiry", env({ v: "N", e: now + 60_000, s: now + 60_000, c: now }))
        )
        const keys = ["ok", ...Object.keys(foreign), "hash", "list", "noexpiry", "missing", "ok"]
        const gets: Array<Option.Option<unknown>> = []
        for (const key of keys) {
          yield* l1.clear
          gets.push(yield* cache.get(key))
        }
        yield* l1.clear
        const many = yield* cache.getMany(keys)
        expect(Object.fromEntries(keys.map((k, i) => [k, many[i]]))).toEqual(
          Object.fromEntries(keys.map((k, i) => [k, gets[i]]))
        )
        // With the large-value marker set (a large value written), the batch reads by GETRANGE.
        yield* cache.set("large", "z".repeat(3000), { ttl: "1 minute" })
        yield* l1.clear
        const many2 = yield* cache.getMany(keys)
        expect(Object.fromEntries(keys.map((k, i) => [k, many2[i]]))).toEqual(
          Object.fromEntries(keys.map((k, i) => [k, gets[i]]))
        )
      })
    )

    it.scoped(
      "getMany of 1,200 keys (three script calls), a large value and unknown tags, interrupted at each step, ends",
      () =>
        Effect.gen(function* () {
          // Written by one instance, read by another that has met none of the tags.
          const { cache } = yield* instance("cut", "cut:", { largeValueBytes: 1024 })
          const keys = Array.from({ length: 1200 }, (_, i) => `k${i}`)
          for (const key of keys.slice(0, 50))
            yield* cache.set(key, key, { ttl: "1 minute", tags: [`t${key}`, "shared"] })
          yield* cache.set("k1199", "x".repeat(3000), { ttl: "1 minute" })
          const fresh = yield* instance("cut2", "cut:", { largeValueBytes: 1024 })
          expect(
            yield* Interruptions.hungRuns(() => Effect.zipRight(fresh.l1.clear, fresh.cache.getMany(keys)), {
              pads: 6,
              waits: 16
            })
          ).toEqual([])
          const answers = yield* fresh.cache.getMany(keys)
          expect(answers.filter(Option.isSome).length).toBe(51)
        })
    )

    it.scoped(
      "two instances on one Redis and bus: invalidateTag on one racing getMany on the other, 50 times",
      () =>
        Effect.gen(function* () {
          const a = yield* instance("a", "tb:", { bus: true })
          const b = yield* instance("b", "tb:", { bus: true })
          for (let i = 0; i < 50; i++) {
            const tag = `tag${i}`
            const keys = [`x${i}`, `y${i}`, `z${i}`]
            for (const key of keys) yield* b.cache.set(key, "old", { ttl: "1 minute", tags: [tag] })
            // a has met the tag (never invalidated) and holds nothing in L1.
            yield* a.cache.getMany(keys)
            yield* a.l1.clear
            yield* Effect.all([a.cache.getMany([...keys, ...keys]), b.cache.invalidateTag(tag)], {
              concurrency: "unbounded"
            })
            yield* eventually(
              Effect.flatMap(a.cache.getMany(keys), (answers) =>
                answers.every(Option.isNone)
                  ? Effect.void
                  : Effect.fail(new Error(`${i}: ${JSON.stringify(answers)}`))
              ),
              "2 seconds"
            )
            expect([i, (yield* a.cache.getMany(keys)).every(Option.isNone)]).toEqual([i, true])
          }
        })
    )
  })
})
