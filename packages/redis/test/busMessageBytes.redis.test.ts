/**
 * Bus messages carrying many keys (`RemoveBulk`) were cut by key count only (1000 keys a message
 * in the cache, 256 for the removes of one moment): with long keys one message took megabytes,
 * past Redis's client-output-buffer-limit for Pub/Sub (32 MB hard, 8 MB for 60 s by default),
 * and Redis cut every subscriber off (each reconnected and cleared its L1: slower, never stale).
 * The bus now cuts such a message by its encoded bytes too (`maxMessageBytes`, default 1 MiB).
 * The server here allows 2 MB a subscriber, so the test is fast.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Layer, Option } from "effect"
import { RedisInvalidationBus } from "../src/index.js"
import { connectionLayer, eventually, rawMessages, redisInstance } from "./utils.js"

const KB = 1024

/** `n` distinct keys of about `bytes` bytes each. */
const longKeys = (name: string, n: number, bytes: number) =>
  Array.from({ length: n }, (_, i) => `${name}-${i}-${"k".repeat(bytes)}`)

/**
 * Two instances on one Redis, one namespace and one channel; `bus` adds options. Their commands
 * and their calls through the breakers (a publish of megabytes in pieces is one call) have 5 s:
 * under the breaker's default of 1 s, the publish of 4 MB on a loaded host counted as failed.
 */
const twoInstances = (name: string, bus: RedisInvalidationBus.Options = {}) =>
  Effect.gen(function* () {
    const connection = { keyPrefix: `${name}:`, commandTimeout: "5 seconds" } as const
    const cache = { breaker: { timeout: "5 seconds" } } as const
    const a = yield* redisInstance("a", connection, { channel: name, ...bus }, {}, cache)
    const b = yield* redisInstance("b", connection, { channel: name, ...bus }, {}, cache)
    return { a, b }
  })

/** How many of `keys` b's L1 still holds. */
const heldBy = (
  instance: { l1: { get: (key: string) => Effect.Effect<Option.Option<unknown>, unknown> } },
  keys: ReadonlyArray<string>
) =>
  Effect.map(
    Effect.forEach(keys, (key) => instance.l1.get(key)),
    (found) => found.filter(Option.isSome).length
  )

