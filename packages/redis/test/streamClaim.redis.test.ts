/**
 * `consume` with `claimIdleMs`: a consumer takes over the entries other consumers of its group
 * left unacknowledged that long (streamClaim.ts), on a real redis-server.
 */
import { describe, expect, layer } from "@effect/vitest"
import { CacheError, CacheStreams } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Chunk, Effect, Fiber, Layer, Queue, Stream } from "effect"
import { vi } from "vitest"
import { RedisStreams } from "../src/index.js"
import { connectionLayer, failureOf, observer, recordingTracer, timed } from "./utils.js"

const Connection = connectionLayer({ keyPrefix: "c:" })
const Env = Layer.mergeAll(Connection, RedisStreams.layer().pipe(Layer.provide(Connection))).pipe(
  Layer.provideMerge(RedisServer.layer())
)

const ids = (entries: ReadonlyArray<CacheStreams.StreamEntry>) => entries.map((e) => e.id)

/** Publishes `n` entries to `stream`; answers their ids. */
const publishMany = (stream: string, n: number) =>
  Effect.flatMap(CacheStreams.CacheStreams, (streams) =>
    Effect.forEach(
      Array.from({ length: n }, (_, i) => i),
      (i) => streams.publish(stream, { n: String(i) })
    )
  )

/** `consumer` takes `n` entries of `stream` in `group` and stops, acknowledging none (it "crashes"). */
const receiveAndDrop = (stream: string, group: string, consumer: string, n: number) =>
  Effect.flatMap(CacheStreams.CacheStreams, (streams) =>
    streams
      .consume(stream, group, consumer, { count: 100, blockMs: 100 })
      .pipe(Stream.take(n), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
  )

/** Each pending entry of `group` with its consumer (XPENDING's extended form). */
const pendingOwners = (stream: string, group: string) =>
  Effect.flatMap(observer, (look) =>
    Effect.promise(
      () =>
        look.xpending(`c:${stream}`, group, "-", "+", 1000) as Promise<
          Array<[string, string, number, number]>
        >
    )
  ).pipe(Effect.map((rows) => rows.map(([id, consumer]) => [id, consumer] as const)))

describe("RedisStreams consume claimIdleMs", () => {
  layer(Env, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("takes over the entries another consumer left unacknowledged that long, then holds them", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("orphans", "g")
        const published = yield* publishMany("orphans", 3)
        // Timed from before "gone" reads them: their idle time starts later, at that delivery.
        const [elapsed, [dropped, claimed]] = yield* timed(
          Effect.zip(
            receiveAndDrop("orphans", "g", "gone", 3),
            streams
              .consume("orphans", "g", "alive", { claimIdleMs: 300, blockMs: 50 })
              .pipe(Stream.take(3), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
          )
        )
        expect(ids(dropped)).toEqual(published)
        expect(ids(claimed)).toEqual(published)
        expect(claimed.map((e) => Object.fromEntries(e.fields).n)).toEqual(["0", "1", "2"])
        // Not before they were idle for claimIdleMs (Redis counts whole milliseconds: over 299).
        expect(elapsed).toBeGreaterThanOrEqual(299)
        expect(yield* pendingOwners("orphans", "g")).toEqual(published.map((id) => [id, "alive"]))
        expect(yield* streams.ack("orphans", "g", published)).toBe(3)
        expect(yield* pendingOwners("orphans", "g")).toEqual([])
      })
    )

    it.scoped("a consumer's own unacknowledged entries are not delivered to it again", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("own", "g")
        const got = yield* Queue.unbounded<string>()
        yield* Effect.forkScoped(
          streams
            .consume("own", "g", "solo", { claimIdleMs: 100, blockMs: 50 })
            .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
        )
        const [first] = yield* publishMany("own", 1)
        expect(yield* Queue.take(got)).toBe(first)
        // Several passes go by while the entry is idle well past claimIdleMs.
        yield* Effect.sleep("700 millis")
        expect(yield* Queue.size(got)).toBe(0)
        const [second] = yield* publishMany("own", 1)
        expect(yield* Queue.take(got)).toBe(second)
        expect(yield* Queue.size(got)).toBe(0)
        expect(yield* pendingOwners("own", "g")).toEqual([
          [first, "solo"],
          [second, "solo"]
        ])
      })
    )

    it.scoped("without claimIdleMs another consumer's entries stay with it", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("kept", "g")
        const published = yield* publishMany("kept", 2)
        yield* receiveAndDrop("kept", "g", "gone", 2)
        const other = yield* Effect.fork(
          streams.consume("kept", "g", "other", { blockMs: 50 }).pipe(Stream.take(1), Stream.runCollect)
        )
        yield* Effect.sleep("600 millis")
        expect(other.unsafePoll()).toBeNull()
        yield* Fiber.interrupt(other)
        expect(yield* pendingOwners("kept", "g")).toEqual(published.map((id) => [id, "gone"]))
      })
    )

    it.scoped("consumers claiming at once: every entry is delivered to exactly one of them", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("shared", "g")
        const published = yield* publishMany("shared", 200)
        yield* receiveAndDrop("shared", "g", "gone", 200)
        const got = yield* Queue.unbounded<string>()
        // Each consumer acknowledges what it claimed well within claimIdleMs: a page of 10 taking
        // longer (150 ms did, on a loaded 2-core host) would be claimed again, as documented.
        for (const name of ["c1", "c2", "c3", "c4"]) {
          yield* Effect.forkScoped(
            streams
              .consume("shared", "g", name, { claimIdleMs: 1_500, blockMs: 20, count: 10 })
              .pipe(
                Stream.runForEach((entry) =>
                  Effect.zipRight(Queue.offer(got, entry.id), streams.ack("shared", "g", [entry.id]))
                )
              )
          )
        }
        const delivered: Array<string> = []
        while (delivered.length < published.length) delivered.push(yield* Queue.take(got))
        // Every consumer acknowledges what it gets at once: no entry may come twice.
        yield* Effect.sleep("500 millis")
        delivered.push(...Chunk.toReadonlyArray(yield* Queue.takeAll(got)))
        expect(delivered.sort()).toEqual([...published].sort())
        expect(yield* pendingOwners("shared", "g")).toEqual([])
      })
    )

    // A pass pages through the pending entries `count` at a time (XPENDING ... count), one page
    // a pull: a claimer that stops after a page leaves the rest to their consumer. TestStreams
    // (packages/testing) mirrors this; its TestStreams.test.ts has the same two tests.
    it.scoped("a claim pass takes over count entries a pull: a claimer that stops leaves the rest", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("paged", "g")
        const published = yield* publishMany("paged", 5)
        yield* receiveAndDrop("paged", "g", "gone", 5)
        const alive = streams.consume("paged", "g", "alive", { claimIdleMs: 300, count: 2, blockMs: 50 })
        const claimed = yield* alive.pipe(
          Stream.take(2),
          Stream.runCollect,
          Effect.map(Chunk.toReadonlyArray)
        )
        expect(ids(claimed)).toEqual(published.slice(0, 2))
        expect(yield* pendingOwners("paged", "g")).toEqual([
          ...published.slice(0, 2).map((id) => [id, "alive"]),
          ...published.slice(2).map((id) => [id, "gone"])
        ])
        // The three it did not claim come back to gone first when it consumes again.
        const [later] = yield* publishMany("paged", 1)
        expect(ids(yield* receiveAndDrop("paged", "g", "gone", 1))).toEqual([published[2]])
        expect(ids(yield* receiveAndDrop("paged", "g", "gone", 4))).toEqual([...published.slice(2), later])
        // And a claimer that goes on takes them over a page at a time, in id order.
        const rest = yield* alive.pipe(Stream.take(6), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(ids(rest)).toEqual([...published, later])
        expect(yield* pendingOwners("paged", "g")).toEqual([...published, later].map((id) => [id, "alive"]))
      })
    )

    it.scoped("a claim page counts the claimer's own idle entries among its count", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("ownpage", "g")
        const [first] = yield* publishMany("ownpage", 1)
        yield* receiveAndDrop("ownpage", "g", "alive", 1)
        const theirs = yield* publishMany("ownpage", 2)
        yield* receiveAndDrop("ownpage", "g", "gone", 2)
        // "alive" gets its own entry again, then holds it unacknowledged. Its first pass (at once)
        // finds nothing idle a second yet; its second (a second later) finds its entry and gone's
        // idle, the first page [its own, gone's first].
        const got = yield* streams
          .consume("ownpage", "g", "alive", { claimIdleMs: 1_000, count: 2, blockMs: 50 })
          .pipe(Stream.take(2), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(ids(got)).toEqual([first, theirs[0]])
        expect(yield* pendingOwners("ownpage", "g")).toEqual([
          [first, "alive"],
          [theirs[0], "alive"],
          [theirs[1], "gone"]
        ])
      })
    )

    it.scoped("an entry deleted while it was pending is not delivered", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const look = yield* observer
        yield* streams.createGroup("deleted", "g")
        const [first, second] = yield* publishMany("deleted", 2)
        yield* receiveAndDrop("deleted", "g", "gone", 2)
        yield* Effect.promise(() => look.xdel("c:deleted", first!))
        const claimed = yield* streams
          .consume("deleted", "g", "alive", { claimIdleMs: 100, blockMs: 50 })
          .pipe(Stream.take(1), Stream.runCollect, Effect.map(Chunk.toReadonlyArray))
        expect(claimed).toEqual([{ id: second, fields: [["n", "1"]] }])
        expect(yield* pendingOwners("deleted", "g")).toEqual([[second, "alive"]])
      })
    )

    it.scoped("claimIdleMs must be a positive integer (plain JavaScript included)", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("bad", "g")
        for (const claimIdleMs of [0, -5, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "100", null]) {
          const exit = yield* Effect.exit(
            streams
              .consume("bad", "g", "c", { claimIdleMs: claimIdleMs as unknown as number })
              .pipe(Stream.take(1), Stream.runDrain)
          )
          const error = failureOf(exit)
          expect(error).toBeInstanceOf(CacheError.StreamError)
          expect(error.reason).toBe("claimIdleMs must be a positive integer")
        }
      })
    )

    // Spans: one per XREADGROUP, and one per page of a claim pass; none for a read between
    // passes, where no pass is due and nothing is claimed (an empty XCLAIM span per read, that
    // sent no command, doubled a consumer's spans).
    it.scoped("no XCLAIM span when no pass is due", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("traced", "g")
        const { tracer, spans } = yield* recordingTracer
        const published = yield* publishMany("traced", 1)
        const taken = yield* Effect.fork(
          streams
            .consume("traced", "g", "t", { claimIdleMs: 60_000, blockMs: 20 })
            .pipe(Stream.take(5), Stream.runCollect, Effect.withTracer(tracer))
        )
        yield* Effect.sleep("100 millis")
        for (let i = 0; i < 4; i++) {
          published.push(...(yield* publishMany("traced", 1)))
          yield* Effect.sleep("60 millis")
        }
        expect(ids(Chunk.toReadonlyArray(yield* Fiber.join(taken)))).toEqual(published)
        const operations = spans
          .filter((s) => s.name === "tiercache.streams.consume")
          .map((s) => s.span.attributes.get("messaging.operation.name"))
        expect(operations.filter((o) => o === "XREADGROUP").length).toBeGreaterThanOrEqual(5)
        // The first pass only (due at once); the next is a minute away.
        expect(operations.filter((o) => o === "XCLAIM")).toEqual(["XCLAIM"])
      })
    )

    // The wall clock stepped back (NTP, a VM restored) after a pass: the next pass is still due
    // claimIdleMs later, not once the clock has caught up (an hour here, while the entries of a
    // consumer that is gone stayed pending).
    it.scoped("a wall clock stepped back does not put off the next pass", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.createGroup("stepped", "g")
        // Entries another consumer took and dropped.
        const published = yield* publishMany("stepped", 2)
        yield* receiveAndDrop("stepped", "g", "gone", 2)
        const got = yield* Queue.unbounded<string>()
        yield* Effect.forkScoped(
          streams
            .consume("stepped", "g", "alive", { claimIdleMs: 200, blockMs: 20 })
            .pipe(Stream.runForEach((entry) => Queue.offer(got, entry.id)))
        )
        // The first pass (due at once) is made, before the entries are idle 200 ms.
        yield* Effect.sleep("50 millis")
        expect(yield* Queue.size(got)).toBe(0)
        const now = Date.now.bind(Date)
        const back = vi.spyOn(Date, "now").mockImplementation(() => now() - 3_600_000)
        yield* Effect.addFinalizer(() => Effect.sync(() => back.mockRestore()))
        const claimed: Array<string> = []
        while (claimed.length < 2) {
          const id = yield* Queue.take(got).pipe(Effect.timeout("2 seconds"))
          if (published.includes(id)) claimed.push(id)
        }
        expect(claimed.sort()).toEqual([...published].sort())
      })
    )
  })
})
