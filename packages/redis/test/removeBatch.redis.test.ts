/**
 * The removes a bus publishes in one moment share one message (internal/removeBatch.ts): a
 * lone write still sends a plain `Remove`, writes at once send `RemoveBulk`s covering every key
 * exactly once, another instance drops every copy they announce, messages keep the order they
 * were published in, and removes of different caches on one bus keep their own origin. A
 * model check runs random rounds of writes at once (set, update, invalidate) on one instance and
 * compares another instance's every read with the last write.
 */
import { describe, expect, layer } from "@effect/vitest"
import { type InvalidationMessage, MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option, Redacted } from "effect"
import fc from "fast-check"
import type { Redis } from "ioredis"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, countWrites, eventually, observer } from "./utils.js"

const CHANNEL = "batch:invalidate"

/**
 * A cache with MemoryTier, RedisTier and the bus on CHANNEL, on a connection of its own (with
 * `connection`'s options).
 */
const instanceWithClient = (instanceId: string, connection: RedisConnection.Options = {}) =>
  Effect.map(
    Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: 10_000 })),
        Layer.provide(
          Layer.merge(RedisTier.layer({ prefix: "batch:" }), RedisInvalidationBus.layer({ channel: CHANNEL }))
        ),
        Layer.provideMerge(connectionLayer(connection))
      )
    ),
    (context) => ({
      cache: Context.get(context, TieredCache.TieredCache),
      client: Context.get(context, RedisConnection.RedisConnection).client
    })
  )

const instance = (instanceId: string, connection: RedisConnection.Options = {}) =>
  Effect.map(instanceWithClient(instanceId, connection), ({ cache }) => cache)

/** Every message published on CHANNEL from now on, decoded, in the order Redis sent them. */
const listen = Effect.gen(function* () {
  const client: Redis = yield* observer
  const messages: Array<InvalidationMessage.InvalidationMessage> = []
  client.on("message", (_channel: string, payload: string) => {
    messages.push(JSON.parse(payload) as InvalidationMessage.InvalidationMessage)
  })
  yield* Effect.promise(() => client.subscribe(CHANNEL))
  return messages
})

/** The keys the remove messages among `messages` name, by origin, in order. */
const removedKeys = (messages: ReadonlyArray<InvalidationMessage.InvalidationMessage>, origin: string) =>
  messages.flatMap((m) =>
    m.origin !== origin ? [] : m.type === "Remove" ? [m.key] : m.type === "RemoveBulk" ? [...m.keys] : []
  )

