/**
 * A consumer meeting an entry whose reply takes longer to arrive than its read's timeout
 * (blockMs + commandTimeout): a large entry on a slow link. The read timed out, the consumer
 * read its pending entries again from the start, the same entry timed out again, forever: the
 * stream never moved past it (a poison pill). A read now waits as long as its reply keeps
 * arriving (internal/receiving.ts).
 */
import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, type Duration, Effect, Fiber, Layer, Logger, Stream } from "effect"
import { RedisConnection, RedisStreams } from "../src/index.js"
import { blackholeProxy, eventually, observer, throttlingProxy } from "./utils.js"

const MB = 1024 * 1024

/** 16 MiB over a link of 10 MB/s: about 1.7 s, past the reads' timeout (100 + 200 ms) many times. */
const SIZE = 16 * MB
const RATE = 10 * 1_000_000

/**
 * A claimed entry: 4 MiB over a link of 2.5 MB/s, about 1.7 s as well, past the claim's timeout
 * (500 ms, the command timeout of `claimingStreams`) more than three times. Smaller, on a slower
 * link, than SIZE: what the host's CPU does per byte (the proxy, the driver's parsing) counts for
 * less next to the link's pace, and with the command timeout of 200 ms a loaded host's pause in
 * that work (nothing read for 200 ms) failed the claim though the link still carried its reply.
 */
const CLAIMED_SIZE = 4 * MB
const CLAIM_RATE = 2.5 * 1_000_000

/**
 * A streams service behind a link of `rate`, stream keys under `sl:`, a command timeout of
 * `commandTimeout`.
 */
const streamsBehind = (rate: number, commandTimeout: Duration.DurationInput) =>
  Effect.gen(function* () {
    const port = yield* throttlingProxy(rate)
    const connection = RedisConnection.layer({
      host: "127.0.0.1",
      port,
      keyPrefix: "sl:",
      commandTimeout,
      connectTimeout: "2 seconds",
      reconnectMaxDelay: "100 millis"
    })
    const context = yield* Layer.build(RedisStreams.layer().pipe(Layer.provide(connection)))
    return Context.get(context, CacheStreams.CacheStreams)
  })

/** A streams service behind a link of RATE, stream keys under `sl:`, a command timeout of 200 ms. */
const slowStreams = streamsBehind(RATE, "200 millis")

/** A streams service behind a link of CLAIM_RATE, stream keys under `sl:`, a command timeout of 500 ms. */
const claimingStreams = streamsBehind(CLAIM_RATE, "500 millis")

/**
 * A streams service (stream keys under `sb:`, a command timeout of 200 ms) behind a proxy whose
 * `blackhole()` makes every connection it carries drop what either side sends, closing nothing.
 */
const blackholedStreams = Effect.gen(function* () {
  const { port, blackhole } = yield* blackholeProxy
  const connection = RedisConnection.layer({
    host: "127.0.0.1",
    port,
    keyPrefix: "sb:",
    commandTimeout: "200 millis",
    connectTimeout: "2 seconds",
    reconnectMaxDelay: "100 millis"
  })
  const context = yield* Layer.build(RedisStreams.layer().pipe(Layer.provide(connection)))
  return {
    streams: Context.get(context, CacheStreams.CacheStreams),
    blackhole
  }
})

/** What a consumer delivered: each entry's `n` field, and the length of its `body`. */
const shapes = (entries: Iterable<CacheStreams.StreamEntry>) =>
  Array.from(entries, (entry) => {
    const fields = new Map(entry.fields)
    return `${fields.get("n")}:${fields.get("body")?.length ?? 0}`
  })

