/**
 * `update(key, value)` broadcasts the value (an `Update` message) so that the other instances
 * store it in L1 without reading Redis. A large value went over Pub/Sub whole: its PUBLISH, on
 * the command connection under the command timeout, timed out on a slow link (a publish failure,
 * a warning, a replay), every subscriber got the value on its connection, and past Redis's
 * client-output-buffer-limit for Pub/Sub (32 MB hard, 8 MB for 60 s by default) Redis cut the
 * subscribers off. An Update whose message takes `largeValueBytes` or more is sent as a `Remove`
 * of its key: the others drop their L1 copy and read the value from Redis (written first).
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Effect, Logger, Option } from "effect"
import { eventually, observer, rawMessages, redisInstance, throttlingProxy } from "./utils.js"

const KB = 1024

/** Values of `THRESHOLD` bytes or more are large, bus messages of that size too. */
const THRESHOLD = 64 * KB

/** What a subscriber of `channel` received, raw. */
const listen = (channel: string) =>
  Effect.gen(function* () {
    const received = yield* rawMessages(channel)
    return {
      /** The messages received so far about `key`, each as its type and its size in bytes. */
      about: (key: string) =>
        received
          .map((raw) => [JSON.parse(raw) as { type: string; key?: string }, Buffer.byteLength(raw)] as const)
          .filter(([message]) => message.key === key)
          .map(([message, bytes]) => ({ type: message.type, bytes })),
      raw: () => received
    }
  })

/** Two instances on one Redis, one namespace and one channel, the bus's messages watched. */
const twoInstances = (name: string) =>
  Effect.gen(function* () {
    const seen = yield* listen(name)
    const connection = {
      keyPrefix: `${name}:`,
      largeValueBytes: THRESHOLD,
      commandTimeout: "2 seconds"
    } as const
    const a = yield* redisInstance("a", connection, { channel: name })
    const b = yield* redisInstance("b", connection, { channel: name })
    return { a, b, seen }
  })

/** What L1 holds for `key`: its value, or "none". */
const inL1 = (
  instance: { l1: { get: (key: string) => Effect.Effect<Option.Option<{ value: unknown }>, unknown> } },
  key: string
) => Effect.map(instance.l1.get(key), Option.match({ onNone: () => "none", onSome: (entry) => entry.value }))

/** Waits until `check` holds. */
const until = (check: Effect.Effect<boolean, unknown>) =>
  eventually(
    Effect.filterOrFail(check, (ok) => ok),
    "5 seconds"
  )

