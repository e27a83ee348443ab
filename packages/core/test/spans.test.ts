/**
 * The cache's spans: a span per lower-tier call, per computation and per bus publish, with
 * OpenTelemetry attribute names; no span on an L1 hit; keys only with `keysInSpans`.
 */
import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Deferred, Effect, Fiber, HashMap, Logger, LogLevel, Option, Schema, TestClock, Tracer } from "effect"

interface Recorded {
  readonly name: string
  readonly kind: Tracer.SpanKind
  readonly span: Tracer.Span
}

/** A Tracer that records every span it opens (over Effect's native one). */
const recorder = Effect.map(Effect.tracer, (native) => {
  const spans: Array<Recorded> = []
  const tracer = Tracer.make({
    context: native.context,
    span: (name, parent, context, links, startTime, kind, options) => {
      const span = native.span(name, parent, context, links, startTime, kind, options)
      spans.push({ name, kind, span })
      return span
    }
  })
  const find = (name: string) => {
    const found = spans.filter((s) => s.name === name)
    expect(found.length, `spans named ${name}`).toBeGreaterThan(0)
    return found[found.length - 1]!
  }
  const attributes = (name: string) => Object.fromEntries(find(name).span.attributes)
  return { tracer, spans, names: () => spans.map((s) => s.name), find, attributes }
})

/** A cache over MemoryTier and a TestTier that says it is Redis, with a test bus. */
const build = (options: TieredCache.Options = {}) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const l2 = yield* TestTier.make({ name: "remote" })
    const hub = yield* TestBus.makeHub
    const bus: InvalidationBus.InvalidationBus.Service = {
      ...TestBus.make(hub),
      system: "redis",
      channel: "cache:invalidate"
    }
    const cache = yield* TieredCache.make({ name: "users", ...options }).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, { ...l2, system: "redis" }),
      Effect.provideService(InvalidationBus.InvalidationBus, bus)
    )
    return { cache, l1, l2 }
  })

