/**
 * RedisStreams used the way plain JavaScript and a busy deployment use it: arguments that ignore
 * the types, entries written by others.
 */
import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Fiber, Layer, Queue, Schedule, Stream } from "effect"
import { RedisStreams } from "../src/index.js"
import { connectionLayer, failureOf, observer } from "./utils.js"

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
    // Untested until now: Redis answering that the group or the stream is gone ends a blocked
    // consumer with a StreamError (asking again would not help), never a silent hang.
    it.scoped(
      "a group destroyed or a stream deleted under a blocked consumer ends it with a StreamError",
      () =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const look = yield* observer
          const cases: ReadonlyArray<readonly [string, () => Promise<unknown>, string]> = [
            ["destroyed", () => look.call("XGROUP", ["DESTROY", "h:destroyed", "g"]), "NOGROUP"],
            ["deleted", () => look.del("h:deleted"), "no longer exists"]
          ]
          for (const [stream, pull, reason] of cases) {
            yield* streams.createGroup(stream, "g")
            const consumer = yield* Effect.fork(
              Stream.runDrain(streams.consume(stream, "g", "c", { blockMs: 60_000, claimIdleMs: 60_000 }))
            )
            yield* Effect.sleep("300 millis")
            yield* Effect.promise(pull)
            const ended = yield* Fiber.await(consumer).pipe(Effect.timeout("5 seconds"))
            expect(Exit.isFailure(ended) && failureOf(ended)).toMatchObject({
              _tag: "StreamError",
              operation: "consume",
              reason: expect.stringContaining(reason)
            })
          }
        })
    )

    // Fields are text: bytes that are not UTF-8, written by another program, read back with
    // each bad sequence replaced by U+FFFD (the README says so), by every reader alike. Two
    // field names that differ only there read alike; the entry keeps both pairs.
    it.scoped("fields another program wrote as bytes that are not UTF-8 read back with U+FFFD", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        yield* streams.createGroup("bytes", "g")
        const bytes = (...b: Array<number>) => Buffer.from(b)
        const id = yield* Effect.promise(() =>
          look.xadd(
            "h:bytes",
            "*",
            bytes(0x6e, 0xff),
            bytes(0x76, 0xc3, 0x28, 0x21),
            bytes(0x6e, 0xfe),
            "caf\u00e9"
          )
        )
        const expected = [
          {
            id,
            fields: [
              ["n\uFFFD", "v\uFFFD(!"],
              ["n\uFFFD", "caf\u00e9"]
            ]
          }
        ]
        expect(yield* streams.readLatest("bytes", 1)).toEqual(expected)
        expect(yield* streams.read("bytes", "0", 10)).toEqual(expected)
        const consumed = yield* streams
          .consume("bytes", "g", "c", { blockMs: 100 })
          .pipe(Stream.take(1), Stream.runCollect)
        expect([...consumed]).toEqual(expected)
      })
    )
  })

  // Untested until now: the server killed and started again (with its append-only file, as a
  // production Redis) under a consumer.
  const Persistent = Layer.mergeAll(Connection, RedisStreams.layer().pipe(Layer.provide(Connection))).pipe(
    Layer.provideMerge(RedisServer.layer({ appendonly: true }))
  )
  layer(Persistent, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped(
      "a consumer reads on across a server restart, delivering its unacknowledged entries again",
      () =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const server = yield* RedisServer.RedisServer
          yield* streams.createGroup("restart", "g")
          const got = yield* Queue.unbounded<string>()
          yield* Effect.forkScoped(
            streams
              .consume("restart", "g", "c", { blockMs: 200 })
              .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
          )
          const first = yield* streams.publish("restart", { n: "1" })
          expect(yield* Queue.take(got)).toBe(first)
          yield* server.restart
          const second = yield* streams
            .publish("restart", { n: "2" })
            .pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }))
          const [again, next] = [yield* Queue.take(got), yield* Queue.take(got)]
          expect([again, next]).toEqual([first, second])
          expect(yield* streams.ack("restart", "g", [first, second])).toBe(2)
        })
    )

    // A consumer started while Redis was down (a restart during a deploy) ended at once with
    // "consumer connection: connect ECONNREFUSED", while one already running waits out the same
    // outage and reads on: it now connects once Redis is back, and delivers.
    it.scoped("a consumer started while the server is down connects once it is back, and delivers", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const server = yield* RedisServer.RedisServer
        yield* streams.createGroup("down", "g")
        const first = yield* streams.publish("down", { n: "1" })
        yield* server.stop
        const got = yield* Queue.unbounded<string>()
        const consumer = yield* Effect.forkScoped(
          streams
            .consume("down", "g", "c", { blockMs: 200 })
            .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
        )
        yield* Effect.sleep("500 millis")
        expect(consumer.unsafePoll()).toBeNull()
        yield* server.start
        const received = yield* Queue.take(got).pipe(Effect.timeout("10 seconds"))
        expect(received).toBe(first)
        const second = yield* streams
          .publish("down", { n: "2" })
          .pipe(Effect.retry({ schedule: Schedule.spaced("100 millis"), times: 50 }))
        expect(yield* Queue.take(got).pipe(Effect.timeout("10 seconds"))).toBe(second)
      })
    )
  })
})