describe("updates of large values over the bus", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "a large update reaches the other instance as a Remove; it reads the new value from Redis",
      () =>
        Effect.gen(function* () {
          const { a, b, seen } = yield* twoInstances("lu1")
          yield* a.cache.set("k", "old")
          // Its Remove applied on b first: it would drop the copy b's read is about to keep.
          yield* until(Effect.map(b.cache.invalidationStats, (stats) => stats.messagesApplied === 1))
          expect(yield* b.cache.get("k")).toEqual(Option.some("old"))
          expect(yield* inL1(b, "k")).toBe("old")
          const large = "x".repeat(200 * KB)
          yield* a.cache.update("k", large)
          yield* until(Effect.map(inL1(b, "k"), (held) => held === "none"))
          expect(yield* b.cache.get("k")).toEqual(Option.some(large))
          yield* until(Effect.sync(() => seen.about("k").length === 2))
          const messages = seen.about("k")
          expect(messages.map((m) => m.type)).toEqual(["Remove", "Remove"])
          for (const { bytes } of messages) expect(bytes).toBeLessThan(KB)
        })
    )

    it.scoped("a small update is still an Update: the other instance stores its value without a read", () =>
      Effect.gen(function* () {
        const { a, b, seen } = yield* twoInstances("lu2")
        yield* a.cache.update("k", "small")
        yield* until(Effect.map(inL1(b, "k"), (held) => held === "small"))
        yield* until(Effect.sync(() => seen.about("k").length === 1))
        expect(seen.about("k").map((m) => m.type)).toEqual(["Update"])
      })
    )

    // The bound is on the message's bytes (UTF-8), not its characters: a value of "é"s below
    // the threshold in characters but not in bytes is large.
    it.scoped("the bound is the encoded message's bytes: one byte under it an Update, at it a Remove", () =>
      Effect.gen(function* () {
        const { a, b, seen } = yield* twoInstances("lu3")
        yield* a.cache.update("probe", "")
        yield* until(Effect.sync(() => seen.about("probe").length === 1))
        // What an update's message takes beyond its value (the key "probe" as long as "k1" + 3).
        const overhead = seen.about("probe")[0]!.bytes - "probe".length + "k1".length
        yield* a.cache.update("k1", "y".repeat(THRESHOLD - overhead - 1))
        yield* a.cache.update("k2", "y".repeat(THRESHOLD - overhead))
        yield* a.cache.update("k3", "\u00e9".repeat(THRESHOLD / 2))
        yield* until(Effect.sync(() => ["k1", "k2", "k3"].every((k) => seen.about(k).length === 1)))
        expect(seen.about("k1")).toEqual([{ type: "Update", bytes: THRESHOLD - 1 }])
        expect(seen.about("k2").map((m) => m.type)).toEqual(["Remove"])
        expect(seen.about("k3").map((m) => m.type)).toEqual(["Remove"])
        yield* until(Effect.map(inL1(b, "k1"), (held) => held === "y".repeat(THRESHOLD - overhead - 1)))
        expect(yield* b.cache.get("k2")).toEqual(Option.some("y".repeat(THRESHOLD - overhead)))
        expect(yield* b.cache.get("k3")).toEqual(Option.some("\u00e9".repeat(THRESHOLD / 2)))
      })
    )

    // Received messages are not the bus's to change: a large Update from another program (the
    // Rust crate's format: no namespace, no origin, no date) is applied as before. Published
    // ones of other kinds go as they are, up to the bus's maxMessageBytes (1 MiB, largeBulks.ts).
    it.scoped("foreign large Updates are applied; large messages of other kinds are sent as they are", () =>
      Effect.gen(function* () {
        const { b, seen } = yield* twoInstances("lu4")
        const look = yield* observer
        const large = "z".repeat(200 * KB)
        yield* Effect.promise(() =>
          look.publish("lu4", JSON.stringify({ type: "Update", key: "f", value: large, ttl_secs: 60 }))
        )
        yield* until(Effect.map(inL1(b, "f"), (held) => held === large))
        // From plain JavaScript, straight to the bus: a large RemoveBulk stays one.
        const keys = Array.from({ length: 10_000 }, (_, i) => `bulk-key-${i}`)
        yield* b.bus.publish({ type: "RemoveBulk", keys, origin: "js" })
        yield* until(Effect.sync(() => seen.raw().some((raw) => raw.startsWith('{"type":"RemoveBulk"'))))
        const bulk = seen.raw().find((raw) => raw.startsWith('{"type":"RemoveBulk"'))!
        expect(Buffer.byteLength(bulk)).toBeGreaterThan(THRESHOLD)
        expect((JSON.parse(bulk) as { keys: Array<string> }).keys).toEqual(keys)
      })
    )

    // On a link of 10 MB/s, a 4 MiB update's PUBLISH (the value whole) took longer than the
    // command timeout: it failed, with a warning, and was kept to be sent again.
    it.scoped("on a slow link, a large update's message is sent without a failure", () =>
      Effect.gen(function* () {
        const port = yield* throttlingProxy(10 * 1_000_000)
        const warnings: Array<string> = []
        const logger = Logger.make(({ message, logLevel }) => {
          if (logLevel._tag === "Warning") warnings.push(String(message))
        })
        const a = yield* redisInstance(
          "a",
          {
            host: "127.0.0.1",
            port,
            keyPrefix: "lu5:",
            commandTimeout: "300 millis",
            timeoutPerMegabyte: "400 millis",
            connectTimeout: "2 seconds"
          },
          { channel: "lu5" }
        )
        yield* a.cache
          .update("k", "w".repeat(4 * 1024 * KB))
          .pipe(Effect.provide(Logger.replace(Logger.defaultLogger, logger)))
        const stats = yield* a.cache.invalidationStats
        expect({ sent: stats.messagesSent, failed: stats.publishFailures, warnings }).toEqual({
          sent: 1,
          failed: 0,
          warnings: []
        })
      })
    )
  })
})
