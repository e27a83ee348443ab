import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Layer, Stream } from "effect"
import { RedisStreams } from "../src/index.js"
import { connectionLayer, failureOf, recordedFailure, recordingTracer } from "./utils.js"

const Connection = connectionLayer({ keyPrefix: "s:" })
const Env = Layer.mergeAll(Connection, RedisStreams.layer().pipe(Layer.provide(Connection))).pipe(
  Layer.provideMerge(RedisServer.layer())
)

describe("RedisStreams spans without streamNamesInSpans", () => {
  layer(Env, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    // Redis's own NOGROUP answer names the key ("No such key 's:user:7:events' or consumer
    // group 'g'"): a consume of a group not created (or deleted) must not put it in the span.
    it.scoped("a failure whose Redis error names the stream's key records neither in the span", () =>
      Effect.gen(function* () {
        const { tracer, spans } = yield* recordingTracer
        const streams = yield* CacheStreams.CacheStreams
        yield* streams.publish("user:7:events", { n: "1" })
        const failures = [
          Stream.runDrain(streams.consume("user:7:events", "g", "c", { blockMs: 100 })),
          Stream.runDrain(streams.consume("user:7:events", "g", "c", { blockMs: 100, claimIdleMs: 10 }))
        ]
        for (const failing of failures) {
          const exit = yield* Effect.exit(failing.pipe(Effect.withTracer(tracer)))
          // The caller's error still names its stream, and says NOGROUP.
          expect(failureOf(exit)).toMatchObject({ _tag: "StreamError", stream: "user:7:events" })
          expect(String(failureOf(exit))).toContain("NOGROUP")
        }
        const failed = spans.filter(
          ({ span }) => span.status._tag === "Ended" && Exit.isFailure(span.status.exit)
        )
        expect(failed.length).toBeGreaterThanOrEqual(failures.length)
        for (const { span } of failed) {
          for (const text of recordedFailure(span.status)) {
            expect(text).toContain("NOGROUP")
            expect(text).not.toContain("user:7")
          }
        }
      })
    )
  })
})
