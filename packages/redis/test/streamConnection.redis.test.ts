/**
 * Stream commands beside the cache's on one RedisConnection, on a slow link: `publish`,
 * `readLatest` and non-blocking `read` ran on the command connection, under its fixed command
 * timeout. An entry of a few MB then never read (its reply took longer than the timeout, every
 * time) nor published, and the cache's small reads sent meanwhile waited behind its transfer
 * and timed out too (counted as tier failures).
 */
import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams, Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Exit, Fiber, Layer, Option, Schedule, Scope, Stream } from "effect"
import { RedisConnection, RedisStreams, RedisTier } from "../src/index.js"
import {
  blackholeProxy,
  clientNames,
  connectionLayer,
  eventually,
  observer,
  silencingProxy,
  throttlingProxy,
  timed,
  watchWrites
} from "./utils.js"

const MB = 1024 * 1024

/** 8 MiB over a link of 10 MB/s: about 0.85 s, well past the command timeout (300 ms). */
const SIZE = 8 * MB
const RATE = 10 * 1_000_000

/** A RedisTier and the streams on one connection behind a link of RATE, keys under `<name>:`. */
const slowCache = (name: string) =>
  Effect.gen(function* () {
    const port = yield* throttlingProxy(RATE)
    const connection = RedisConnection.layer({
      host: "127.0.0.1",
      port,
      keyPrefix: `${name}:`,
      commandTimeout: "300 millis",
      timeoutPerMegabyte: "400 millis",
      connectTimeout: "2 seconds",
      reconnectMaxDelay: "100 millis",
      connectionName: name
    })
    const context = yield* Layer.build(
      Layer.merge(RedisTier.layer(), RedisStreams.layer()).pipe(Layer.provide(connection))
    )
    return {
      tier: Context.get(context, Tier.L2),
      streams: Context.get(context, CacheStreams.CacheStreams)
    }
  })

/**
 * A streams service (stream keys under `<name>:`, a command timeout of 100 ms) behind a proxy
 * whose `blackhole()` makes the connections it carries so far drop what either side sends,
 * closing nothing; connections opened later forward as usual.
 */
const silencedStreams = (name: string) =>
  Effect.gen(function* () {
    const { port, blackhole } = yield* silencingProxy
    const context = yield* Layer.build(
      RedisStreams.layer().pipe(
        Layer.provide(
          RedisConnection.layer({
            host: "127.0.0.1",
            port,
            keyPrefix: `${name}:`,
            commandTimeout: "100 millis",
            connectTimeout: "2 seconds",
            reconnectMaxDelay: "50 millis"
          })
        )
      )
    )
    return {
      streams: Context.get(context, CacheStreams.CacheStreams),
      blackhole
    }
  })

const keys = ["a", "b", "c", "d", "e"]

/** Writes the small values `keys` name, each its own key as its value. */
const writeSmall = (tier: Tier.Tier.Service) =>
  Effect.forEach(keys, (key) => tier.set(key, Entry.make({ value: key, now: Date.now(), ttlMs: 60_000 })))

/** Reads the small values while `stream` runs (started first): what each read answered. */
const getsDuring = <A, E>(tier: Tier.Tier.Service, stream: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const fiber = yield* Effect.fork(Effect.either(stream))
    // The stream command's transfer under way.
    yield* Effect.sleep("100 millis")
    const gets = yield* Effect.all(
      keys.map((key) =>
        Effect.either(tier.get(key)).pipe(
          Effect.map((result) =>
            result._tag === "Left"
              ? `failed: ${result.left.message}`
              : Option.match(result.right, { onNone: () => "miss", onSome: (e) => String(e.value) })
          )
        )
      ),
      { concurrency: "unbounded" }
    )
    return { gets, stream: yield* Fiber.join(fiber) }
  })

/** The length of the `body` field of each entry. */
const bodies = (entries: ReadonlyArray<CacheStreams.StreamEntry>) =>
  entries.map((entry) => new Map(entry.fields).get("body")?.length)

