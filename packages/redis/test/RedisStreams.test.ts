import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams, Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import {
  Chunk,
  Context,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Option,
  Queue,
  Scope,
  Stream,
  Tracer
} from "effect"
import type { Redis } from "ioredis"
import {
  acceptsAsRedis,
  refusedFieldValues,
  refusesAsRedis,
  refusesConsumeOptions
} from "../../testing/test/fixtures/streamInputs.js"
import { RedisStreams, RedisTier } from "../src/index.js"
import {
  clientNames,
  connectionLayer,
  eventually,
  failureOf,
  observer,
  recordedFailure,
  recordingTracer,
  timed
} from "./utils.js"

const Connection = connectionLayer({ keyPrefix: "s:" })
const Env = Layer.mergeAll(
  Connection,
  RedisStreams.layer().pipe(Layer.provide(Connection)),
  RedisTier.layer().pipe(Layer.provide(Connection))
).pipe(Layer.provideMerge(RedisServer.layer()))

/** Clients the server holds blocked in a command now (INFO clients). */
const blockedNow = (look: Redis) =>
  Effect.promise(() => look.info("clients")).pipe(
    Effect.map((info) => Number(/blocked_clients:(\d+)/.exec(info)?.[1] ?? -1))
  )

const ids = (entries: ReadonlyArray<CacheStreams.StreamEntry>) => entries.map((e) => e.id)
const values = (entries: ReadonlyArray<CacheStreams.StreamEntry>) =>
  entries.map((e) => Object.fromEntries(e.fields).n)

// Stream ids as redis-server reads them: the cases of ../../testing/test/fixtures/streamInputs.ts.