describe("spans", () => {
  it.scoped("a computation: the flight, the L2 read, the computation, the L2 write and the bus publish", () =>
    Effect.gen(function* () {
      const rec = yield* recorder
      const { cache } = yield* build()
      yield* Effect.gen(function* () {
        expect(yield* cache.getOrCompute("user:1", Effect.succeed({ id: 1 }))).toEqual({ id: 1 })
        yield* MultiInstance.settle([cache])
      }).pipe(Effect.withTracer(rec.tracer))
      expect(rec.names()).toEqual([
        "tiercache.getOrCompute",
        "tiercache.tier.get",
        "tiercache.compute",
        "tiercache.tier.set",
        "tiercache.bus.publish"
      ])
      expect(rec.attributes("tiercache.getOrCompute")).toEqual({ "tiercache.cache": "users" })
      expect(rec.attributes("tiercache.compute")).toEqual({ "tiercache.cache": "users" })
      const tierAttributes = (operation: string) => ({
        "tiercache.cache": "users",
        "tiercache.tier": "remote",
        "db.system.name": "redis",
        "db.operation.name": operation
      })
      expect(rec.attributes("tiercache.tier.get")).toEqual(tierAttributes("get"))
      expect(rec.find("tiercache.tier.get").kind).toBe("client")
      expect(rec.attributes("tiercache.tier.set")).toEqual(tierAttributes("set"))
      expect(rec.attributes("tiercache.bus.publish")).toEqual({
        "tiercache.cache": "users",
        "messaging.system": "redis",
        "messaging.operation.type": "send",
        "messaging.operation.name": "publish",
        "messaging.destination.name": "cache:invalidate",
        "tiercache.bus.message.type": "Remove"
      })
      expect(rec.find("tiercache.bus.publish").kind).toBe("producer")
      // Every span ended.
      for (const s of rec.spans) expect([s.name, s.span.status._tag]).toEqual([s.name, "Ended"])
    })
  )

  it.scoped("an L1 hit opens no span; an L2 hit opens one tier read", () =>
    Effect.gen(function* () {
      const rec = yield* recorder
      const { cache, l1 } = yield* build()
      yield* cache.set("k", "v")
      yield* Effect.gen(function* () {
        for (let i = 0; i < 50; i++) {
          expect(yield* cache.get("k")).toEqual(Option.some("v"))
          expect(yield* cache.getOrCompute("k", Effect.succeed("other"))).toBe("v")
          expect(yield* cache.getTyped("k", Schema.String)).toEqual(Option.some("v"))
        }
      }).pipe(Effect.withTracer(rec.tracer))
      expect(rec.names()).toEqual([])
      yield* l1.remove(["k"])
      yield* cache.get("k").pipe(Effect.withTracer(rec.tracer))
      expect(rec.names()).toEqual(["tiercache.tier.get"])
    })
  )

  it.scoped("batches, removals, patterns and failures", () =>
    Effect.gen(function* () {
      const rec = yield* recorder
      const { cache, l2 } = yield* build()
      yield* Effect.gen(function* () {
        yield* cache.getMany(["a", "b", "c"])
        yield* cache.invalidateMany(["a", "b"])
        yield* cache.invalidatePattern("user:*")
        yield* l2.failOn(["get"])
        yield* cache.get("z")
      }).pipe(Effect.withTracer(rec.tracer))
      expect(rec.attributes("tiercache.tier.getMany")).toMatchObject({
        "db.operation.name": "getMany",
        "db.operation.batch.size": 3
      })
      expect(rec.attributes("tiercache.tier.remove")).toMatchObject({
        "db.operation.name": "remove",
        "db.operation.batch.size": 2
      })
      expect(rec.attributes("tiercache.tier.removeMatching")).toEqual({
        "tiercache.cache": "users",
        "tiercache.tier": "remote",
        "db.system.name": "redis",
        "db.operation.name": "removeMatching"
      })
      expect(rec.attributes("tiercache.tier.get")).toMatchObject({ "error.type": "TierError" })
      const failed = rec.find("tiercache.tier.get").span.status
      expect(failed._tag === "Ended" && failed.exit._tag).toBe("Failure")
    })
  )

  it.scoped("keys, patterns and tags are attributes only with keysInSpans", () =>
    Effect.gen(function* () {
      const off = yield* recorder
      const plain = yield* build()
      const run = (cache: TieredCache.TieredCache.Service) =>
        Effect.gen(function* () {
          yield* cache.getOrCompute("user:1", Effect.succeed(1))
          yield* cache.invalidatePattern("user:*")
          yield* cache.invalidateTag("team:7")
          yield* MultiInstance.settle([cache])
        })
      yield* run(plain.cache).pipe(Effect.withTracer(off.tracer))
      for (const s of off.spans) {
        const values = [...s.span.attributes.values()].map(String)
        expect([s.name, values.filter((v) => /user:|team:/.test(v))]).toEqual([s.name, []])
      }

      const on = yield* recorder
      const keyed = yield* build({ keysInSpans: true })
      yield* run(keyed.cache).pipe(Effect.withTracer(on.tracer))
      expect(on.attributes("tiercache.getOrCompute")).toMatchObject({ "tiercache.key": "user:1" })
      expect(on.attributes("tiercache.compute")).toMatchObject({ "tiercache.key": "user:1" })
      // (invalidateTag also reads the tag's time before writing it, in a span of its own.)
      expect(
        on.spans
          .filter((s) => s.name === "tiercache.tier.get")
          .map((s) => Object.fromEntries(s.span.attributes))
      ).toContainEqual(expect.objectContaining({ "tiercache.key": "user:1" }))
      expect(on.attributes("tiercache.tier.removeMatching")).toMatchObject({ "tiercache.pattern": "user:*" })
      const published = on.spans
        .filter((s) => s.name === "tiercache.bus.publish")
        .map((s) => Object.fromEntries(s.span.attributes))
      expect(published).toContainEqual(expect.objectContaining({ "tiercache.key": "user:1" }))
      expect(published).toContainEqual(expect.objectContaining({ "tiercache.pattern": "user:*" }))
      expect(published).toContainEqual(expect.objectContaining({ "tiercache.tag": "team:7" }))
    })
  )

  it.scoped("spans: false opens none, even under a tracer", () =>
    Effect.gen(function* () {
      const rec = yield* recorder
      const { cache } = yield* build({ spans: false })
      yield* Effect.gen(function* () {
        yield* cache.getOrCompute("k", Effect.succeed(1))
        yield* MultiInstance.settle([cache])
        yield* cache.invalidate("k")
        yield* cache.get("k")
      }).pipe(Effect.withTracer(rec.tracer))
      expect(rec.names()).toEqual([])
    })
  )

  it.scoped("unset, spans open only under a tracer other than Effect's native one; spans: true always", () =>
    Effect.gen(function* () {
      // The span a computation runs in, as the computation itself sees it.
      const spanOfCompute = (cache: TieredCache.TieredCache.Service, key: string) =>
        cache.getOrCompute(
          key,
          Effect.map(Effect.option(Effect.currentSpan), (span) =>
            Option.match(span, { onNone: () => "no span", onSome: (s) => s.name })
          )
        )
      const auto = yield* build()
      expect(yield* spanOfCompute(auto.cache, "a")).toBe("no span")
      const always = yield* build({ spans: true })
      expect(yield* spanOfCompute(always.cache, "a")).toBe("tiercache.compute")
      const rec = yield* recorder
      expect(yield* spanOfCompute(auto.cache, "b").pipe(Effect.withTracer(rec.tracer))).toBe(
        "tiercache.compute"
      )
    })
  )

  it.scoped("log lines (span events under a tracer) name the key only with keysInSpans", () =>
    Effect.gen(function* () {
      // Logs written inside a span become its events, their annotations the events' attributes.
      const run = (keysInSpans: boolean) =>
        Effect.gen(function* () {
          const rec = yield* recorder
          const lines: Array<string> = []
          const logger = Logger.make(({ annotations, message }) => {
            lines.push(JSON.stringify([message, HashMap.toEntries(annotations)]))
          })
          const { cache } = yield* build({ keysInSpans, staleWhileRevalidate: false })
          yield* Effect.gen(function* () {
            // The fail-safe's warning.
            yield* cache.set("user:1", 1, { ttl: "1 second", grace: "1 hour" })
            yield* TestClock.adjust("2 seconds")
            expect(yield* cache.getOrCompute("user:1", Effect.fail("source down"))).toBe(1)
            // A computation discarded by a write of its key.
            const started = yield* Deferred.make<void>()
            const release = yield* Deferred.make<void>()
            const computing = yield* Effect.fork(
              cache.getOrCompute(
                "user:2",
                Deferred.succeed(started, undefined).pipe(
                  Effect.zipRight(Deferred.await(release)),
                  Effect.as(2)
                )
              )
            )
            yield* Deferred.await(started)
            yield* cache.set("user:2", 3)
            yield* Deferred.succeed(release, undefined)
            yield* Fiber.join(computing)
            yield* MultiInstance.settle([cache])
          }).pipe(
            Effect.withTracer(rec.tracer),
            Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
            Logger.withMinimumLogLevel(LogLevel.Debug)
          )
          const events = rec.spans.flatMap((s) =>
            (
              s.span as unknown as { readonly events: ReadonlyArray<readonly [string, bigint, unknown]> }
            ).events.map(([name, , attributes]) => JSON.stringify([s.name, name, attributes]))
          )
          return { lines, events }
        })
      const off = yield* run(false)
      expect(off.lines.length).toBeGreaterThanOrEqual(2)
      expect(off.events.length).toBeGreaterThanOrEqual(1)
      expect([...off.lines, ...off.events].filter((text) => text.includes("user:"))).toEqual([])
      const on = yield* run(true)
      expect(on.lines.filter((text) => text.includes("user:1")).length).toBeGreaterThan(0)
      expect(on.events.filter((text) => text.includes("user:1")).length).toBeGreaterThan(0)
    })
  )
})
