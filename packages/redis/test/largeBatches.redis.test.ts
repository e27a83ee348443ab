/**
 * Batches far larger than one command should carry: RedisTier sends them in chunks, and each
 * chunk is bounded by the command timeout as a lone command is, so that a healthy Redis never
 * fails a large batch for its size.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Duration, Effect, Either, Layer } from "effect"
import type { Redis } from "ioredis"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

/** A short command timeout: a batch bounded as a whole by it fails on size alone. */
const COMMAND_TIMEOUT = Duration.millis(100)
const Connection = connectionLayer({ commandTimeout: COMMAND_TIMEOUT })
const Env = Layer.mergeAll(
  Connection,
  RedisTier.layer({ prefix: "lb:" }).pipe(Layer.provide(Connection))
).pipe(Layer.provideMerge(RedisServer.layer()))

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

describe("RedisTier batches far larger than one command", () => {
  layer(Env, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "remove of 200,000 keys succeeds within a 100 ms command timeout (each chunk bounded alone)",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const keys = Array.from({ length: 200_000 }, (_, i) => `key:${i}`)
          yield* plant(look, keys)
          const removed = yield* Effect.either(tier.remove(keys))
          expect(Either.isRight(removed) ? "removed" : removed.left.reason).toBe("removed")
          expect(yield* Effect.promise(() => look.dbsize())).toBe(0)
        })
    )
  })
})
