/**
 * RedisTier's batch writes called directly (the cache calls them where nothing interrupts them)
 * and interrupted at any step: the caller ends. Effect 3.22's concurrent forEach (and
 * `Effect.all` with concurrency) never ends when its fiber is interrupted while it yields inside
 * forEach's own uninterruptible steps; a fiber yields every 2,048 steps by default, every 12
 * here, so that each step is reached.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, FiberRef, Layer, Option } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

const entry = (value: unknown) => Entry.make({ value, now: Date.now(), ttlMs: 60_000, graceMs: 0, tags: [] })

/**
 * Runs `make()` in a daemon fiber yielding every 12 steps after `pad` steps, interrupts it after
 * `wait` yields of the test's fiber, and answers whether it ended within 2 s (a hung fiber must
 * not hold up the test's end, hence the daemon).
 */
const endsWhenInterrupted = (make: () => Effect.Effect<unknown, unknown>, pad: number, wait: number) =>
  Effect.gen(function* () {
    let padding: Effect.Effect<void> = Effect.void
    for (let i = 0; i < pad; i++) padding = Effect.zipRight(padding, Effect.void)
    const fiber = yield* Effect.forkDaemon(
      Effect.locally(Effect.zipRight(padding, make()), FiberRef.currentMaxOpsBeforeYield, 12)
    )
    for (let i = 0; i < wait; i++) yield* Effect.yieldNow()
    yield* Fiber.interruptFork(fiber)
    for (let i = 0; i < 200 && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* Effect.sleep("10 millis")
    return Option.isSome(yield* Fiber.poll(fiber))
  })

/** Every pad of 0..5 steps and every interruption after 0..15 yields: the runs that never ended. */
const hungRuns = (make: () => Effect.Effect<unknown, unknown>) =>
  Effect.gen(function* () {
    const hung: Array<string> = []
    for (let pad = 0; pad < 6; pad++) {
      for (let wait = 0; wait < 16; wait++) {
        if (!(yield* endsWhenInterrupted(make, pad, wait))) hung.push(`${pad}:${wait}`)
      }
    }
    return hung
  })

describe("RedisTier's batches, interrupted at any step", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("setMany of small and large values ends, and, uninterrupted, writes both", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(connectionLayer({ largeValueBytes: 64 }))
        const tier = yield* Effect.provide(RedisTier.make({ prefix: "cut:" }), context)
        const connection = Context.get(context, RedisConnection.RedisConnection)
        const entries = [
          ["small", entry(1)],
          ["large", entry("x".repeat(200))]
        ] as const
        expect(yield* hungRuns(() => tier.setMany(entries))).toEqual([])
        // Uninterrupted, both land.
        yield* tier.setMany(entries)
        expect(
          (yield* tier.getMany(["small", "large"])).map(Option.map((e) => String(e.value).length))
        ).toEqual([Option.some(1), Option.some(200)])
        expect(connection.client.status).toBe("ready")
      })
    )

    it.scoped("writeIfNewer of several batches ends", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(connectionLayer({ largeValueBytes: 64 }))
        const tier = yield* Effect.provide(RedisTier.make({ prefix: "cutif:" }), context)
        const changes = [
          ...Array.from({ length: 300 }, (_, i) => ({ key: `k${i}`, entry: entry(i), at: Date.now() })),
          { key: "large", entry: entry("x".repeat(200)), at: Date.now() }
        ]
        expect(yield* hungRuns(() => tier.writeIfNewer!(changes))).toEqual([])
      })
    )
  })
})