describe("bus messages of many long keys", () => {
  layer(RedisServer.layer({ args: ["--client-output-buffer-limit", "pubsub", "2mb", "1mb", "1"] }), {
    excludeTestServices: true,
    timeout: "60 seconds"
  })((it) => {
    // A bound an eighth of the server's limit (the default is 1/32 of Redis's default), as the
    // option's doc says: 4 MB of keys in 16 pieces.
    it.scoped("invalidateMany of 1000 keys of 4 KiB: removed on the other instance, no disconnect", () =>
      Effect.gen(function* () {
        const { a, b } = yield* twoInstances("mb1", { maxMessageBytes: 256 * KB })
        const keys = longKeys("mb1", 1000, 4 * KB)
        for (const key of keys) yield* b.cache.set(key, 1)
        expect(yield* heldBy(b, keys)).toBe(keys.length)
        const before = yield* b.cache.invalidationStats
        yield* a.cache.invalidateMany(keys)
        // Room for a loaded host; what is left then is reported whole.
        yield* Effect.ignore(
          eventually(
            Effect.filterOrFail(heldBy(b, keys), (held) => held === 0),
            "15 seconds"
          )
        )
        const after = yield* b.cache.invalidationStats
        // Removed by the messages, not by a reconnection's clear.
        expect({
          held: yield* heldBy(b, keys),
          resyncs: after.resyncs - before.resyncs,
          applied: after.messagesApplied > before.messagesApplied,
          publishFailures: (yield* a.cache.invalidationStats).publishFailures
        }).toEqual({ held: 0, resyncs: 0, applied: true, publishFailures: 0 })
      })
    )

    it.scoped(
      "the removes of one moment with long keys: each message at most the bound, every key removed",
      () =>
        Effect.gen(function* () {
          const received = yield* rawMessages("mb2")
          const { a, b } = yield* twoInstances("mb2", { maxMessageBytes: 256 * KB })
          const keys = longKeys("mb2", 200, 16 * KB)
          for (const key of keys) yield* b.cache.set(key, 1)
          const before = yield* b.cache.invalidationStats
          yield* Effect.forEach(keys, (key) => a.cache.invalidate(key), { concurrency: "unbounded" })
          yield* eventually(Effect.filterOrFail(heldBy(b, keys), (held) => held === 0))
          expect((yield* b.cache.invalidationStats).resyncs).toBe(before.resyncs)
          // What a sent (b's sets sent Removes of the same keys), as the observer saw it.
          const removedByA = () => {
            const removed = new Set<string>()
            for (const raw of received) {
              const message = JSON.parse(raw) as {
                type: string
                key?: string
                keys?: Array<string>
                origin?: string
              }
              if (message.origin !== "a") continue
              expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(256 * KB)
              if (message.type === "RemoveBulk") for (const key of message.keys!) removed.add(key)
              else if (message.type === "Remove") removed.add(message.key!)
            }
            return removed
          }
          // The observer's connection may trail b's.
          yield* eventually(
            Effect.filterOrFail(Effect.sync(removedByA), (removed) => keys.every((key) => removed.has(key)))
          )
        })
    )

    // Straight to the bus, from plain JavaScript: a RemoveBulk of 3 MB leaves in pieces.
    it.scoped("a RemoveBulk published on the bus is cut at maxMessageBytes, UTF-8 counted", () =>
      Effect.gen(function* () {
        const received = yield* rawMessages("mb3")
        const { a, b } = yield* twoInstances("mb3", { maxMessageBytes: 256 * KB })
        const keys = Array.from({ length: 300 }, (_, i) => `mb3-${i}-${"\u00e9".repeat(5 * KB)}`)
        for (const key of keys) yield* b.cache.set(key, 1)
        const before = yield* b.cache.invalidationStats
        yield* a.bus.publish({ type: "RemoveBulk", keys, origin: "js" })
        yield* eventually(Effect.filterOrFail(heldBy(b, keys), (held) => held === 0))
        expect((yield* b.cache.invalidationStats).resyncs).toBe(before.resyncs)
        const bulks = () => received.filter((raw) => raw.startsWith('{"type":"RemoveBulk"'))
        const sent = () => bulks().flatMap((raw) => (JSON.parse(raw) as { keys: Array<string> }).keys)
        // The observer's connection may trail b's.
        yield* eventually(Effect.filterOrFail(Effect.sync(sent), (all) => all.length >= keys.length))
        expect(bulks().length).toBeGreaterThan(1)
        for (const raw of bulks()) expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(256 * KB)
        expect(sent().every((key, i) => key === keys[i]) && sent().length === keys.length).toBe(true)
      })
    )

    // Keys whose JSON is longer than they are (quotes, backslashes, control characters, non-ASCII,
    // a key longer than the bound): every piece at most the bound, none that could have taken
    // the next key, the keys in order, a key longer than the bound alone.
    it.scoped("pieces are as full as the bound allows, counted as JSON escapes and UTF-8", () =>
      Effect.gen(function* () {
        const received = yield* rawMessages("mb4")
        const bound = 1000
        const a = yield* redisInstance("a", { keyPrefix: "mb4:" }, { channel: "mb4", maxMessageBytes: bound })
        const odd = ['"', "\\", "\u0001", "\u00e9", "\u20ac", "\ud83d\ude00", "a"]
        const keys = Array.from({ length: 400 }, (_, i) => `${i}:${odd[i % odd.length]!.repeat(i % 23)}`)
        keys.splice(200, 0, "L".repeat(3 * bound))
        yield* a.bus.publish({ type: "RemoveBulk", keys, origin: "js" })
        yield* eventually(
          Effect.filterOrFail(
            Effect.sync(() => received.filter((raw) => raw.startsWith('{"type":"RemoveBulk"'))),
            (bulks) =>
              bulks.flatMap((raw) => (JSON.parse(raw) as { keys: Array<string> }).keys).length === keys.length
          )
        )
        const bulks = received
          .filter((raw) => raw.startsWith('{"type":"RemoveBulk"'))
          .map((raw) => ({ raw, keys: (JSON.parse(raw) as { keys: Array<string> }).keys }))
        expect(bulks.flatMap((b) => b.keys)).toEqual(keys)
        for (let i = 0; i < bulks.length; i++) {
          const { keys: these, raw } = bulks[i]!
          if (these.includes(keys[200]!)) {
            expect(these).toEqual([keys[200]])
            continue
          }
          expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(bound)
          const next = bulks[i + 1]?.keys[0]
          if (next !== undefined && next !== keys[200]) {
            expect(Buffer.byteLength(raw) + 1 + Buffer.byteLength(JSON.stringify(next))).toBeGreaterThan(
              bound
            )
          }
        }
      })
    )

    it.scoped(
      "an Update longer than maxMessageBytes is sent as a Remove; the other instance reads Redis",
      () =>
        Effect.gen(function* () {
          const received = yield* rawMessages("mb5")
          const connection = { keyPrefix: "mb5:" } as const
          const a = yield* redisInstance("a", connection, { channel: "mb5", maxMessageBytes: 4 * KB })
          const b = yield* redisInstance("b", connection, { channel: "mb5", maxMessageBytes: 4 * KB })
          yield* a.cache.update("small", "s")
          yield* a.cache.update("large", "x".repeat(8 * KB))
          yield* eventually(
            Effect.filterOrFail(
              Effect.sync(() => received.length),
              (n) => n === 2
            )
          )
          expect(received.map((raw) => (JSON.parse(raw) as { type: string }).type)).toEqual([
            "Update",
            "Remove"
          ])
          expect(yield* b.cache.get("large")).toEqual(Option.some("x".repeat(8 * KB)))
        })
    )

    it.scoped("maxMessageBytes must be a positive integer", () =>
      Effect.gen(function* () {
        const connection = yield* Layer.build(connectionLayer())
        for (const bad of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY, "1024"]) {
          const error = yield* Effect.flip(
            RedisInvalidationBus.make({ maxMessageBytes: bad as never }).pipe(Effect.provide(connection))
          )
          expect([bad, error._tag, error.option]).toEqual([bad, "CacheConfigError", "maxMessageBytes"])
        }
      })
    )
  })
})

