/**
 * Writes interrupted at any step on a real Redis (the README setup: MemoryTier, RedisTier and
 * the bus on one connection, so a set and its message leave together): once the interruption
 * has come, the key is cached again, on this instance and on another one.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { Interruptions, RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

const instance = (instanceId: string) =>
  Effect.map(
    Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: 10_000 })),
        Layer.provide(
          Layer.merge(
            RedisTier.layer({ prefix: "interrupted:" }),
            RedisInvalidationBus.layer({ channel: "interrupted:invalidate" })
          )
        ),
        Layer.provide(connectionLayer())
      )
    ),
    (context) => Context.get(context, TieredCache.TieredCache)
  )

type Cache = TieredCache.TieredCache.Service

describe("a write interrupted at any step on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    for (const [name, write] of [
      ["set", (cache: Cache, key: string) => cache.set(key, "v")],
      ["update", (cache: Cache, key: string) => cache.update(key, "v")],
      ["invalidateTag", (cache: Cache) => cache.invalidateTag("t")]
    ] as const) {
      it.scoped(`${name}: the key is cached again on both instances`, () =>
        Effect.gen(function* () {
          const a = yield* instance(`a-${name}`)
          const b = yield* instance(`b-${name}`)
          const key = (run: string) => `${name}:${run}`
          const { failed, interrupted } = yield* Interruptions.atEachStep(
            (run, padding) => Effect.zipRight(padding, write(a, key(run))),
            (run) =>
              Effect.zipWith(
                Interruptions.cachesAgain(a, key(run)),
                Interruptions.cachesAgain(b, `${key(run)}:b`),
                (x, y) => x && y
              ),
            { pads: 13 }
          )
          expect(failed).toEqual([])
          // Every run is interrupted: at the latest while it waits for Redis.
          expect(interrupted).toBe(13 * 16)
        })
      )
    }
  })
})