describe("stream commands beside the cache's, on a connection of their own", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "90 seconds" })((it) => {
    it.scoped("readLatest of a large entry answers it, and the cache's reads meanwhile hit", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.xadd("sc1:s", "*", "body", "x".repeat(SIZE)))
        const { tier, streams } = yield* slowCache("sc1")
        yield* writeSmall(tier)
        const { gets, stream } = yield* getsDuring(tier, streams.readLatest("s", 1))
        expect(stream._tag === "Right" ? bodies(stream.right) : stream.left.message).toEqual([SIZE])
        expect(gets).toEqual(keys)
      })
    )

    it.scoped("a non-blocking read of a large entry answers it, and the cache's reads meanwhile hit", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.xadd("sc2:s", "*", "body", "x".repeat(SIZE)))
        const { tier, streams } = yield* slowCache("sc2")
        yield* writeSmall(tier)
        const { gets, stream } = yield* getsDuring(tier, streams.read("s", "0", 10))
        expect(stream._tag === "Right" ? bodies(stream.right) : stream.left.message).toEqual([SIZE])
        expect(gets).toEqual(keys)
      })
    )

    it.scoped("a blocking read of a large entry answers it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.xadd("sc6:s", "*", "body", "x".repeat(SIZE)))
        const { streams } = yield* slowCache("sc6")
        const read = yield* Effect.either(streams.read("s", "0", 10, 100))
        expect(read._tag === "Right" ? bodies(read.right) : read.left.message).toEqual([SIZE])
      })
    )

    // Waiting while replies arrive must not wait for one that never comes.
    it.scoped(
      "on a streams connection that answers nothing, readLatest and publish still fail, and the layer closes",
      () =>
        Effect.gen(function* () {
          const { port, blackhole } = yield* blackholeProxy
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(
            RedisStreams.layer().pipe(
              Layer.provide(
                RedisConnection.layer({
                  host: "127.0.0.1",
                  port,
                  keyPrefix: "sc7:",
                  commandTimeout: "200 millis",
                  connectTimeout: "2 seconds"
                })
              )
            ),
            scope
          )
          const streams = Context.get(context, CacheStreams.CacheStreams)
          yield* streams.publish("s", { n: "1" })
          blackhole()
          const [readMs, read] = yield* timed(Effect.either(streams.readLatest("s", 1)))
          expect(read._tag === "Left" && read.left.message).toContain(
            "no answer within 200ms (nothing received for 200ms)"
          )
          expect(readMs).toBeLessThan(2_000)
          const [publishMs, published] = yield* timed(Effect.either(streams.publish("s", { n: "2" })))
          expect(published._tag).toBe("Left")
          expect(publishMs).toBeLessThan(2_000)
          // Its QUIT, unanswered, gives up after a command timeout: the close held on for good.
          const [closeMs] = yield* timed(Scope.close(scope, Exit.void))
          expect(closeMs).toBeLessThan(2_000)
        })
    )

    // Its peer gone without a word (a NAT that forgot the flow, a host gone): the socket stays
    // open until TCP gives up (some 15 minutes), every stream command failing meanwhile. Cut
    // once commands kept failing with nothing read for STALL_LIMIT command timeouts, as the
    // command connection is (stalls.ts), it is made again.
    it.scoped("a streams connection that answers nothing is cut and made again", () =>
      Effect.gen(function* () {
        const { streams, blackhole } = yield* silencedStreams("sc8")
        const id = yield* streams.publish("s", { n: "1" })
        blackhole()
        // Fails while the connection is silent; answers once it was cut and made again.
        const answered = yield* streams
          .readLatest("s", 1)
          .pipe(Effect.retry(Schedule.spaced("50 millis")), Effect.timeout("10 seconds"), Effect.either)
        expect(answered._tag === "Right" && answered.right.map((e) => e.id)).toEqual([id])
      })
    )

    it.scoped("a consumer whose connection answers nothing gets a new one and delivers", () =>
      Effect.gen(function* () {
        const { streams, blackhole } = yield* silencedStreams("sc9")
        const look = yield* observer
        yield* streams.createGroup("s", "g")
        const consumer = yield* Effect.fork(
          streams
            .consume("s", "g", "c", { blockMs: 100 })
            .pipe(Stream.take(1), Stream.runCollect, Effect.timeout("10 seconds"), Effect.either)
        )
        yield* Effect.sleep("300 millis")
        blackhole()
        const id = yield* Effect.promise(() => look.xadd("sc9:s", "*", "n", "1"))
        const delivered = yield* Fiber.join(consumer)
        expect(delivered._tag === "Right" && [...delivered.right].map((e) => e.id)).toEqual([id])
      })
    )

    it.scoped("a publish of a large entry lands, and the cache's reads meanwhile hit", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const { tier, streams } = yield* slowCache("sc3")
        yield* writeSmall(tier)
        const { gets, stream } = yield* getsDuring(tier, streams.publish("s", { body: "x".repeat(SIZE) }))
        expect(stream._tag === "Right" ? "published" : stream.left.message).toEqual("published")
        expect(gets).toEqual(keys)
        expect(yield* Effect.promise(() => look.xlen("sc3:s"))).toBe(1)
      })
    )

    it.scoped("readLatest, then publish, of a small entry answer as before", () =>
      Effect.gen(function* () {
        const { streams } = yield* slowCache("sc4")
        const id = yield* streams.publish("s", { body: "small" })
        expect(yield* streams.readLatest("s", 1)).toEqual([{ id, fields: [["body", "small"]] }])
        expect(yield* streams.read("s", "0", 1)).toEqual([{ id, fields: [["body", "small"]] }])
      })
    )

    it.effect(
      "stream commands use one connection of their own, never the command connection; it is made again when lost and closed with the layer",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const scope = yield* Scope.make()
          const context = yield* Layer.buildWithScope(
            RedisStreams.layer().pipe(
              Layer.provideMerge(connectionLayer({ keyPrefix: "sc5:", connectionName: "sc5" }))
            ),
            scope
          )
          const connection = Context.get(context, RedisConnection.RedisConnection)
          const streams = Context.get(context, CacheStreams.CacheStreams)
          const names = Effect.map(clientNames(look), (all) => all.filter((n) => n.startsWith("sc5:")).sort())
          const writes = watchWrites(connection.client)
          const everything = Effect.all(
            Array.from({ length: 5 }, (_, i) =>
              Effect.gen(function* () {
                yield* streams.createGroup(`s${i}`, "g")
                const id = yield* streams.publish(`s${i}`, { n: String(i) })
                yield* streams.readLatest(`s${i}`, 1)
                yield* streams.read(`s${i}`, "0", 1)
                yield* streams.ack(`s${i}`, "g", [id])
              })
            ),
            { concurrency: "unbounded" }
          )
          yield* everything
          writes.restore()
          expect(writes.writes()).toEqual([])
          expect(yield* names).toEqual(["sc5:command", "sc5:streams"])
          // Lost: made again in the background; the commands answer once it is back.
          const conn = yield* connection.streams
          const id = yield* Effect.promise(() => conn.client("ID"))
          yield* Effect.promise(() => look.client("KILL", "ID", String(id)))
          yield* eventually(streams.readLatest("s0", 1), "3 seconds")
          expect(yield* names).toEqual(["sc5:command", "sc5:streams"])
          yield* Scope.close(scope, Exit.void)
          yield* eventually(
            Effect.filterOrFail(names, (left) => left.length === 0),
            "2 seconds"
          )
        }).pipe(Effect.scoped)
    )
  })
})
