/**
 * RedisTier's batch writes called directly (the cache calls them where nothing interrupts them)
 * and interrupted at any step: the caller ends. Effect 3.22's concurrent forEach (and
 * `Effect.all` with concurrency) never ends when its fiber is interrupted while it yields inside
 * forEach's own uninterruptible steps; a fiber yields every 2,048 steps by default, every 12
 * here, so that each step is reached.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { Interruptions, RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

const entry = (value: unknown) => Entry.make({ value, now: Date.now(), ttlMs: 60_000, graceMs: 0, tags: [] })

describe("RedisTier's batches, interrupted at any step", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("setMany of small and large values ends, and, uninterrupted, writes both", () =>
      Effect.gen(function* () {
        // A value of 1,024 bytes or more is large (the envelope alone is about 70).
        const context = yield* Layer.build(connectionLayer({ largeValueBytes: 1024 }))
        const tier = yield* Effect.provide(RedisTier.make({ prefix: "cut:" }), context)
        const connection = Context.get(context, RedisConnection.RedisConnection)
        const entries = [
          ["small", entry(1)],
          ["large", entry("x".repeat(2000))]
        ] as const
        expect(yield* Interruptions.hungRuns(() => tier.setMany(entries), { pads: 6, waits: 16 })).toEqual([])
        // Uninterrupted, both land.
        yield* tier.setMany(entries)
        expect(
          (yield* tier.getMany(["small", "large"])).map(Option.map((e) => String(e.value).length))
        ).toEqual([Option.some(1), Option.some(2000)])
        expect(connection.client.status).toBe("ready")
      })
    )

    it.scoped("writeIfNewer of several batches ends", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(connectionLayer({ largeValueBytes: 1024 }))
        const tier = yield* Effect.provide(RedisTier.make({ prefix: "cutif:" }), context)
        const changes = [
          ...Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, entry: entry(i), at: Date.now() })),
          { key: "large", entry: entry("x".repeat(2000)), at: Date.now() }
        ]
        expect(
          yield* Interruptions.hungRuns(() => tier.writeIfNewer!(changes), { pads: 6, waits: 16 })
        ).toEqual([])
      })
    )
  })
})
