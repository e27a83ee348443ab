/**
 * A bus publish's span says what RedisInvalidationBus sent: an `update` of a large value leaves
 * as a `Remove` of its key (largeUpdates.ts) and its `tiercache.bus.publish` span says `Remove`,
 * not `Update`; a `RemoveBulk` cut in pieces (largeBulks.ts) says how many messages left
 * (`messaging.batch.message_count`). Spans recorded by a real Tracer (Effect's own, recorded).
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, type Duration, Effect, Layer } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, recordingTracer } from "./utils.js"

const KB = 1024

/** A traced cache over Redis whose bus sends Updates of 4 KiB or more as Removes. */
const tracedCache = (
  name: string,
  bus: RedisInvalidationBus.Options = {},
  commandTimeout: Duration.DurationInput = "500 millis"
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      TieredCache.layer({ name, spans: true, keysInSpans: true }).pipe(
        Layer.provide(
          Layer.mergeAll(
            MemoryTier.layer({ maxEntries: 100 }),
            RedisTier.layer(),
            RedisInvalidationBus.layer({ channel: `${name}:bus`, ...bus })
          ).pipe(
            Layer.provide(connectionLayer({ keyPrefix: `${name}:`, largeValueBytes: 4 * KB, commandTimeout }))
          )
        )
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

/** The attributes of the `tiercache.bus.publish` spans recorded, in order. */
const publishes = (
  spans: ReadonlyArray<{ readonly name: string; readonly span: { attributes: ReadonlyMap<string, unknown> } }>
) =>
  spans
    .filter((s) => s.name === "tiercache.bus.publish")
    .map((s) => ({
      type: s.span.attributes.get("tiercache.bus.message.type"),
      key: s.span.attributes.get("tiercache.key"),
      count: s.span.attributes.get("messaging.batch.message_count")
    }))

describe("bus publish spans", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    // A command timeout longer than the bus breaker's (1 s): the cache bounds the publish itself.
    it.scoped.each<Duration.DurationInput>(["500 millis", "2 seconds"])(
      "an update sent as a Remove has a span saying Remove; a small one says Update (commandTimeout %s)",
      (commandTimeout) =>
        Effect.gen(function* () {
          const cache = yield* tracedCache(`bs1-${commandTimeout}`, {}, commandTimeout)
          const { tracer, spans } = yield* recordingTracer
          yield* Effect.gen(function* () {
            yield* cache.update("small", "s")
            yield* cache.update("large", "x".repeat(8 * KB))
          }).pipe(Effect.withTracer(tracer))
          expect(publishes(spans)).toEqual([
            { type: "Update", key: "small", count: undefined },
            { type: "Remove", key: "large", count: undefined }
          ])
        })
    )

    it.scoped("a RemoveBulk cut in pieces has a span giving their count", () =>
      Effect.gen(function* () {
        const cache = yield* tracedCache("bs2", { maxMessageBytes: 2 * KB })
        const { tracer, spans } = yield* recordingTracer
        // 50 keys of about 100 bytes: 5 KB, 3 pieces of at most 2 KiB.
        const keys = Array.from({ length: 50 }, (_, i) => `${i}`.padEnd(100, "k"))
        yield* cache.invalidateMany(keys).pipe(Effect.withTracer(tracer))
        expect(publishes(spans)).toEqual([{ type: "RemoveBulk", key: undefined, count: 3 }])
      })
    )
  })
})
