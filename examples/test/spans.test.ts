/**
 * The README's tracing claims for a cache wired as in `examples/otel.ts`: a computation opens
 * its spans (the flight, the L2 read, the computation, the L2 write), an L1 hit none, but for
 * the first read of a tag the instance has not met (the tag's time, read from L2).
 */
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Effect, Layer, Tracer } from "effect"

const CacheLive = TieredCache.layer({ name: "users" }).pipe(
  Layer.provide(MemoryTier.layer({ maxEntries: 100 })),
  Layer.provide(KeyValueStoreTier.layer().pipe(Layer.provide(KeyValueStore.layerMemory)))
)

/** The current tracer, recording the name of every span it opens into `names`. */
const recordingTracer = Effect.map(Effect.tracer, (native) => {
  const names: Array<string> = []
  const recording = Tracer.make({
    context: native.context,
    span: (name, parent, context, links, startTime, kind, options) => {
      names.push(name)
      return native.span(name, parent, context, links, startTime, kind, options)
    }
  })
  return { names, recording }
})

describe("spans", () => {
  it.effect(
    "a computation opens tiercache.getOrCompute and its tier and compute spans; L1 hits open no span",
    () =>
      Effect.gen(function* () {
        const { names, recording } = yield* recordingTracer
        const cache = yield* TieredCache.TieredCache
        yield* Effect.gen(function* () {
          yield* cache.getOrCompute("user:1", Effect.succeed({ id: 1 }))
          const computed = [
            "tiercache.getOrCompute",
            "tiercache.tier.get",
            "tiercache.compute",
            "tiercache.tier.set"
          ]
          expect(names).toEqual(computed)
          for (let i = 0; i < 100; i++) yield* cache.getOrCompute("user:1", Effect.succeed({ id: 1 }))
          for (let i = 0; i < 100; i++) yield* cache.get("user:1")
          expect(names).toEqual(computed)
          expect((yield* cache.stats).l1Hits).toBe(200)
        }).pipe(Effect.withTracer(recording))
      }).pipe(Effect.provide(CacheLive))
  )

  it.effect(
    "an L1 hit of an entry whose tag the instance has not met reads the tag's time: one tier span, once",
    () =>
      Effect.gen(function* () {
        const { names, recording } = yield* recordingTracer
        const cache = yield* TieredCache.TieredCache
        yield* Effect.gen(function* () {
          yield* cache.getOrCompute("user:1", Effect.succeed({ id: 1 }), { tags: ["team:7"] })
          names.length = 0
          yield* cache.get("user:1")
          expect(names).toEqual(["tiercache.tier.get"])
          for (let i = 0; i < 100; i++) yield* cache.get("user:1")
          expect(names).toEqual(["tiercache.tier.get"])
          expect((yield* cache.stats).l1Hits).toBe(101)
        }).pipe(Effect.withTracer(recording))
      }).pipe(Effect.provide(CacheLive))
  )
})
