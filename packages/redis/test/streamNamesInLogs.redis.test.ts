import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Fiber, Layer, Logger, Stream } from "effect"
import type { Redis } from "ioredis"
import { RedisStreams } from "../src/index.js"
import { logAnnotations } from "../src/internal/streamSpans.js"
import { connectionLayer, eventually, observer, recordingTracer } from "./utils.js"

const Connection = connectionLayer({ keyPrefix: "s:" })
const Env = Layer.mergeAll(Connection, RedisStreams.layer().pipe(Layer.provide(Connection))).pipe(
  Layer.provideMerge(RedisServer.layer())
)

/**
 * Kills the consumers' own connections (CLIENT KILL ID), no other, once they are reading: their
 * last command an XREADGROUP. A connection killed while it opens (between its CLIENT SETNAME and
 * its first read) makes the consumer open another and warn that it could not connect, not that
 * it could not read.
 */
const killConsumers = (look: Redis) =>
  Effect.promise(async () => {
    const list = (await look.client("LIST")) as string
    const ids = [...list.matchAll(/id=(\d+) [^\n]*name=tiercache:consumer[^\n]* cmd=xreadgroup/g)].map(
      (match) => match[1]!
    )
    for (const id of ids) await look.client("KILL", "ID", id)
    return ids.length
  })

/**
 * Consumes `user:7:events` inside the user's own span under a recording tracer, kills the
 * consumer's connection, and waits for the warning that it reads again: what the spans and the
 * log lines recorded meanwhile.
 */
const consumeThroughAKill = (streams: CacheStreams.CacheStreams.Service) =>
  Effect.gen(function* () {
    const look = yield* observer
    const { tracer, spans } = yield* recordingTracer
    const lines: Array<{ message: unknown; annotations: Record<string, unknown> }> = []
    const logger = Logger.make(({ message, annotations }) => {
      lines.push({ message, annotations: Object.fromEntries(annotations) })
    })
    yield* streams.createGroup("user:7:events", "g")
    const consumer = yield* Stream.runDrain(
      streams.consume("user:7:events", "g", "c", { blockMs: 200 })
    ).pipe(
      Effect.withSpan("user.work"),
      Effect.withTracer(tracer),
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Effect.fork
    )
    // The consumer's connection is open (its first XREADGROUP sent), then goes away.
    yield* eventually(Effect.filterOrFail(killConsumers(look), (killed) => killed > 0))
    const warned = () =>
      lines.filter(({ message }) => String(message).includes("stream consumer could not read"))
    yield* eventually(Effect.filterOrFail(Effect.sync(warned), (found) => found.length > 0))
    yield* Fiber.interrupt(consumer)
    const events = spans.flatMap(({ span }) =>
      (span as unknown as { events: Array<[string, bigint, Record<string, unknown>]> }).events.map(
        ([name, , attributes]) => ({ name, attributes })
      )
    )
    return { warnings: warned(), lines, events }
  })

describe("RedisStreams log lines and stream names", () => {
  layer(Env, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    // A log line written inside a span is one of its events, its annotations the event's
    // attributes: the consumer's warning, in the user's span, must not name the stream.
    it.scoped("a consumer's warning that it reads again names no stream without streamNamesInSpans", () =>
      Effect.gen(function* () {
        const streams = yield* CacheStreams.CacheStreams
        const { warnings, lines, events } = yield* consumeThroughAKill(streams)
        const warning = events.find(({ name }) => name.includes("stream consumer could not read"))
        expect(warning?.attributes).toMatchObject({ group: "g", consumer: "c" })
        expect(warnings[0]?.annotations).toMatchObject({ group: "g", consumer: "c" })
        for (const { name, attributes } of events)
          expect(JSON.stringify([name, attributes])).not.toContain("user:7")
        for (const line of lines) expect(JSON.stringify(line)).not.toContain("user:7")
      })
    )

    // The reason too: an error's text may quote the stream's key.
    it("a log line's reason names no stream without streamNamesInSpans", () => {
      const reason = "no answer for XREADGROUP s:user:7:events"
      expect(logAnnotations(false)("user:7:events", { group: "g" }, reason)).toEqual({
        group: "g",
        reason: "no answer for XREADGROUP s:<stream>"
      })
      expect(logAnnotations(true)("user:7:events", { group: "g" }, reason)).toEqual({
        stream: "user:7:events",
        group: "g",
        reason
      })
    })

    it.scoped("with streamNamesInSpans the warning names its stream", () =>
      Effect.gen(function* () {
        const streams = yield* RedisStreams.make({ streamNamesInSpans: true })
        const { warnings, events } = yield* consumeThroughAKill(streams)
        const warning = events.find(({ name }) => name.includes("stream consumer could not read"))
        expect(warning?.attributes).toMatchObject({ stream: "user:7:events", group: "g", consumer: "c" })
        expect(warnings[0]?.annotations).toMatchObject({ stream: "user:7:events" })
      })
    )
  })
})
