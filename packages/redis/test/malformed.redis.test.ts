import * as Util from "node:util"
import { describe, expect, it, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Clock, Context, Duration, Effect, Layer, Logger, LogLevel, Metric, Option, TestClock } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import * as ThrottledLog from "../src/internal/throttledLog.js"
import { connectionLayer, eventually, observer } from "./utils.js"

// Issue 12, item 7: a malformed bus message logs one short line saying what was wrong, at most
// once per interval per kind, and every one is counted.

const KINDS = [
  // not JSON
  (i: number) => `garbage ${i} {`,
  // unknown type
  (i: number) => JSON.stringify({ type: "Explode", key: `k${i}` }),
  // a field missing or of the wrong type
  (i: number) => JSON.stringify({ type: "RemoveBulk", keys: ["a", i] })
] as const

/**
 * Instance "a" (a MemoryTier L1, RedisTier and RedisInvalidationBus with `busOptions`) logging
 * every line, Debug included, to `lines` as "<level> <message>": its cache, bus and L1.
 */
const loggedInstance = (lines: Array<string>, busOptions?: RedisInvalidationBus.Options) =>
  Effect.gen(function* () {
    const logger = Logger.make(({ message, logLevel }) => {
      lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : Util.format(message)}`)
    })
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId: "a" }).pipe(
        Layer.provideMerge(
          Layer.mergeAll(
            Layer.succeed(Tier.L1, l1),
            RedisTier.layer(),
            RedisInvalidationBus.layer(busOptions)
          )
        ),
        Layer.provide(connectionLayer())
      )
    ).pipe(
      Effect.provide(Logger.replace(Logger.defaultLogger, logger)),
      Logger.withMinimumLogLevel(LogLevel.All)
    )
    return {
      cache: Context.get(context, TieredCache.TieredCache),
      bus: Context.get(context, RedisInvalidationBus.RedisInvalidationBus),
      l1
    }
  })

describe("malformed bus messages", () => {
  it.effect("the throttled log: one line per kind per interval, then one saying how many were left out", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const logger = Logger.make(({ message }) => {
        lines.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const log = ThrottledLog.make(Duration.minutes(1))
      const run = (kind: string, n: number) =>
        Effect.forEach(Array.from({ length: n }), (_, i) => log(kind, `${kind} ${i}`), {
          discard: true
        }).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* run("a", 100)
      yield* run("b", 5)
      expect(lines).toEqual(["a 0", "b 0"])
      yield* TestClock.adjust("59 seconds")
      yield* run("a", 10)
      expect(lines).toHaveLength(2)
      yield* TestClock.adjust("1 second")
      yield* run("a", 3)
      expect(lines).toEqual(["a 0", "b 0", "a 0 (and 109 more of this kind since the last report)"])
      yield* TestClock.adjust("1 minute")
      yield* run("b", 1)
      expect(lines[3]).toBe("b 0 (and 4 more of this kind since the last report)")
    })
  )

  it.effect("an infinite interval logs the first line of each kind, never another", () =>
    Effect.gen(function* () {
      const lines: Array<string> = []
      const logger = Logger.make(({ message }) => {
        lines.push(Array.isArray(message) ? message.join(" ") : String(message))
      })
      const log = ThrottledLog.make(Duration.infinity)
      const run = (kind: string) =>
        log(kind, kind).pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
      yield* run("a")
      yield* run("a")
      yield* TestClock.adjust("3650 days")
      yield* run("a")
      yield* run("b")
      expect(lines).toEqual(["a", "b"])
    })
  )

  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("1,000 malformed messages of 3 kinds: a few short, specific lines; all 1,000 counted", () =>
      Effect.gen(function* () {
        const lines: Array<string> = []
        const { cache, bus, l1 } = yield* loggedInstance(lines, { malformedLogInterval: "1 hour" })
        const look = yield* observer

        /** Publishes `n` malformed messages (kinds in turn), then a good one, and waits for it. */
        const burst = (n: number, sentinel: string) =>
          Effect.gen(function* () {
            yield* Effect.promise(() => {
              const pipeline = look.pipeline()
              for (let i = 0; i < n; i++) pipeline.publish("cache:invalidate", KINDS[i % 3]!(i))
              return pipeline.exec()
            })
            yield* cache.set(sentinel, 1, { ttl: "1 minute" })
            yield* Effect.promise(() =>
              look.publish("cache:invalidate", JSON.stringify({ type: "Remove", key: sentinel }))
            )
            yield* eventually(
              Effect.flatMap(l1.get(sentinel), (found) =>
                Option.isNone(found) ? Effect.void : Effect.fail(0)
              )
            )
          })

        yield* burst(1000, "sentinel-1")
        const stats = yield* bus.stats
        expect(stats.malformedMessages).toBe(1000)
        expect(stats.malformedByKind).toEqual({ not_json: 334, unknown_type: 333, invalid_field: 333 })
        const malformed = () => lines.filter((line) => line.includes("malformed"))
        expect(malformed()).toHaveLength(3)
        for (const line of malformed()) expect(line.length).toBeLessThan(160)
        expect(malformed().some((l) => l.includes('not JSON: "garbage 0 {"'))).toBe(true)
        expect(malformed().some((l) => l.includes('unknown type "Explode"'))).toBe(true)
        expect(malformed().some((l) => l.includes('RemoveBulk: field "keys.1" has the wrong type (2)'))).toBe(
          true
        )
        // The cache never saw them.
        expect((yield* cache.invalidationStats).malformedMessages).toBe(0)

        // More of them: counted, and no further line within the interval (the interval itself
        // is tested on the TestClock below).
        yield* burst(30, "sentinel-2")
        expect((yield* bus.stats).malformedMessages).toBe(1030)
        expect(malformed()).toHaveLength(3)
      })
    )

    // README, Bus namespace and channel: a malformed message is logged at most once per
    // malformedLogInterval (default 1 minute) per kind; dropped messages are counted in the
    // metrics tiercache_bus_foreign_messages_total{channel} and
    // tiercache_bus_malformed_messages_total{channel,kind}, not in the cache's invalidationStats.
    // The minute passes on a clock whose time is moved while its sleeps stay real: the bus's
    // heartbeat (a PING a second, bounded by the command timeout) goes on as it would, where a
    // TestClock moved by a minute fired sixty PINGs and their timeouts at once.
    it.scoped("by default one line per kind a minute; both kinds of drops in the bus's metrics only", () =>
      Effect.gen(function* () {
        const channel = "malformed-default:invalidate"
        let offsetMs = 0
        const real = Clock.make()
        const movedClock: Clock.Clock = {
          [Clock.ClockTypeId]: Clock.ClockTypeId,
          unsafeCurrentTimeMillis: () => real.unsafeCurrentTimeMillis() + offsetMs,
          currentTimeMillis: Effect.sync(() => real.unsafeCurrentTimeMillis() + offsetMs),
          unsafeCurrentTimeNanos: () => real.unsafeCurrentTimeNanos() + BigInt(offsetMs) * 1_000_000n,
          currentTimeNanos: Effect.sync(() => real.unsafeCurrentTimeNanos() + BigInt(offsetMs) * 1_000_000n),
          sleep: (duration) => real.sleep(duration)
        }
        const lines: Array<string> = []
        const { cache, l1 } = yield* loggedInstance(lines, { channel }).pipe(Effect.withClock(movedClock))
        const look = yield* observer
        const malformed = () => lines.filter((line) => line.includes("malformed bus message"))
        let round = 0
        /** Publishes `raw`, then a Remove of a key L1 holds, and waits for that Remove. */
        const publish = (raw: string) =>
          Effect.gen(function* () {
            const sentinel = `sentinel-${round++}`
            yield* cache.set(sentinel, 1, { ttl: "1 hour" })
            yield* Effect.promise(() => look.publish(channel, raw))
            yield* Effect.promise(() =>
              look.publish(channel, JSON.stringify({ type: "Remove", key: sentinel }))
            )
            yield* eventually(
              Effect.flatMap(l1.get(sentinel), (o) => (Option.isNone(o) ? Effect.void : Effect.fail(o)))
            )
          })
        yield* publish("garbage 1 {")
        expect(malformed()).toHaveLength(1)
        offsetMs += 59_000
        yield* publish("garbage 2 {")
        expect(malformed()).toHaveLength(1)
        offsetMs += 1_000
        yield* publish("garbage 3 {")
        expect(malformed()).toHaveLength(2)
        expect(malformed()[1]).toContain("(and 1 more of this kind since the last report)")
        // No connection was cut meanwhile (no resync, no warning but the two lines).
        expect((yield* cache.invalidationStats).resyncs).toBe(0)
        expect(lines.filter((line) => line.includes("does not answer"))).toEqual([])

        yield* publish(JSON.stringify({ type: "Remove", key: "sentinel-0", namespace: "another:" }))
        const count = (metric: Metric.Metric.Counter<number>) =>
          Effect.map(Metric.value(metric), (state) => state.count)
        const byChannel = <M extends Metric.Metric.Counter<number>>(metric: M) =>
          Metric.tagged(metric, "channel", channel)
        expect(yield* count(byChannel(RedisInvalidationBus.foreignMessages))).toBe(1)
        expect(
          yield* count(Metric.tagged(byChannel(RedisInvalidationBus.malformedMessages), "kind", "not_json"))
        ).toBe(3)
        expect(
          yield* count(
            Metric.tagged(byChannel(RedisInvalidationBus.malformedMessages), "kind", "unknown_type")
          )
        ).toBe(0)
        const stats = yield* cache.invalidationStats
        // The four sentinels' Removes and the echoes of the four sets only.
        expect({
          received: stats.messagesReceived,
          own: stats.ownMessagesIgnored,
          applied: stats.messagesApplied,
          malformed: stats.malformedMessages
        }).toEqual({ received: 8, own: 4, applied: 4, malformed: 0 })
      })
    )

    // A hand-published message whose wrong field is nested 10,000 deep: describing it once
    // overflowed the stack (Schema's formatter prints the whole value, recursively), the throw
    // ended the subscription, and no later message reached L1.
    it.scoped(
      "a malformed field nested 10,000 deep is dropped as malformed; later messages still apply",
      () =>
        Effect.gen(function* () {
          const lines: Array<string> = []
          const { cache, bus, l1 } = yield* loggedInstance(lines)
          const look = yield* observer
          const depth = 10_000
          const array = "[".repeat(depth) + "]".repeat(depth)
          const object = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`
          const deep = [
            `{"type":"RemoveBulk","keys":["a",${array}]}`,
            `{"type":"Remove","key":${object}}`,
            `{"type":"Update","key":"k","value":1,"tags":[${array}]}`,
            `{"type":${array}}`
          ]
          yield* cache.set("kept", 1, { ttl: "1 minute" })
          for (const raw of deep) yield* Effect.promise(() => look.publish("cache:invalidate", raw))
          yield* Effect.promise(() =>
            look.publish("cache:invalidate", JSON.stringify({ type: "Remove", key: "kept" }))
          )
          yield* eventually(
            Effect.flatMap(l1.get("kept"), (found) => (Option.isNone(found) ? Effect.void : Effect.fail(0)))
          )
          const stats = yield* bus.stats
          expect(stats.malformedByKind).toEqual({ not_json: 0, unknown_type: 1, invalid_field: 3 })
          // Logged one short line, its value cut.
          const malformed = lines.filter((line) => line.includes("malformed"))
          expect(
            malformed.some((l) => l.includes('RemoveBulk: field "keys.1" has the wrong type ([[[['))
          ).toBe(true)
          for (const line of malformed) expect(line.length).toBeLessThan(160)
        })
    )
  })
})
