import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Cause, Effect, Logger, LogLevel, Option, Stream } from "effect"

// The bus subscriber applies received messages to L1 in a fiber of the cache's scope. A defect
// while applying one (a throw, an Effect.die: here an L1 of the user's that throws) ended that
// fiber: invalidation stopped without a word, and the L1 kept every later change's stale copy.
// An L1's defect is now that tier's failure (tierDefects.ts): counted and logged as one, the
// message skipped; a defect of the subscriber's own still reaches onDefect (the tests below the
// first two).

/** An L1 whose remove dies for "dies", and throws while building its effect for "throws". */
const brokenL1 = Effect.map(
  TestTier.make({ name: "l1" }),
  (l1): Tier.Tier.Service => ({
    ...l1,
    remove: (keys) => {
      if (keys.includes("throws")) throw new Error("L1 threw building its remove")
      if (keys.includes("dies")) return Effect.die(new Error("L1 died removing"))
      return l1.remove(keys)
    },
    clear: Effect.die(new Error("L1 died clearing"))
  })
)

/** A cache "b" over `brokenL1`, on a hub, logging into `lines` (level, message, cause). */
const world = Effect.gen(function* () {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message, cause }) => {
    lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
  })
  const hub = yield* TestBus.makeHub
  const l1 = yield* brokenL1
  const cache = yield* TieredCache.make({ instanceId: "b" }).pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, yield* TestTier.make({ name: "l2" })),
    Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub)),
    Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
    Logger.withMinimumLogLevel(LogLevel.All)
  )
  const settle = MultiInstance.settle([cache], { hub })
  const inL1 = (key: string) => Effect.map(l1.get(key), Option.isSome)
  return { lines, hub, cache, settle, inL1 }
})

const remove = (key: string) => JSON.stringify({ type: "Remove", key, origin: "a" })

describe("the bus subscriber", () => {
  it.scoped("a message whose application dies or throws is logged and skipped; the next ones apply", () =>
    Effect.gen(function* () {
      const { lines, hub, cache, settle, inL1 } = yield* world
      for (const key of ["k1", "k2"]) yield* cache.set(key, 1)
      yield* settle
      expect([yield* inL1("k1"), yield* inL1("k2")]).toEqual([true, true])
      // In one chunk: a defect, then a message that must still apply.
      yield* hub.publishRaw(remove("dies"))
      yield* hub.publishRaw(remove("k1"))
      yield* settle
      expect(yield* inL1("k1")).toBe(false)
      // A throw while the effect is being built, then another message, later.
      yield* hub.publishRaw(remove("throws"))
      yield* settle
      yield* hub.publishRaw(remove("k2"))
      yield* settle
      expect(yield* inL1("k2")).toBe(false)
      const stats = yield* cache.invalidationStats
      // Received: the two sets' own echoes and the four others; applied: the two that could be.
      expect([stats.messagesReceived, stats.ownMessagesIgnored, stats.messagesApplied]).toEqual([6, 2, 2])
      // Each the L1's failure, logged with the defect as its cause.
      expect((yield* cache.stats).tierErrors).toEqual({ l1: 2 })
      const defects = lines.filter((line) => line.includes("tier l1 failed remove"))
      expect(defects).toHaveLength(2)
      for (const line of defects) expect(line).toMatch(/^WARN /)
      expect(defects[0]).toContain("died: L1 died removing")
      expect(defects[1]).toContain("threw: L1 threw building its remove")
    })
  )

  it.scoped("a reconnection whose resync dies is logged; the next messages apply", () =>
    Effect.gen(function* () {
      const { lines, hub, cache, settle, inL1 } = yield* world
      yield* cache.set("k", 1)
      yield* settle
      yield* hub.reconnect
      yield* hub.publishRaw(remove("k"))
      yield* settle
      expect(yield* inL1("k")).toBe(false)
      expect(
        lines.some((line) => line.startsWith("WARN tiercache: tier l1 failed clear: died: L1 died clearing"))
      ).toBe(true)
    })
  )

  it.scoped(
    "an event a bus of someone else's hands over broken is logged and skipped; the next ones apply",
    () =>
      Effect.gen(function* () {
        // Handling it throws at once (its _tag read from undefined), before any effect is made.
        const lines: Array<string> = []
        const logger = Logger.make(({ logLevel, message, cause }) => {
          lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
        })
        const hub = yield* TestBus.makeHub
        const inner = TestBus.make(hub)
        const bus: InvalidationBus.InvalidationBus.Service = {
          ...inner,
          subscribe: Effect.map(inner.subscribe, (events) =>
            Stream.map(events, (event) =>
              event._tag === "Message" && event.message.type === "Remove" && event.message.key === "broken"
                ? (undefined as unknown as InvalidationBus.Event)
                : event
            )
          )
        }
        const l1 = yield* TestTier.make({ name: "l1" })
        const cache = yield* TieredCache.make({ instanceId: "b" }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, yield* TestTier.make({ name: "l2" })),
          Effect.provideService(InvalidationBus.InvalidationBus, bus),
          Effect.provide(Logger.replace(Logger.defaultLogger, logger))
        )
        const settle = MultiInstance.settle([cache], { hub })
        yield* cache.set("k", 1)
        yield* settle
        yield* hub.publishRaw(remove("broken"))
        yield* hub.publishRaw(remove("k"))
        // Not settle: the broken event is not counted as received (its handling threw first).
        for (let i = 0; i < 1000 && Option.isSome(yield* l1.get("k")); i++) yield* Effect.yieldNow()
        expect(Option.isSome(yield* l1.get("k"))).toBe(false)
        const defects = lines.filter((line) => line.includes("could not be applied"))
        expect(defects).toHaveLength(1)
        expect(defects[0]).toMatch(/^ERROR tiercache: a bus event could not be applied/)
      })
  )

  it.scoped("a bus whose stream dies: the end of the subscription is logged as an error", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const logger = Logger.make(({ logLevel, message, cause }) => {
        lines.push(`${logLevel.label} ${String(message)} ${Cause.pretty(cause)}`)
      })
      const hub = yield* TestBus.makeHub
      const bus: InvalidationBus.InvalidationBus.Service = {
        ...TestBus.make(hub),
        subscribe: Effect.succeed(Stream.die(new Error("the bus's stream died")))
      }
      yield* TieredCache.make({ instanceId: "b" }).pipe(
        Effect.provideService(Tier.L1, yield* TestTier.make({ name: "l1" })),
        Effect.provideService(Tier.L2, yield* TestTier.make({ name: "l2" })),
        Effect.provideService(InvalidationBus.InvalidationBus, bus),
        Effect.provide(Logger.replace(Logger.defaultLogger, logger))
      )
      for (let i = 0; i < 10 && lines.length === 0; i++) yield* Effect.yieldNow()
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^ERROR tiercache: the bus subscription ended/)
      expect(lines[0]).toContain("the bus's stream died")
    })
  )
})