const keysOf = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i}`)

describe("the removes of one moment", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("a lone write sends a Remove; writes at once share RemoveBulks naming every key once", () =>
      Effect.gen(function* () {
        const messages = yield* listen
        const cache = yield* instance("lone")
        yield* cache.set("alone", 1)
        yield* eventually(
          Effect.suspend(() => (messages.length === 1 ? Effect.void : Effect.fail("not yet")))
        )
        expect(messages[0]).toMatchObject({ type: "Remove", key: "alone", origin: "lone" })

        const keys = keysOf("many", 600)
        yield* Effect.forEach(keys, (key, i) => cache.set(key, i), {
          concurrency: "unbounded",
          discard: true
        })
        yield* eventually(
          Effect.suspend(() =>
            removedKeys(messages, "lone").length >= 601 ? Effect.void : Effect.fail("not yet")
          )
        )
        const after = messages.slice(1)
        const named = removedKeys(after, "lone")
        expect([...named].sort()).toEqual([...keys].sort())
        // Far fewer messages than writes, none longer than 256 keys (README, Long bus messages:
        // "the removes of one moment: 256"), the longest that long.
        expect(after.length).toBeGreaterThanOrEqual(3)
        expect(after.length).toBeLessThan(100)
        for (const m of after) {
          expect(m.type === "Remove" || m.type === "RemoveBulk").toBe(true)
          if (m.type === "RemoveBulk") expect(m.keys.length).toBeLessThanOrEqual(256)
        }
        expect(Math.max(...after.map((m) => (m.type === "RemoveBulk" ? m.keys.length : 1)))).toBe(256)
        const stats = yield* cache.invalidationStats
        expect(stats.messagesSent).toBe(601)
        expect(stats.publishFailures).toBe(0)
      })
    )

    it.scoped("a lone write sends its SET and its PUBLISH in one socket write", () =>
      Effect.gen(function* () {
        const { cache, client } = yield* instanceWithClient("one-write")
        yield* cache.set("warm", 0)
        for (let i = 0; i < 5; i++) {
          const counter = countWrites(client)
          yield* cache.set(`one-write${i}`, i)
          counter.restore()
          expect(counter.writes()).toBe(1)
        }
        expect((yield* cache.invalidationStats).messagesSent).toBe(6)
      })
    )

    it.scoped("another instance drops every copy that writes at once replaced", () =>
      Effect.gen(function* () {
        const writer = yield* instance("writer")
        const reader = yield* instance("reader")
        const keys = keysOf("copy", 400)
        yield* Effect.forEach(keys, (key) => writer.set(key, "old"), { discard: true })
        // The reader's L1 holds every key (read from Redis, promoted).
        for (const key of keys) expect(yield* reader.get(key)).toEqual(Option.some("old"))
        const before = (yield* reader.invalidationStats).messagesApplied
        const received = (yield* reader.invalidationStats).messagesReceived
        const sent = (yield* writer.invalidationStats).messagesSent
        yield* Effect.forEach(keys, (key) => writer.set(key, "new"), {
          concurrency: "unbounded",
          discard: true
        })
        yield* eventually(
          Effect.forEach(keys, (key) =>
            Effect.flatMap(reader.get(key), (value) =>
              Option.getOrUndefined(value) === "new" ? Effect.void : Effect.fail(`${key} still old`)
            )
          )
        )
        // Fewer messages than writes carried them.
        const applied = (yield* reader.invalidationStats).messagesApplied - before
        expect(applied).toBeGreaterThan(0)
        expect(applied).toBeLessThan(100)
        // README: messagesSent counts each Remove the writer published, messagesReceived each
        // message that arrived (a RemoveBulk once).
        expect((yield* writer.invalidationStats).messagesSent - sent).toBe(400)
        expect((yield* reader.invalidationStats).messagesReceived - received).toBe(applied)
      })
    )

    it.scoped("model: after rounds of writes at once, another instance reads every last write", () =>
      Effect.gen(function* () {
        const writer = yield* instance("model-writer")
        const reader = yield* instance("model-reader")
        let run = 0
        type Op = { readonly op: "set" | "update" | "invalidate"; readonly v: number }
        // A round: an operation (or none) per key of 8, all started at once.
        const round = fc.array(
          fc.option(
            fc.record({
              op: fc.constantFrom("set" as const, "update" as const, "invalidate" as const),
              v: fc.nat()
            })
          ),
          { minLength: 8, maxLength: 8 }
        )
        const check = (rounds: ReadonlyArray<ReadonlyArray<Op | null>>) =>
          Effect.gen(function* () {
            const ns = `m${run++}:`
            const model = new Map<string, number>()
            const key = (k: number) => `${ns}${k}`
            let marker = 0
            for (const ops of rounds) {
              // The reader holds every key there is in its L1 (a copy a lost message would leave stale).
              for (let k = 0; k < 8; k++) yield* reader.get(key(k))
              yield* reader.get(`${ns}marker`)
              yield* Effect.forEach(
                ops.map((o, k) => [o, key(k)] as const),
                ([o, id]) => {
                  if (o === null) return Effect.void
                  if (o.op === "invalidate") {
                    model.delete(id)
                    return writer.invalidate(id)
                  }
                  model.set(id, o.v)
                  return o.op === "set" ? writer.set(id, o.v) : writer.update(id, o.v)
                },
                { concurrency: "unbounded", discard: true }
              )
              // Messages of one connection arrive in order: once the marker's shows, the round's did.
              marker++
              yield* writer.set(`${ns}marker`, marker)
              yield* eventually(
                Effect.flatMap(reader.get(`${ns}marker`), (m) =>
                  Option.getOrUndefined(m) === marker ? Effect.void : Effect.fail("marker not yet")
                )
              )
              for (let k = 0; k < 8; k++) {
                expect(Option.getOrUndefined(yield* reader.get(key(k))), key(k)).toBe(model.get(key(k)))
              }
            }
          })
        yield* Effect.promise(() =>
          fc.assert(
            fc.asyncProperty(fc.array(round, { minLength: 1, maxLength: 6 }), (rounds) =>
              Effect.runPromise(check(rounds))
            ),
            { numRuns: 25 }
          )
        )
      })
    )

    it.scoped("messages leave in the order they were published: removes before a later update", () =>
      Effect.gen(function* () {
        const messages = yield* listen
        const cache = yield* instance("ordered")
        for (let round = 0; round < 20; round++) {
          // In one moment: two sets (removes), then an update of one of their keys.
          yield* Effect.all(
            [cache.set(`a${round}`, 1), cache.set(`b${round}`, 1), cache.update(`a${round}`, 2)],
            { concurrency: "unbounded", discard: true }
          )
        }
        yield* eventually(
          Effect.suspend(() =>
            messages.filter((m) => m.type === "Update").length === 20 ? Effect.void : Effect.fail("not yet")
          )
        )
        for (let round = 0; round < 20; round++) {
          const update = messages.findIndex((m) => m.type === "Update" && m.key === `a${round}`)
          const removal = messages.findIndex((m) => removedKeys([m], "ordered").includes(`a${round}`))
          expect(removal, `round ${round}`).toBeGreaterThanOrEqual(0)
          expect(removal, `round ${round}`).toBeLessThan(update)
        }
      })
    )

    it.scoped("two caches on one bus: each remove keeps its own origin", () =>
      Effect.gen(function* () {
        const messages = yield* listen
        const bus = Layer.merge(
          RedisTier.layer({ prefix: "batch:" }),
          RedisInvalidationBus.layer({ channel: CHANNEL })
        ).pipe(Layer.provide(connectionLayer()))
        const shared = yield* Layer.build(bus)
        const cacheOf = (instanceId: string) =>
          Effect.map(
            Layer.build(
              TieredCache.layer({ instanceId }).pipe(
                Layer.provide(MemoryTier.layer({ maxEntries: 1000 })),
                Layer.provide(Layer.succeedContext(shared))
              )
            ),
            (context) => Context.get(context, TieredCache.TieredCache)
          )
        const one = yield* cacheOf("one")
        const two = yield* cacheOf("two")
        const keys = keysOf("mine", 50)
        yield* Effect.forEach(
          keys,
          (key, i) => (i % 2 === 0 ? one.set(`one:${key}`, i) : two.set(`two:${key}`, i)),
          { concurrency: "unbounded", discard: true }
        )
        yield* eventually(
          Effect.suspend(() =>
            removedKeys(messages, "one").length + removedKeys(messages, "two").length >= 50
              ? Effect.void
              : Effect.fail("not yet")
          )
        )
        expect(removedKeys(messages, "one").every((k) => k.startsWith("one:"))).toBe(true)
        expect(removedKeys(messages, "two").every((k) => k.startsWith("two:"))).toBe(true)
        expect(removedKeys(messages, "one")).toHaveLength(25)
        expect(removedKeys(messages, "two")).toHaveLength(25)
      })
    )

    it.scoped("a batch whose PUBLISH Redis refuses fails every write's message", () =>
      Effect.gen(function* () {
        const look = yield* observer
        // A user that may do everything but publish.
        yield* Effect.promise(() =>
          look.acl("SETUSER", "nopublish", "on", ">pw", "~*", "&*", "+@all", "-publish")
        )
        const cache = yield* instance("refused", {
          username: Redacted.make("nopublish"),
          password: Redacted.make("pw")
        })
        yield* Effect.forEach(keysOf("refused", 20), (key, i) => cache.set(key, i), {
          concurrency: "unbounded",
          discard: true
        })
        yield* cache.set("refused-alone", 1)
        const stats = yield* cache.invalidationStats
        expect(stats.messagesSent).toBe(0)
        expect(stats.publishFailures).toBe(21)
        // The writes themselves went through.
        expect(yield* Effect.promise(() => look.exists("batch:refused0", "batch:refused-alone"))).toBe(2)
      })
    )

    it.scoped("while the connection is down a remove is not kept waiting: it fails at once", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const cache = yield* instance("down")
        yield* server.stop
        const started = Date.now()
        yield* Effect.forEach(keysOf("down", 10), (key) => Effect.either(cache.set(key, 1)), {
          concurrency: "unbounded",
          discard: true
        })
        const stats = yield* cache.invalidationStats
        expect(stats.publishFailures + stats.publishesSkipped).toBe(10)
        // At once: well before the command timeout (500 ms) would end a queued command.
        expect(Date.now() - started).toBeLessThan(450)
        yield* server.start
      })
    )
  })
})
