/**
 * Messages that arrive together reach the cache as one chunk (busSubscription.ts): they must
 * still be applied one after the other, in the order Redis delivered them, with malformed and
 * foreign ones counted and skipped in between. Echoes of the cache's own messages may wait a
 * few milliseconds before they are handed over (only counted), but never past the next message.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

const CHANNEL = "burst:invalidate"

const update = (key: string, value: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ type: "Update", key, value, ttl_secs: 60, origin: "elsewhere", ...extra })

describe("a burst of bus messages", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("are applied in order; malformed and foreign ones are counted and skipped", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(
          TieredCache.layer({ instanceId: "receiver" }).pipe(
            Layer.provideMerge(MemoryTier.layer({ maxEntries: 1000 })),
            Layer.provideMerge(
              Layer.merge(
                RedisTier.layer({ prefix: "burst:" }),
                RedisInvalidationBus.layer({ channel: CHANNEL })
              )
            ),
            Layer.provide(connectionLayer())
          )
        )
        const cache = Context.get(context, TieredCache.TieredCache)
        const bus = Context.get(context, RedisInvalidationBus.RedisInvalidationBus)
        const sender = yield* observer
        const rounds = 50
        // Each round, in one pipeline: v1, garbage, Remove, v2, a foreign v3, and the round's
        // marker; the receiver must end every round on v2.
        yield* Effect.promise(() => {
          const pipeline = sender.pipeline()
          for (let r = 0; r < rounds; r++) {
            const key = `k${r}`
            pipeline.publish(CHANNEL, update(key, "v1"))
            pipeline.publish(CHANNEL, `garbage ${r} {`)
            pipeline.publish(CHANNEL, JSON.stringify({ type: "Remove", key, origin: "elsewhere" }))
            pipeline.publish(CHANNEL, update(key, "v2"))
            pipeline.publish(CHANNEL, update(key, "v3", { namespace: "another:" }))
            pipeline.publish(CHANNEL, update(`done${r}`, r))
          }
          return pipeline.exec()
        })
        yield* eventually(
          Effect.flatMap(cache.get(`done${rounds - 1}`), (o) =>
            Option.isSome(o) ? Effect.void : Effect.fail("not yet")
          )
        )
        for (let r = 0; r < rounds; r++) expect(yield* cache.get(`k${r}`)).toEqual(Option.some("v2"))
        const busStats = yield* bus.stats
        expect(busStats.malformedMessages).toBe(rounds)
        expect(busStats.foreignMessages).toBe(rounds)
        // v1, Remove, v2 and the marker of every round; nothing else.
        expect((yield* cache.invalidationStats).messagesApplied).toBe(4 * rounds)
      })
    )

    it.scoped("own echoes are all counted, and handed over no later than the message after them", () =>
      Effect.gen(function* () {
        const channel = "echoes:invalidate"
        const context = yield* Layer.build(
          TieredCache.layer({ instanceId: "self" }).pipe(
            Layer.provideMerge(MemoryTier.layer({ maxEntries: 1000 })),
            Layer.provideMerge(
              Layer.merge(RedisTier.layer({ prefix: "echoes:" }), RedisInvalidationBus.layer({ channel }))
            ),
            Layer.provide(connectionLayer())
          )
        )
        const cache = Context.get(context, TieredCache.TieredCache)
        const sender = yield* observer
        // Echoes alone: each set's Remove comes back, and is counted without any other message.
        for (let i = 0; i < 20; i++) yield* cache.set(`own${i}`, i)
        yield* eventually(
          Effect.flatMap(cache.invalidationStats, (s) =>
            s.ownMessagesIgnored === 20 ? Effect.void : Effect.fail(`own ${s.ownMessagesIgnored}`)
          ),
          "2 seconds"
        )
        // An echo, then at once another instance's Update: once the Update is applied, the echo
        // before it has been counted too.
        yield* cache.set("own-last", 1)
        yield* Effect.promise(() => sender.publish(channel, update("theirs", "v")))
        yield* eventually(
          Effect.flatMap(cache.get("theirs"), (o) =>
            Option.isSome(o) ? Effect.void : Effect.fail("not yet")
          )
        )
        const stats = yield* cache.invalidationStats
        expect([stats.ownMessagesIgnored, stats.messagesApplied]).toEqual([21, 1])
        expect(stats.messagesReceived).toBe(22)
      })
    )
  })
})
