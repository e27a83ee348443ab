/**
 * A cache over RedisTier and RedisInvalidationBus on a real Redis: one span per Redis call (the
 * cache's `tiercache.tier.*`, none nested from RedisTier) carrying `db.system.name` = `redis`,
 * and bus publishes carrying `messaging.system` = `redis` and the channel.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { MultiInstance, RedisServer } from "@tiercache/testing"
import { Context, Effect, HashMap, Layer, Logger, LogLevel, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, observer, recordingTracer } from "./utils.js"

describe("spans on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("one tiercache.tier span per Redis call, with db.system.name and messaging.* attributes", () =>
      Effect.gen(function* () {
        const connection = connectionLayer()
        const context = yield* Layer.build(
          TieredCache.layer({ name: "spans" }).pipe(
            Layer.provide(
              Layer.mergeAll(
                MemoryTier.layer({ maxEntries: 100 }),
                RedisTier.layer({ prefix: "spans:" }),
                RedisInvalidationBus.layer({ channel: "spans:bus" })
              ).pipe(Layer.provide(connection))
            )
          )
        )
        const cache = Context.get(context, TieredCache.TieredCache)
        const { tracer, spans } = yield* recordingTracer
        yield* Effect.gen(function* () {
          yield* cache.getOrCompute("k", Effect.succeed(1))
          yield* MultiInstance.settle([cache])
          // A removal and its message leave together (removeThen): the message's span is beside
          // the removal's, not under it.
          yield* cache.invalidate("k")
          yield* cache.invalidateMany(["k", "l"])
          yield* cache.invalidatePattern("k*")
        }).pipe(Effect.withTracer(tracer))
        const names = spans.map((s) => s.name)
        expect(names.filter((n) => n.startsWith("tiercache.redis."))).toEqual([])
        expect(names.filter((n) => n.startsWith("tiercache.tier."))).toEqual([
          "tiercache.tier.get",
          "tiercache.tier.set",
          "tiercache.tier.remove",
          "tiercache.tier.remove",
          "tiercache.tier.removeMatching"
        ])
        for (const s of spans.filter((s) => s.name.startsWith("tiercache.tier."))) {
          expect(s.span.attributes.get("db.system.name")).toBe("redis")
          expect(s.span.attributes.get("tiercache.tier")).toBe("redis")
          // No span nested under a tier call.
          expect(
            spans.filter((child) => child.span.parent._tag === "Some" && child.span.parent.value === s.span)
          ).toEqual([])
        }
        const published = spans.filter((s) => s.name === "tiercache.bus.publish")
        expect(published.length).toBe(4)
        for (const s of published) {
          expect(s.span.attributes.get("messaging.system")).toBe("redis")
          expect(s.span.attributes.get("messaging.destination.name")).toBe("spans:bus")
        }
      })
    )

    it.scoped(
      "an L2 read on the direct path (breaker closed) opens its span under a tracer, and none without",
      () =>
        Effect.gen(function* () {
          const context = yield* Layer.build(
            TieredCache.layer({ name: "direct" }).pipe(
              Layer.provide(
                Layer.mergeAll(
                  MemoryTier.layer({ maxEntries: 1 }),
                  RedisTier.layer({ prefix: "direct:" })
                ).pipe(Layer.provide(connectionLayer()))
              )
            )
          )
          const cache = Context.get(context, TieredCache.TieredCache)
          yield* cache.set("a", 1)
          yield* cache.set("b", 2) // L1 holds one entry: "a" is now in Redis only
          const { tracer, names } = yield* recordingTracer
          expect(yield* cache.get("a").pipe(Effect.withTracer(tracer))).toEqual(Option.some(1))
          expect(names()).toEqual(["tiercache.tier.get"])
          // Under Effect's own tracer (no tracing set up) the same read goes on without one.
          yield* cache.set("b", 3)
          expect(yield* cache.get("a")).toEqual(Option.some(1))
          expect(names()).toEqual(["tiercache.tier.get"])
        })
    )

    it.scoped(
      "a foreign value under the prefix: its debug line, an event of the tier span, names no key",
      () =>
        Effect.gen(function* () {
          const context = yield* Layer.build(
            TieredCache.layer({ name: "foreign" }).pipe(
              Layer.provide(
                Layer.mergeAll(
                  MemoryTier.layer({ maxEntries: 10 }),
                  RedisTier.layer({ prefix: "foreign:" })
                ).pipe(Layer.provide(connectionLayer()))
              )
            )
          )
          const cache = Context.get(context, TieredCache.TieredCache)
          const client = yield* observer
          yield* Effect.promise(() => client.set("foreign:user:42", "not an entry"))
          const lines: Array<string> = []
          const logger = Logger.make(({ annotations, message }) => {
            lines.push(JSON.stringify([message, HashMap.toEntries(annotations)]))
          })
          const { tracer, spans } = yield* recordingTracer
          expect(
            yield* cache
              .get("user:42")
              .pipe(
                Effect.withTracer(tracer),
                Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
                Logger.withMinimumLogLevel(LogLevel.Debug)
              )
          ).toEqual(Option.none())
          const events = spans.flatMap((s) =>
            (
              s.span as unknown as { readonly events: ReadonlyArray<readonly [string, bigint, unknown]> }
            ).events.map((event) => JSON.stringify([event[0], event[2]]))
          )
          expect(lines.length).toBeGreaterThan(0)
          expect(events.length).toBeGreaterThan(0)
          expect([...lines, ...events].filter((text) => text.includes("user"))).toEqual([])
        })
    )
  })
})
