/**
 * TestStreams: the in-memory CacheStreams behaves as RedisStreams does (the same behaviours as
 * packages/redis/test/RedisStreams.test.ts and streamClaim.redis.test.ts), on the TestClock.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheStreams } from "@tiercache/core"
import { Chunk, Effect, Either, Exit, Fiber, Queue, Stream, TestClock } from "effect"
import { TestStreams } from "../src/index.js"
import {
  acceptsAsRedis,
  refusedFieldValues,
  refusesAsRedis,
  refusesConsumeOptions
} from "./fixtures/streamInputs.js"

const ids = (entries: ReadonlyArray<CacheStreams.StreamEntry>) => entries.map((e) => e.id)
const values = (entries: ReadonlyArray<CacheStreams.StreamEntry>) =>
  entries.map((e) => Object.fromEntries(e.fields).n)
const take = (stream: Stream.Stream<CacheStreams.StreamEntry, unknown>, n: number) =>
  stream.pipe(Stream.take(n), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))

describe("TestStreams", () => {
  it.effect(
    "publish keeps order and fields; readLatest is newest first; read is oldest first after an id",
    () =>
      Effect.gen(function* () {
        const streams = yield* TestStreams.make
        const published: Array<string> = []
        for (let i = 0; i < 5; i++) published.push(yield* streams.publish("order", [["n", String(i)]]))
        yield* TestClock.adjust("1 millis")
        published.push(yield* streams.publish("order", { n: "5", extra: "record form" }))
        // As Redis: ids grow past 0-0 within a millisecond of the Clock, then start at <ms>-0.
        expect(published.slice(0, 2)).toEqual(["0-1", "0-2"])
        expect(published[5]).toBe("1-0")
        expect(values(yield* streams.readLatest("order", 3))).toEqual(["5", "4", "3"])
        expect((yield* streams.readLatest("order", 1))[0]!.fields).toEqual([
          ["n", "5"],
          ["extra", "record form"]
        ])
        expect(ids(yield* streams.read("order", "0", 100))).toEqual(published)
        expect(values(yield* streams.read("order", published[1]!, 2))).toEqual(["2", "3"])
        expect(yield* streams.read("order", "$", 10)).toEqual([])
        expect(yield* streams.readLatest("none", 10)).toEqual([])
        expect(yield* streams.read("none", "0", 10)).toEqual([])
        // Numbers from plain JavaScript read back as text.
        yield* streams.publish("plain", { n: 5 } as unknown as CacheStreams.Fields)
        expect((yield* streams.readLatest("plain", 1))[0]!.fields).toEqual([["n", "5"]])
      })
  )

  it.effect("maxLen keeps the newest entries", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      for (let i = 0; i < 30; i++) yield* streams.publish("trim", { n: String(i) }, 10)
      const all = yield* streams.read("trim", "0", 100)
      expect(values(all)).toEqual(Array.from({ length: 10 }, (_, i) => String(20 + i)))
    })
  )

  it.effect("a blocking read waits on the Clock: woken by a publish, or empty after blockMs", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.publish("wait", { n: "old" })
      const woken = yield* Effect.fork(streams.read("wait", "$", 10, 5_000))
      yield* TestClock.adjust("1 second")
      const id = yield* streams.publish("wait", { n: "1" })
      expect(ids(yield* Fiber.join(woken))).toEqual([id])
      const idle = yield* Effect.fork(streams.read("wait", "$", 10, 2_000))
      yield* TestClock.adjust("1999 millis")
      expect(idle.unsafePoll()).toBeNull()
      yield* TestClock.adjust("1 millis")
      expect(yield* Fiber.join(idle)).toEqual([])
    })
  )

  it.effect(
    "consumer groups: delivery, ack, pending; a consumer starting again gets its pending entries first",
    () =>
      Effect.gen(function* () {
        const streams = yield* TestStreams.make
        yield* streams.createGroup("jobs", "workers")
        yield* streams.createGroup("jobs", "workers")
        const published: Array<string> = []
        for (let i = 0; i < 5; i++) published.push(yield* streams.publish("jobs", { n: String(i) }))
        const delivered = yield* take(streams.consume("jobs", "workers", "w1", { count: 2 }), 5)
        expect(ids(delivered)).toEqual(published)
        expect(yield* streams.ack("jobs", "workers", published.slice(0, 3))).toBe(3)
        expect(yield* streams.ack("jobs", "workers", published.slice(0, 3))).toBe(0)
        const later = yield* streams.publish("jobs", { n: "5" })
        expect(ids(yield* take(streams.consume("jobs", "workers", "w2"), 1))).toEqual([later])
        const again = yield* take(streams.consume("jobs", "workers", "w1"), 2)
        expect(ids(again)).toEqual(published.slice(3))
        expect(yield* streams.ack("jobs", "workers", [...ids(again), later])).toBe(3)
      })
  )

  it.effect("a consumer waits for entries published later", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.createGroup("later", "g")
      const consumer = yield* Effect.fork(take(streams.consume("later", "g", "c", { blockMs: 5_000 }), 1))
      yield* TestClock.adjust("10 seconds")
      expect(consumer.unsafePoll()).toBeNull()
      const id = yield* streams.publish("later", { n: "1" })
      expect(ids(yield* Fiber.join(consumer))).toEqual([id])
    })
  )

  it.effect("claimIdleMs takes over entries other consumers left unacknowledged that long, each to one", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.createGroup("claim", "g")
      const published: Array<string> = []
      for (let i = 0; i < 6; i++) published.push(yield* streams.publish("claim", { n: String(i) }))
      yield* take(streams.consume("claim", "g", "gone", { count: 100 }), 6)
      // Not idle long enough yet: nothing to claim.
      const early = yield* Effect.fork(
        take(streams.consume("claim", "g", "early", { claimIdleMs: 60_000, blockMs: 100 }), 1)
      )
      yield* TestClock.adjust("1 second")
      expect(early.unsafePoll()).toBeNull()
      yield* Fiber.interrupt(early)
      yield* TestClock.adjust("1 minute")
      const got = yield* Queue.unbounded<string>()
      for (const name of ["c1", "c2"]) {
        yield* Effect.fork(
          streams
            .consume("claim", "g", name, { claimIdleMs: 60_000, blockMs: 100 })
            .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
        )
      }
      const delivered: Array<string> = []
      while (delivered.length < published.length) delivered.push(yield* Queue.take(got))
      yield* TestClock.adjust("1 second")
      delivered.push(...Chunk.toReadonlyArray(yield* Queue.takeAll(got)))
      expect(delivered.sort()).toEqual([...published].sort())
    })
  )

  // As RedisStreams's pass (streamClaim.ts: XPENDING ... IDLE idleMs start + count, one page a
  // pull): a claimer takes over `count` entries at a time, not every idle entry at once, so that
  // one stopping after a few leaves the rest to their consumer (streamClaim.redis.test.ts).
  it.effect("a claim pass takes over count entries a pull: a claimer that stops leaves the rest", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.createGroup("paged", "g")
      const published: Array<string> = []
      for (let i = 0; i < 5; i++) published.push(yield* streams.publish("paged", { n: String(i) }))
      yield* take(streams.consume("paged", "g", "gone", { count: 100 }), 5)
      yield* TestClock.adjust("1 minute")
      const claimed = yield* take(
        streams.consume("paged", "g", "alive", { claimIdleMs: 60_000, count: 2 }),
        2
      )
      expect(ids(claimed)).toEqual(published.slice(0, 2))
      // The three it did not claim are still gone's: they come back to it first when it
      // consumes again, before a newer entry.
      const later = yield* streams.publish("paged", { n: "5" })
      const gone = streams.consume("paged", "g", "gone", { count: 100 })
      expect(ids(yield* take(gone, 1))).toEqual([published[2]])
      expect(ids(yield* take(gone, 4))).toEqual([...published.slice(2), later])
      // And a claimer that goes on takes them over a page at a time, in id order.
      yield* TestClock.adjust("1 minute")
      const rest = yield* take(streams.consume("paged", "g", "alive", { claimIdleMs: 60_000, count: 2 }), 6)
      expect(ids(rest)).toEqual([...published, later])
    })
  )

  // XPENDING's page counts the claimer's own idle entries too (it skips them after): a page of
  // two holding one of its own claims one entry of another consumer.
  it.effect("a claim page counts the claimer's own idle entries among its count", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.createGroup("own", "g")
      const first = yield* streams.publish("own", { n: "0" })
      yield* take(streams.consume("own", "g", "alive", { count: 1 }), 1)
      const theirs = [yield* streams.publish("own", { n: "1" }), yield* streams.publish("own", { n: "2" })]
      yield* take(streams.consume("own", "g", "gone", { count: 100 }), 2)
      // "alive" gets its own entry again, then holds it unacknowledged while its entry and gone's
      // grow idle; its next pass's first page is [its own, gone's first].
      const alive = yield* Effect.fork(
        take(streams.consume("own", "g", "alive", { claimIdleMs: 60_000, count: 2, blockMs: 100 }), 2)
      )
      yield* TestClock.adjust("1 minute")
      expect(ids(yield* Fiber.join(alive))).toEqual([first, theirs[0]])
      // gone's second entry was not claimed: it comes back to gone, before a newer entry.
      yield* streams.publish("own", { n: "3" })
      expect(ids(yield* take(streams.consume("own", "g", "gone", { count: 100 }), 1))).toEqual([theirs[1]])
    })
  )

  it.effect("a pending entry trimmed away (maxLen) is delivered to nobody, and leaves the group", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.createGroup("gone", "g")
      const first = yield* streams.publish("gone", { n: "1" })
      const second = yield* streams.publish("gone", { n: "2" })
      yield* take(streams.consume("gone", "g", "c"), 2)
      const third = yield* streams.publish("gone", { n: "3" }, 2)
      const again = yield* take(streams.consume("gone", "g", "c"), 2)
      expect(ids(again)).toEqual([second, third])
      expect(yield* streams.ack("gone", "g", [first])).toBe(0)
    })
  )

  it.effect("bad arguments and a missing group are StreamErrors", () =>
    Effect.gen(function* () {
      const typed = yield* TestStreams.make
      // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
      const streams: any = typed
      yield* typed.publish("s", { a: "b" })
      yield* typed.createGroup("s", "g")
      const calls: ReadonlyArray<() => Effect.Effect<unknown, { readonly _tag: string }>> = [
        () => streams.publish("s", {}),
        () => streams.publish("", { a: "b" }),
        () => streams.publish("s", { a: "b" }, -1),
        () => streams.publish("s", { a: "b" }, Number.NaN),
        () => streams.publish("s", { a: { nested: true } }),
        () => streams.publish("s", null),
        () => streams.publish("u-\uD800", { a: "b" }),
        () => streams.readLatest("s", 0),
        () => streams.read("s", "0", 1.5),
        () => streams.read("s", "bad", 1),
        () => streams.read("s", "0", 1, -1),
        () => streams.createGroup("s", null),
        () => streams.ack("s", "g", "1-0"),
        () => Stream.runDrain(streams.consume("s", "g", "c", { blockMs: 0 })),
        () => Stream.runDrain(streams.consume("s", "g", "c", { claimIdleMs: 1.5 })),
        () => Stream.runDrain(streams.consume("s", "g", "")),
        () => Stream.runDrain(streams.consume("s", "nope", "c"))
      ]
      for (const call of calls) {
        const result = yield* Effect.either(call())
        expect(Either.isLeft(result) && result.left._tag).toBe("StreamError")
      }
    })
  )

  // As RedisStreams's (RedisStreams.test.ts): field values are strings or finite numbers.
  it.effect(
    "a field value that is neither a string nor a finite number is a StreamError; nothing is kept",
    () =>
      Effect.gen(function* () {
        const typed = yield* TestStreams.make
        // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
        const streams: any = typed
        for (const value of refusedFieldValues) {
          const result = yield* Effect.either(
            streams.publish("odd", { ok: "x", f: value }) as Effect.Effect<unknown, { readonly _tag: string }>
          )
          expect(Either.isLeft(result) && result.left._tag).toBe("StreamError")
        }
        expect(yield* typed.readLatest("odd", 10)).toEqual([])
        const id = yield* typed.publish("odd", { a: -0, b: 1.5e300, c: -7 } as unknown as CacheStreams.Fields)
        expect(yield* typed.readLatest("odd", 1)).toEqual([
          {
            id,
            fields: [
              ["a", "0"],
              ["b", "1.5e+300"],
              ["c", "-7"]
            ]
          }
        ])
      })
  )

  it.effect("TestStreams.layer provides CacheStreams", () =>
    Effect.gen(function* () {
      const streams = yield* CacheStreams.CacheStreams
      expect(yield* streams.publish("s", { a: "b" })).toBe("0-1")
    }).pipe(Effect.provide(TestStreams.layer()))
  )
  // As RedisStreams's (streamsHunt.redis.test.ts): consume read its options' fields unguarded,
  // so options that throw when read (a Proxy, a getter) died with a defect.
  it.effect("consume options that throw when read are a StreamError, never a defect", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
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
    })
  )

  // Entries were handed out as the stored objects: a reader that changed an entry it got (plain
  // JavaScript ignores ReadonlyArray) changed the stream for every later reader, which Redis,
  // answering copies, never does.
  it.effect("an entry a reader changes is not changed in the stream", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.publish("mine", { n: "1" })
      yield* streams.createGroup("mine", "g", "0")
      const vandalize = (entries: ReadonlyArray<CacheStreams.StreamEntry>) => {
        for (const entry of entries) {
          const fields = entry.fields as Array<[string, string]>
          fields[0]![1] = "changed"
          fields.push(["extra", "x"])
        }
      }
      vandalize(yield* streams.readLatest("mine", 1))
      vandalize(yield* streams.read("mine", "0", 1))
      vandalize(yield* take(streams.consume("mine", "g", "c", { blockMs: 10 }), 1))
      const again = [
        ...(yield* streams.readLatest("mine", 1)),
        ...(yield* streams.read("mine", "0", 1)),
        ...(yield* take(streams.consume("mine", "g", "c", { blockMs: 10 }), 1))
      ]
      expect(again.map((e) => e.fields)).toEqual([[["n", "1"]], [["n", "1"]], [["n", "1"]]])
    })
  )
  // Redis's XACK refuses the whole command when one id is not an id, acknowledging nothing, and
  // reads "5" as 5-0. TestStreams acknowledged the valid ids of such a call and answered their
  // count, and never matched an id given without its sequence number.
  it.effect("ack refuses a call holding an invalid id, acking nothing; an id without -seq is <ms>-0", () =>
    Effect.gen(function* () {
      const streams = yield* TestStreams.make
      yield* streams.createGroup("acks", "g", "0")
      yield* TestClock.adjust("5 millis")
      const first = yield* streams.publish("acks", { n: "0" })
      yield* TestClock.adjust("1 millis")
      const second = yield* streams.publish("acks", { n: "1" })
      expect([first, second]).toEqual(["5-0", "6-0"])
      yield* take(streams.consume("acks", "g", "c", { blockMs: 10 }), 2)
      const mixed = yield* Effect.either(streams.ack("acks", "g", [first, "not-an-id"]))
      expect(Either.isLeft(mixed) && mixed.left._tag).toBe("StreamError")
      // Nothing was acknowledged by the refused call: both are still pending.
      expect(yield* streams.ack("acks", "g", ["5", "6-0"])).toBe(2)
    })
  )
})

// Stream ids as redis-server reads them (fixtures/streamInputs.ts; RedisStreams.test.ts checks the
// same cases on a real server). TestStreams refused every id beyond 2^53 and every spelling but
// digits, where Redis answers.
// consume's options by the cache's rule, as RedisStreams (fixtures/streamInputs.ts): null was
// read as the default.
it.effect("consume refuses options that are null or of the wrong type, naming them", () =>
  Effect.gen(function* () {
    const streams = yield* TestStreams.make
    yield* streams.createGroup("consume-options", "g", "0")
    yield* refusesConsumeOptions(streams, "consume-options", "g")
  })
)

describe("stream ids as Redis reads them", () => {
  /** Entries 5-0, 5-1 and 7-0, a group "all" from 0 that has delivered all three. */
  const fiveFiveSeven = Effect.gen(function* () {
    const streams = yield* TestStreams.make
    yield* streams.createGroup("ids", "all", "0")
    yield* TestClock.adjust("5 millis")
    yield* streams.publish("ids", { n: "a" })
    yield* streams.publish("ids", { n: "b" })
    yield* TestClock.adjust("2 millis")
    yield* streams.publish("ids", { n: "c" })
    yield* take(streams.consume("ids", "all", "c", { blockMs: 10 }), 3)
    return streams
  })

  it.effect("read, createGroup and ack accept them, and order them as Redis does", () =>
    Effect.gen(function* () {
      yield* acceptsAsRedis(yield* fiveFiveSeven, "ids")
    })
  )

  it.effect("read, createGroup and ack refuse the others, acking nothing", () =>
    Effect.gen(function* () {
      yield* refusesAsRedis(yield* fiveFiveSeven, "ids")
    })
  )
})
