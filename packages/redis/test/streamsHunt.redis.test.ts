/**
 * RedisStreams used the way plain JavaScript and a busy deployment use it: arguments that ignore
 * the types, entries written by others.
 */
import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Fiber, Layer, Stream } from "effect"
import { RedisStreams } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const Connection = connectionLayer({ keyPrefix: "h:" })
const Env = Layer.mergeAll(Connection, RedisStreams.layer().pipe(Layer.provide(Connection))).pipe(
  Layer.provideMerge(RedisServer.layer())
)

describe("RedisStreams hunt", () => {
  layer(Env, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    // consume read its options' fields unguarded: options that throw when read (a Proxy, a
    // getter) ended the caller's fiber with a defect instead of a StreamError.
    it.scoped("consume options that throw when read are a StreamError, never a defect", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("opts", "g")
        const boom = () => {
          throw new Error("boom")
        }
        const throwing: ReadonlyArray<unknown> = [
          new Proxy({}, { get: boom }),
          Object.defineProperty({}, "claimIdleMs", { get: boom, enumerable: true })
        ]
        for (const options of throwing) {
          const exit = yield* Effect.exit(
            Stream.runDrain(streams.consume("opts", "g", "c", options as CacheStreams.ConsumeOptions))
          )
          expect(Exit.isFailure(exit) && exit.cause._tag).toBe("Fail")
        }
        const look = yield* observer
        expect(yield* Effect.promise(() => look.xinfo("CONSUMERS", "h:opts", "g"))).toEqual([])
      })
    )
    // read accepted any finite blockMs but sent it to Redis as is: past what Redis can add to its
    // clock (about 9.2e18 ms), XREAD failed with "ERR timeout is not an integer or out of range"
    // instead of waiting, for a user asking for "as long as it takes" with Number.MAX_VALUE.
    it.scoped("a blocking read with a blockMs beyond Redis's range waits, and is woken by a publish", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        for (const blockMs of [1e19, Number.MAX_VALUE]) {
          const reader = yield* Effect.fork(streams.read("forever", "$", 10, blockMs))
          yield* Effect.sleep("200 millis")
          const id = yield* streams.publish("forever", { n: "1" })
          const entries = yield* Fiber.join(reader)
          expect(entries.map((e) => e.id)).toEqual([id])
        }
      })
    )
  })
})