describe("a consumer meeting an entry that takes long to arrive", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "90 seconds" })((it) => {
    it.scoped("a large pending entry is delivered, and the entries after it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.xgroup("CREATE", "sl:pending", "g", "$", "MKSTREAM"))
        yield* Effect.promise(() => look.xadd("sl:pending", "*", "n", "1", "body", "x".repeat(SIZE)))
        // Delivered to c before (it then stopped): pending for it, read first on its next start.
        yield* Effect.promise(() =>
          look.xreadgroup("GROUP", "g", "c", "COUNT", 1, "STREAMS", "sl:pending", ">")
        )
        yield* Effect.promise(() => look.xadd("sl:pending", "*", "n", "2", "body", "small"))
        const streams = yield* slowStreams
        const delivered = yield* streams
          .consume("pending", "g", "c", { blockMs: 100 })
          .pipe(Stream.take(2), Stream.runCollect, Effect.timeout("12 seconds"), Effect.either)
        expect(delivered._tag === "Right" && shapes(delivered.right)).toEqual([`1:${SIZE}`, "2:5"])
      })
    )

    it.scoped("a large new entry is delivered, and the entries after it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const streams = yield* slowStreams
        yield* streams.createGroup("fresh", "g")
        const consumer = yield* Effect.fork(
          streams
            .consume("fresh", "g", "c", { blockMs: 100 })
            .pipe(Stream.take(2), Stream.runCollect, Effect.timeout("12 seconds"), Effect.either)
        )
        yield* Effect.sleep("300 millis")
        yield* Effect.promise(() => look.xadd("sl:fresh", "*", "n", "1", "body", "x".repeat(SIZE)))
        yield* Effect.promise(() => look.xadd("sl:fresh", "*", "n", "2", "body", "small"))
        const delivered = yield* Fiber.join(consumer)
        expect(delivered._tag === "Right" && shapes(delivered.right)).toEqual([`1:${SIZE}`, "2:5"])
      })
    )

    // A claim (XCLAIM answers the entries it takes over) timed out too: the consumer warned
    // that it could not read, and read the entry again, now pending for it.
    it.scoped("a large entry claimed from another consumer is delivered without a failed read", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.xgroup("CREATE", "sl:claimed", "g", "$", "MKSTREAM"))
        yield* Effect.promise(() => look.xadd("sl:claimed", "*", "n", "1", "body", "x".repeat(CLAIMED_SIZE)))
        // Delivered to another consumer, gone since.
        yield* Effect.promise(() =>
          look.xreadgroup("GROUP", "g", "gone", "COUNT", 1, "STREAMS", "sl:claimed", ">")
        )
        yield* Effect.promise(() => look.xadd("sl:claimed", "*", "n", "2", "body", "small"))
        yield* Effect.sleep("200 millis")
        const streams = yield* claimingStreams
        const warnings: Array<unknown> = []
        const logger = Logger.make(({ message }) => {
          if (String(message).includes("stream consumer could not read")) warnings.push(message)
        })
        const delivered = yield* streams
          .consume("claimed", "g", "c", { blockMs: 100, claimIdleMs: 100 })
          .pipe(
            Stream.take(2),
            Stream.runCollect,
            Effect.timeout("12 seconds"),
            Effect.either,
            Effect.provide(Logger.replace(Logger.defaultLogger, logger))
          )
        expect(delivered._tag === "Right" && shapes(delivered.right).sort()).toEqual([
          `1:${CLAIMED_SIZE}`,
          "2:5"
        ])
        expect(warnings).toEqual([])
      })
    )

    // Waiting while a reply arrives must not wait for one that never comes.
    it.scoped("a read on a consumer connection that answers nothing still fails, and is made again", () =>
      Effect.gen(function* () {
        const { streams, blackhole } = yield* blackholedStreams
        yield* streams.createGroup("silent", "g")
        const reasons: Array<unknown> = []
        const logger = Logger.make(({ message, annotations }) => {
          if (String(message).includes("stream consumer could not read")) reasons.push(annotations)
        })
        yield* Effect.fork(
          Stream.runDrain(streams.consume("silent", "g", "c", { blockMs: 100 })).pipe(
            Effect.provide(Logger.replace(Logger.defaultLogger, logger))
          )
        )
        yield* Effect.sleep("300 millis")
        blackhole()
        yield* eventually(
          Effect.filterOrFail(
            Effect.sync(() => reasons.length),
            (n) => n > 0
          ),
          "3 seconds"
        )
        expect(JSON.stringify([...(reasons[0] as Iterable<unknown>)])).toContain("no answer within 300ms")
      })
    )
  })
})