describe("the default bound", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    // README, Long bus messages: a RemoveBulk of invalidateMany holds at most 1000 keys, whatever
    // their bytes (the removes of one moment, 256: removeBatch.redis.test.ts).
    it.scoped("short keys: invalidateMany sends 1000 keys a message", () =>
      Effect.gen(function* () {
        const received = yield* rawMessages("mb7")
        const { a, b } = yield* twoInstances("mb7")
        const counts = () =>
          received.map((raw) => {
            const m = JSON.parse(raw) as { type: string; keys?: Array<string> }
            return m.type === "RemoveBulk" ? m.keys!.length : 1
          })
        const keys = Array.from({ length: 2001 }, (_, i) => `many:${i}`)
        for (const key of keys) yield* b.l1.set(key, Entry.make({ value: 1, now: Date.now(), ttlMs: 60_000 }))
        yield* a.cache.invalidateMany(keys)
        const total = Effect.map(Effect.sync(counts), (n) => n.reduce((x, y) => x + y, 0))
        yield* eventually(Effect.filterOrFail(total, (n) => n === 2001))
        expect(counts()).toEqual([1000, 1000, 1])
        yield* eventually(Effect.filterOrFail(heldBy(b, keys), (n) => n === 0))
      })
    )

    it.scoped("is 1 MiB: a RemoveBulk of 3 MB leaves in 3 pieces, in order", () =>
      Effect.gen(function* () {
        const received = yield* rawMessages("mb6")
        const { a } = yield* twoInstances("mb6")
        const keys = longKeys("mb6", 300, 10 * KB)
        yield* a.bus.publish({ type: "RemoveBulk", keys, origin: "js" })
        yield* eventually(
          Effect.filterOrFail(
            Effect.sync(() => received.length),
            (n) => n === 3
          )
        )
        for (const raw of received) {
          expect(Buffer.byteLength(raw)).toBeLessThanOrEqual(1024 * KB)
          expect(Buffer.byteLength(raw)).toBeGreaterThan(900 * KB)
        }
        expect(received.flatMap((raw) => (JSON.parse(raw) as { keys: Array<string> }).keys)).toEqual(keys)
      })
    )
  })
})