describe("RedisStreams", () => {
  layer(Env, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("consume refuses options that are null or of the wrong type, naming them", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("consume-options", "g", "0")
        yield* refusesConsumeOptions(streams, "consume-options", "g")
      })
    )

    it.scoped(
      "publish keeps order and fields; readLatest is newest first; read is oldest first after an id",
      () =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const look = yield* observer
          const published: Array<string> = []
          for (let i = 0; i < 5; i++) {
            published.push(
              yield* streams.publish("order", [
                ["n", String(i)],
                ["kind", "test"],
                ["n2", `${i}`]
              ])
            )
          }
          yield* streams.publish("order", { n: "5", extra: "record form" })
          expect(yield* Effect.promise(() => look.xlen("s:order"))).toBe(6)

          const latest = yield* streams.readLatest("order", 3)
          expect(values(latest)).toEqual(["5", "4", "3"])
          expect(latest[1]!.fields).toEqual([
            ["n", "4"],
            ["kind", "test"],
            ["n2", "4"]
          ])
          expect(latest[0]!.fields).toEqual([
            ["n", "5"],
            ["extra", "record form"]
          ])

          const all = yield* streams.read("order", "0", 100)
          expect(ids(all).slice(0, 5)).toEqual(published)
          expect(values(all)).toEqual(["0", "1", "2", "3", "4", "5"])
          const after = yield* streams.read("order", published[1]!, 2)
          expect(values(after)).toEqual(["2", "3"])
          expect(yield* streams.read("order", "$", 10)).toEqual([])
          expect(yield* streams.readLatest("no-such-stream", 10)).toEqual([])
          expect(yield* streams.read("no-such-stream", "0", 10)).toEqual([])
        })
    )

    it.scoped("MAXLEN ~ trims a long stream to about the bound, keeping the newest", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        yield* Effect.forEach(
          Array.from({ length: 3_000 }, (_, i) => i),
          (i) => streams.publish("trim", { n: String(i) }, 100),
          { concurrency: 64, discard: true }
        )
        const last = yield* streams.publish("trim", { n: "last" }, 100)
        const length = yield* Effect.promise(() => look.xlen("s:trim"))
        expect(length).toBeGreaterThanOrEqual(100)
        expect(length).toBeLessThan(300)
        const latest = yield* streams.readLatest("trim", 1)
        expect(ids(latest)).toEqual([last])
        // Without a bound nothing is trimmed.
        yield* Effect.forEach(
          Array.from({ length: 300 }, (_, i) => i),
          (i) => streams.publish("untrimmed", { n: String(i) }),
          { concurrency: 64, discard: true }
        )
        expect(yield* Effect.promise(() => look.xlen("s:untrimmed"))).toBe(300)
      })
    )

    // A command's arguments went to ioredis spread as a function's arguments: past V8's limit
    // (some 120,000), "Maximum call stack size exceeded" instead of Redis's answer.
    it.scoped("an entry of 70,000 fields is published and read back; 200,000 ids are acknowledged", () =>
      Effect.gen(function* () {
        // Commands of this size took more than the suite's 500 ms command timeout on a loaded
        // host: a connection of its own with room for them.
        const streams = yield* Layer.build(
          RedisStreams.layer().pipe(
            Layer.provide(connectionLayer({ keyPrefix: "s:", commandTimeout: "10 seconds" }))
          )
        ).pipe(Effect.map(Context.get(CacheStreams.CacheStreams)))
        const fields = Array.from({ length: 70_000 }, (_, i) => [`f${i}`, String(i)] as const)
        const id = yield* streams.publish("wide", fields)
        const [entry] = yield* streams.readLatest("wide", 1)
        expect(entry!.id).toBe(id)
        expect(entry!.fields).toEqual(fields)
        yield* streams.createGroup("wide", "g", "0")
        const [delivered] = yield* streams
          .consume("wide", "g", "c", { blockMs: 100 })
          .pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(delivered!.fields).toHaveLength(70_000)
        const unknown = Array.from({ length: 200_000 }, (_, i) => `1-${i}`)
        expect(yield* streams.ack("wide", "g", [...unknown, id])).toBe(1)
      })
    )

    it.scoped("a blocking read is woken by a publish, while cache commands still answer fast", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const tier = yield* Tier.L2
        const look = yield* observer
        // A blockMs far beyond the test: the read ends only when a publish wakes it.
        const reader = yield* Effect.fork(streams.read("wake", "$", 10, 600_000))
        yield* eventually(Effect.filterOrFail(blockedNow(look), (n) => n === 1))
        // The blocked read holds its own connection: the command connection is free. Each
        // command answers while the read is still blocked on the server (it did not wait for it).
        for (let i = 0; i < 20; i++) {
          yield* tier.set(`k${i}`, Entry.make({ value: i, now: Date.now(), ttlMs: 10_000 }))
          const got = yield* tier.get(`k${i}`)
          expect(Option.isSome(got)).toBe(true)
          expect(reader.unsafePoll()).toBeNull()
          expect(yield* blockedNow(look)).toBe(1)
        }
        const id = yield* streams.publish("wake", { n: "woke" })
        const entries = yield* Fiber.join(reader)
        expect(ids(entries)).toEqual([id])
      })
    )

    it.scoped("a blocking read with nothing to read ends after blockMs with no entries", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const [elapsed, entries] = yield* timed(streams.read("quiet", "$", 10, 200))
        expect(entries).toEqual([])
        expect(elapsed).toBeGreaterThanOrEqual(190)
        // blockMs plus 1 s of room for a loaded host; a read that never ends still fails it.
        expect(elapsed).toBeLessThan(1_200)
      })
    )

    it.scoped("blocking reads take turns; an interrupted one does not hold up the next", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        // A blockMs far beyond the test: only its wake-up (CLIENT UNBLOCK) frees the connection.
        const first = yield* Effect.fork(streams.read("turns", "$", 10, 600_000))
        yield* eventually(Effect.filterOrFail(blockedNow(look), (n) => n === 1))
        yield* Fiber.interrupt(first)
        expect(yield* blockedNow(look)).toBe(0)
        const entries = yield* streams.read("turns", "$", 10, 100)
        expect(entries).toEqual([])
      })
    )

    // Blocking reads take turns on one connection. A read waiting for its turn must not have
    // "$" resolved late (losing entries published while it waited), nor wait past its blockMs.
    it.scoped(
      'a blocking read of "$" queued behind another read still sees an entry published after the call, within its blockMs',
      () =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const other = yield* Effect.fork(streams.read("queued-other", "$", 10, 10_000))
          yield* Effect.sleep("50 millis")
          const reader = yield* Effect.fork(timed(streams.read("queued-mine", "$", 10, 200)))
          yield* Effect.sleep("50 millis")
          const id = yield* streams.publish("queued-mine", { n: "1" })
          const [elapsed, entries] = yield* Fiber.join(reader)
          yield* Fiber.interrupt(other)
          // Its blockMs (200) plus room for a loaded host; waiting for its turn takes 10 s.
          expect({ tookUnder2s: elapsed < 2_000, ids: entries.map((e) => e.id) }).toEqual({
            tookUnder2s: true,
            ids: [id]
          })
        })
    )

    it.scoped("a blocking read whose turn comes late blocks only for the time left of its blockMs", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const other = yield* Effect.fork(streams.read("late-other", "$", 10, 2_000))
        yield* Effect.sleep("20 millis")
        // Its turn comes after about 2 s: it then blocks for about 1 s, not 3 (which would end
        // it after 5 s): the bound leaves 1.5 s of room for a loaded host.
        const [elapsed, entries] = yield* timed(streams.read("late-mine", "$", 10, 3_000))
        expect(entries).toEqual([])
        expect(elapsed).toBeGreaterThanOrEqual(2_950)
        expect(elapsed).toBeLessThan(4_500)
        yield* Fiber.join(other)
        // And one woken in that time answers what was published after the call.
        const waiting = yield* Effect.fork(streams.read("late-other", "$", 10, 300))
        yield* Effect.sleep("20 millis")
        // A blockMs far beyond the test: ending with the entry, it was woken by the publish.
        const reader = yield* Effect.fork(streams.read("late-mine", "$", 10, 600_000))
        yield* Effect.sleep("400 millis")
        const id = yield* streams.publish("late-mine", { n: "1" })
        const woken = yield* Fiber.join(reader)
        expect(ids(woken)).toEqual([id])
        yield* Fiber.join(waiting)
      })
    )

    it.scoped(
      "blocking reads that give up while the blocking connection opens leave one connection, kept",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const context = yield* Layer.build(
            RedisStreams.layer().pipe(
              Layer.provide(connectionLayer({ keyPrefix: "s:", connectionName: "fresh" }))
            )
          )
          const streams = Context.get(context, CacheStreams.CacheStreams)
          // Each gives up after 1 ms, most likely before the connection is open.
          const answers = yield* Effect.all(
            Array.from({ length: 10 }, () => streams.read("opening", "$", 10, 1)),
            { concurrency: "unbounded" }
          )
          expect(answers.flat()).toEqual([])
          const blockingConnections = clientNames(look).pipe(
            Effect.map((names) => names.filter((name) => name === "fresh:blocking").length)
          )
          yield* eventually(Effect.filterOrFail(blockingConnections, (n) => n === 1))
          // The next read uses it (no other is opened) and is woken by a publish.
          const reader = yield* Effect.fork(streams.read("opening", "$", 10, 2_000))
          yield* Effect.sleep("100 millis")
          const id = yield* streams.publish("opening", { n: "1" })
          expect(ids(yield* Fiber.join(reader))).toEqual([id])
          expect(yield* blockingConnections).toBe(1)
        })
    )

    it.scoped("consumer groups: delivery, ack, pending count; an existing group is no error", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        yield* streams.createGroup("jobs", "workers")
        yield* streams.createGroup("jobs", "workers")
        const published: Array<string> = []
        for (let i = 0; i < 5; i++) published.push(yield* streams.publish("jobs", { n: String(i) }))

        const delivered = yield* streams
          .consume("jobs", "workers", "w1", { count: 2, blockMs: 200 })
          .pipe(Stream.take(5), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(ids(delivered)).toEqual(published)
        const pending = () =>
          Effect.promise(() => look.xpending("s:jobs", "workers") as Promise<[number, ...Array<unknown>]>)
        expect((yield* pending())[0]).toBe(5)

        expect(yield* streams.ack("jobs", "workers", published.slice(0, 3))).toBe(3)
        expect(yield* streams.ack("jobs", "workers", published.slice(0, 3))).toBe(0)
        expect((yield* pending())[0]).toBe(2)

        // A second consumer gets only new entries.
        const later = yield* streams.publish("jobs", { n: "5" })
        const other = yield* streams
          .consume("jobs", "workers", "w2", { blockMs: 200 })
          .pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(ids(other)).toEqual([later])

        // w1 starting again first gets back what it never acknowledged.
        const again = yield* streams
          .consume("jobs", "workers", "w1", { blockMs: 200 })
          .pipe(Stream.take(2), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(ids(again)).toEqual(published.slice(3))
        expect(yield* streams.ack("jobs", "workers", [...ids(again), later])).toBe(3)
        expect((yield* pending())[0]).toBe(0)
      })
    )

    // Redis answers a pending entry deleted since (XDEL, XTRIM, MAXLEN) with no fields: it was
    // delivered as an entry with no fields (which publish never makes), where a claimed one is
    // not delivered (Redis drops it from the group).
    it.scoped(
      "a consumer's own pending entry deleted since is not delivered again, and leaves the group",
      () =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const look = yield* observer
          yield* streams.createGroup("gone", "g")
          const first = yield* streams.publish("gone", { n: "1" })
          const second = yield* streams.publish("gone", { n: "2" })
          const third = yield* streams.publish("gone", { n: "3" })
          yield* streams.consume("gone", "g", "c", { blockMs: 100 }).pipe(Stream.take(3), Stream.runDrain)
          yield* Effect.promise(() => look.xdel("s:gone", first, third))
          const later = yield* streams.publish("gone", { n: "4" })
          const again = yield* streams
            .consume("gone", "g", "c", { count: 1, blockMs: 100 })
            .pipe(Stream.take(2), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
          expect(again).toEqual([
            { id: second, fields: [["n", "2"]] },
            { id: later, fields: [["n", "4"]] }
          ])
          const pending = yield* Effect.promise(
            () => look.xpending("s:gone", "g", "-", "+", 10) as Promise<Array<[string, ...Array<unknown>]>>
          )
          expect(pending.map(([id]) => id)).toEqual([second, later])
        })
    )

    it.scoped("a consumer waits for entries published later; closing it closes its connection", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        const consumers = Effect.map(clientNames(look), (names) =>
          names.filter((n) => n === "tiercache:consumer")
        )
        yield* streams.createGroup("later", "g")
        const consumer = yield* Effect.fork(
          streams
            .consume("later", "g", "c", { blockMs: 600_000 })
            .pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        )
        yield* Effect.sleep("100 millis")
        expect(yield* consumers).toHaveLength(1)
        const id = yield* streams.publish("later", { n: "1" })
        // Its blockMs is far beyond the test: the entry came because the publish woke it.
        const got = yield* Fiber.join(consumer)
        expect(ids(got)).toEqual([id])
        yield* eventually(
          Effect.flatMap(consumers, (left) => (left.length === 0 ? Effect.void : Effect.fail(left))),
          "2 seconds"
        )
      })
    )

    // The connection layer closed its own connections only: a consumer's went on, delivering
    // entries after the layer (and the application using it) had closed, and a consume called
    // afterwards opened a new connection, where a blocking read fails.
    it.scoped(
      "closing the connection layer ends its consumers with a StreamError and closes their connections",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const look = yield* observer
          const consumers = Effect.map(clientNames(look), (names) =>
            names.filter((n) => n === "closing:consumer")
          )
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(
            RedisStreams.layer().pipe(
              Layer.provide(connectionLayer({ keyPrefix: "s:", connectionName: "closing" })),
              Layer.provide(Layer.succeed(RedisServer.RedisServer, server))
            ),
            scope
          )
          const streams = Context.get(context, CacheStreams.CacheStreams)
          yield* streams.createGroup("closing", "g")
          const got = yield* Queue.unbounded<string>()
          const consumer = yield* Effect.fork(
            streams
              .consume("closing", "g", "c", { blockMs: 100 })
              .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
          )
          const first = yield* streams.publish("closing", { n: "1" })
          expect(yield* Queue.take(got)).toBe(first)
          yield* Scope.close(scope, Exit.void)
          const ended = yield* Fiber.await(consumer).pipe(
            Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error("the consumer goes on") })
          )
          expect(Exit.isFailure(ended) && failureOf(ended)).toMatchObject({
            _tag: "StreamError",
            operation: "consume",
            reason: expect.stringContaining("the connection layer is closed")
          })
          expect(yield* consumers).toEqual([])
          yield* Effect.promise(() => look.xadd("s:closing", "*", "n", "2"))
          // A consume called afterwards fails the same way, with no connection opened.
          const late = yield* Effect.exit(
            Stream.runDrain(streams.consume("closing", "g", "c2", { blockMs: 100 }))
          )
          expect(failureOf(late)).toMatchObject({
            _tag: "StreamError",
            reason: expect.stringContaining("the connection layer is closed")
          })
          expect(yield* consumers).toEqual([])
          expect(Chunk.toReadonlyArray(yield* Queue.takeAll(got))).toEqual([])
        })
    )

    it.scoped(
      "a consumer whose connection is killed reads on once it is back, delivering its unacknowledged entries again",
      () =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const look = yield* observer
          yield* streams.createGroup("resilient", "g")
          const got = yield* Queue.unbounded<string>()
          yield* Effect.forkScoped(
            streams
              .consume("resilient", "g", "c", { blockMs: 200 })
              .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
          )
          const first = yield* streams.publish("resilient", { n: "1" })
          expect(yield* Queue.take(got)).toBe(first)
          // Not acknowledged; the consumer's connection goes away.
          const list = yield* Effect.promise(() => look.client("LIST") as Promise<string>)
          const id = /id=(\d+) [^\n]*name=tiercache:consumer/.exec(list)?.[1]
          expect(id).toBeDefined()
          yield* Effect.promise(() => look.client("KILL", "ID", id!))
          const second = yield* streams.publish("resilient", { n: "2" })
          // At least once: the pending entry again, then the new one.
          const [again, next] = [yield* Queue.take(got), yield* Queue.take(got)]
          expect([again, next]).toEqual([first, second])
          expect(yield* streams.ack("resilient", "g", [first, second])).toBe(2)
        }),
      { timeout: 10_000 }
    )

    it.scoped("bad arguments and Redis errors are StreamErrors", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        yield* Effect.promise(() => look.set("s:not-a-stream", "x"))
        const failures = [
          streams.publish("s", {}),
          streams.publish("", { a: "b" }),
          streams.publish("s", { a: "b" }, -1),
          streams.readLatest("s", 0),
          streams.read("s", "0", 1.5),
          streams.publish("not-a-stream", { a: "b" }),
          streams.createGroup("not-a-stream", "g"),
          Stream.runDrain(streams.consume("s", "g", "c", { blockMs: 0 })),
          Stream.runDrain(streams.consume("no-group-stream", "nope", "c", { blockMs: 100 }))
        ]
        for (const failing of failures) {
          const result = yield* Effect.either(failing as Effect.Effect<unknown, { readonly _tag: string }>)
          expect(Either.isLeft(result)).toBe(true)
          if (Either.isLeft(result)) expect(result.left._tag).toBe("StreamError")
        }
      })
    )

    it.scoped(
      "arguments from plain JS (null, a Proxy, a symbol, an object) are StreamErrors, never a defect",
      () =>
        Effect.gen(function* () {
          const typed = yield* CacheStreams.CacheStreams
          // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
          const streams: any = typed
          const boom = () => {
            throw new Error("boom")
          }
          const proxy = new Proxy({}, { get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom })
          const calls: ReadonlyArray<() => Effect.Effect<unknown, { readonly _tag: string }>> = [
            () => streams.publish(proxy, { a: "b" }),
            () => streams.publish("s", null),
            () => streams.publish("s", "a=b"),
            () => streams.publish("s", proxy),
            () => streams.publish("s", [["a"]]),
            () => streams.publish("s", { a: { nested: true } }),
            () => streams.publish("s", { a: "b" }, Symbol("n")),
            () => streams.read("s", 0, 1),
            () => streams.read("s", proxy, 1),
            () => streams.createGroup("s", null),
            () => streams.createGroup("s", "g", {}),
            () => streams.ack("s", "g", null),
            () => streams.ack("s", "g", "1-0"),
            () => streams.ack("s", "g", [1]),
            () => streams.ack("s", "g", new Proxy(["1-0"], { get: boom })),
            () => streams.ack("s", proxy, ["1-0"]),
            // A consumer with no group or consumer name, or options that are not an object.
            () => Stream.runDrain(streams.consume("s", "g", "c", null)),
            () => Stream.runDrain(streams.consume("s", "g", "c", "fast")),
            () => Stream.runDrain(streams.consume("s", "g", undefined)),
            () => Stream.runDrain(streams.consume("s", "g", "")),
            () => Stream.runDrain(streams.consume("s", null, "c")),
            () => Stream.runDrain(streams.consume("s", proxy, "c"))
          ]
          yield* typed.publish("s", { a: "b" })
          yield* typed.createGroup("s", "g")
          for (const call of calls) {
            const result = yield* Effect.either(call())
            expect(Either.isLeft(result) && result.left._tag).toBe("StreamError")
          }
          // Nothing was read for a consumer with no name: Redis knows no consumer of g.
          const look = yield* observer
          expect(yield* Effect.promise(() => look.xinfo("CONSUMERS", "s:s", "g"))).toEqual([])
          // Numbers are fine as field values; the entry reads back as text.
          const numeric = { n: 5 } as unknown as CacheStreams.Fields
          const id = yield* typed.publish("plain-js", numeric)
          expect(yield* typed.readLatest("plain-js", 1)).toEqual([{ id, fields: [["n", "5"]] }])
        })
    )

    // README (Streams): "Field values are strings (from plain JavaScript, finite numbers too, read
    // back as text); anything else ... is a StreamError before Redis is asked."
    it.scoped(
      "a field value that is neither a string nor a finite number is a StreamError; Redis gets nothing",
      () =>
        Effect.gen(function* () {
          const typed = yield* CacheStreams.CacheStreams
          // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
          const streams: any = typed
          const look = yield* observer
          for (const [i, value] of refusedFieldValues.entries()) {
            const result = yield* Effect.either(
              streams.publish(`odd-${i}`, { ok: "x", f: value }) as Effect.Effect<
                unknown,
                { readonly _tag: string }
              >
            )
            expect(Either.isLeft(result) && result.left._tag).toBe("StreamError")
            expect(yield* Effect.promise(() => look.exists(`s:odd-${i}`))).toBe(0)
          }
          const id = yield* typed.publish("odd-numbers", {
            a: -0,
            b: 1.5e300,
            c: -7
          } as unknown as CacheStreams.Fields)
          expect(yield* typed.readLatest("odd-numbers", 1)).toEqual([
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

    // Redis holds text as UTF-8, where a lone surrogate becomes U+FFFD: "u-\uD800" and
    // "u-\uDBFF" would be one Redis stream, and a reader of one would get the other's entries
    // (the README suggests a stream per user). Such names are refused, as the cache's keys are.
    it.scoped("stream names with lone surrogates are refused, never merged into one Redis stream", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const published = yield* Effect.either(streams.publish("u-\uD800", { secret: "for user A" }))
        const readByOther = yield* Effect.either(streams.readLatest("u-\uDBFF", 10))
        const leaked =
          readByOther._tag === "Right" &&
          readByOther.right.some((e) => e.fields.some(([, v]) => v === "for user A"))
        expect({ publishRefused: published._tag === "Left", leaked }).toEqual({
          publishRefused: true,
          leaked: false
        })
        // Nothing reached Redis, and every other name or text of an operation is held to the same rule.
        const look = yield* observer
        expect(yield* Effect.promise(() => look.exists("s:u-\uFFFD"))).toBe(0)
        yield* streams.publish("u", { a: "b" })
        yield* streams.createGroup("u", "g")
        const refused = [
          streams.readLatest("u-\uDBFF", 10),
          streams.read("u-\uDC00", "0", 10),
          streams.read("u-\uDC00", "0", 10, 50),
          streams.read("u", "0-\uD800", 10),
          streams.createGroup("u", "g-\uD800"),
          streams.ack("u", "g-\uD800", ["0-1"]),
          streams.ack("u", "g", ["0-1\uD800"]),
          streams.publish("u", { "f\uD800": "v" }),
          streams.publish("u", { f: "v\uDFFF" }),
          Stream.runDrain(streams.consume("u", "g", "c-\uD800", { blockMs: 50 }))
        ]
        for (const failing of refused) {
          const result = yield* Effect.either(failing as Effect.Effect<unknown, { readonly _tag: string }>)
          expect(Either.isLeft(result) && result.left._tag).toBe("StreamError")
        }
        expect(yield* Effect.promise(() => look.xinfo("CONSUMERS", "s:u", "g"))).toEqual([])
        expect(yield* Effect.promise(() => look.xlen("s:u"))).toBe(1)
        // Well-formed text outside the BMP (a surrogate pair) is fine.
        const id = yield* streams.publish("u-\u{1F600}", { "\u{1F600}": "\u{1F601}" })
        expect(yield* streams.readLatest("u-\u{1F600}", 1)).toEqual([
          { id, fields: [["\u{1F600}", "\u{1F601}"]] }
        ])
      })
    )

    // A failed operation's span ends with its error, which an OpenTelemetry exporter records as
    // the span's status message and an exception event: the StreamError's message named the
    // stream ("stream user:7:events: publish failed: ..."), personal data the spans keep out
    // unless streamNamesInSpans.
    it.scoped("a failed operation's span holds no stream name; the caller's error still names it", () =>
      Effect.gen(function* () {
        const { tracer, spans } = yield* recordingTracer
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        yield* Effect.promise(() => look.set("s:user:7:events", "not a stream"))
        const failures = [
          streams.publish("user:7:events", { n: "1" }),
          streams.readLatest("user:7:events", 1),
          streams.read("user:7:events", "0", 1),
          streams.read("user:7:events", "$", 1, 100),
          streams.createGroup("user:7:events", "g"),
          streams.ack("user:7:events", "g", ["1-0"]),
          Stream.runDrain(streams.consume("user:7:events", "g", "c", { blockMs: 100 }))
        ]
        for (const failing of failures) {
          const exit = yield* Effect.exit(failing.pipe(Effect.withTracer(tracer)))
          expect(failureOf(exit)).toMatchObject({ _tag: "StreamError", stream: "user:7:events" })
          expect(String(failureOf(exit))).toContain("user:7:events")
        }
        expect(spans.length).toBeGreaterThanOrEqual(failures.length)
        for (const { span } of spans) {
          expect(span.status._tag).toBe("Ended")
          for (const text of recordedFailure(span.status)) {
            expect(text).toContain("WRONGTYPE")
            expect(text).not.toContain("user:7")
          }
        }
      })
    )

    it.scoped("spans: OpenTelemetry messaging attributes; stream names only when asked", () =>
      Effect.gen(function* () {
        const native = yield* Effect.tracer
        const spans: Array<Tracer.Span> = []
        const recording = Tracer.make({
          context: native.context,
          span: (name, parent, context, links, startTime, kind, options) => {
            const span = native.span(name, parent, context, links, startTime, kind, options)
            spans.push(span)
            return span
          }
        })
        const exercise = (streams: CacheStreams.CacheStreams.Service, stream: string) =>
          Effect.gen(function* () {
            const id = yield* streams.publish(stream, { n: "1" })
            yield* streams.readLatest(stream, 5)
            yield* streams.read(stream, "0", 5)
            yield* streams.createGroup(stream, "billing", "0")
            yield* streams
              .consume(stream, "billing", "c1", { blockMs: 100 })
              .pipe(Stream.take(1), Stream.runDrain)
            yield* streams.ack(stream, "billing", [id])
            return id
          }).pipe(Effect.withTracer(recording))

        const id = yield* exercise(yield* CacheStreams.CacheStreams, "user:42:events")
        const attrs = (name: string) => Object.fromEntries(spans.find((s) => s.name === name)!.attributes)
        expect([...new Set(spans.map((s) => s.name))]).toEqual([
          "tiercache.streams.publish",
          "tiercache.streams.readLatest",
          "tiercache.streams.read",
          "tiercache.streams.createGroup",
          "tiercache.streams.consume",
          "tiercache.streams.ack"
        ])
        expect(spans.find((s) => s.name === "tiercache.streams.publish")!.kind).toBe("producer")
        expect(attrs("tiercache.streams.publish")).toEqual({
          "messaging.system": "redis",
          "messaging.operation.type": "send",
          "messaging.operation.name": "XADD",
          "messaging.message.id": id
        })
        expect(attrs("tiercache.streams.readLatest")).toEqual({
          "messaging.system": "redis",
          "messaging.operation.type": "receive",
          "messaging.operation.name": "XREVRANGE",
          "messaging.batch.message_count": 1
        })
        expect(attrs("tiercache.streams.read")["messaging.operation.name"]).toBe("XREAD")
        expect(attrs("tiercache.streams.createGroup")).toEqual({
          "messaging.system": "redis",
          "messaging.operation.name": "XGROUP CREATE",
          "messaging.consumer.group.name": "billing"
        })
        expect(attrs("tiercache.streams.consume")).toMatchObject({
          "messaging.operation.type": "receive",
          "messaging.operation.name": "XREADGROUP",
          "messaging.consumer.group.name": "billing"
        })
        // one span per XREADGROUP: first the (empty) pending entries, then the new one
        const consumed = spans.filter((s) => s.name === "tiercache.streams.consume")
        expect(consumed.map((s) => s.attributes.get("messaging.batch.message_count"))).toEqual([0, 1])
        expect(attrs("tiercache.streams.ack")).toMatchObject({ "messaging.operation.type": "settle" })
        // the stream's name (here holding a user id) is in no span
        for (const span of spans) {
          for (const value of span.attributes.values()) expect(String(value)).not.toContain("user:42")
        }

        spans.length = 0
        const named = yield* RedisStreams.make({ streamNamesInSpans: true })
        yield* exercise(named, "orders")
        expect(spans.length).toBeGreaterThanOrEqual(6)
        for (const span of spans) expect(span.attributes.get("messaging.destination.name")).toBe("orders")
      })
    )

    describe("stream ids as Redis reads them", () => {
      /** Entries 5-0, 5-1 and 7-0 in `stream`, a group "all" from 0 that has delivered all three. */
      const fiveFiveSeven = (stream: string) =>
        Effect.gen(function* () {
          const streams = yield* CacheStreams.CacheStreams
          const look = yield* observer
          for (const id of ["5-0", "5-1", "7-0"])
            yield* Effect.promise(() => look.xadd(`s:${stream}`, id, "n", id))
          yield* streams.createGroup(stream, "all", "0")
          yield* streams.consume(stream, "all", "c", { blockMs: 200 }).pipe(Stream.take(3), Stream.runDrain)
          return streams
        })

      it.scoped("read, createGroup and ack accept them, and order them as Redis does", () =>
        Effect.gen(function* () {
          yield* acceptsAsRedis(yield* fiveFiveSeven("ids"), "ids")
        })
      )

      it.scoped("read, createGroup and ack refuse the others, acking nothing", () =>
        Effect.gen(function* () {
          yield* refusesAsRedis(yield* fiveFiveSeven("refused-ids"), "refused-ids")
        })
      )
    })
  })
})
