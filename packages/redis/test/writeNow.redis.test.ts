/**
 * RedisTier's `setNow` and RedisInvalidationBus's `publishNow`, the cache's one-step write
 * (oneStepWrite.ts): started at once, answered once and only after they return, refusing what
 * they cannot start (a large value, a bad argument from plain JS), failing typed when Redis is
 * gone. The cache's set on the README's setup takes this way: orderedWrites.redis.test.ts checks
 * that Redis still runs its SET before the PUBLISH announcing it.
 */
import { describe, expect, layer } from "@effect/vitest"
import { type CacheError, Entry, type InvalidationMessage } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, Layer } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

const entry = (value: unknown) => Entry.make({ value, now: Date.now(), ttlMs: 60_000, graceMs: 0, tags: [] })

/** A tier and a bus on one connection of their own (large values from `largeValueBytes`). */
const world = (prefix: string, largeValueBytes = 1024) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(connectionLayer({ largeValueBytes }))
    const connection = Context.get(context, RedisConnection.RedisConnection)
    const tier = yield* Effect.provide(RedisTier.make({ prefix }), context)
    const bus = yield* Effect.provide(RedisInvalidationBus.make({ channel: `${prefix}invalidate` }), context)
    return { tier, bus, client: connection.client }
  })

/** Waits (at most 5 s) until `holds()`. */
const until = (holds: () => boolean) =>
  eventually(
    Effect.filterOrFail(
      Effect.sync(holds),
      (b) => b,
      () => new Error("not yet")
    )
  )

/** Calls `start` with a `done` that records its answers, and whether `start` had returned by each. */
const started = <E>(start: (done: (error: E | undefined) => void) => unknown) =>
  Effect.gen(function* () {
    const answers: Array<{ readonly error: E | undefined; readonly afterReturn: boolean }> = []
    let returned = false
    const result = start((error) => answers.push({ error, afterReturn: returned }))
    returned = true
    return { result, answers }
  })

describe("writes started at once", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "20 seconds" })((it) => {
    it.scoped("RedisTier's setNow sends a small write and answers it once, after returning", () =>
      Effect.gen(function* () {
        const { tier } = yield* world("now1:")
        const look = yield* observer
        const { answers, result } = yield* started<CacheError.TierError>((done) =>
          tier.setNow!("k", entry({ a: 1 }), done)
        )
        expect(result).toBe(true)
        yield* until(() => answers.length === 1)
        expect(answers).toEqual([{ error: undefined, afterReturn: true }])
        const raw = yield* Effect.promise(() => look.get("now1:k"))
        expect(Entry.deserialize(raw!)?.value).toEqual({ a: 1 })
        // Later answers never come.
        yield* Effect.sleep("50 millis")
        expect(answers.length).toBe(1)
      })
    )

    it.scoped(
      "setNow starts nothing for a large value or a bad argument from plain JS (setThen handles them)",
      () =>
        Effect.gen(function* () {
          const { tier } = yield* world("now2:", 64)
          const look = yield* observer
          let answered = 0
          const done = () => void answered++
          const js = (u: unknown) => u as string
          expect(tier.setNow!("big", entry("x".repeat(200)), done)).toBe(false)
          expect(tier.setNow!(js(42), entry(1), done)).toBe(false)
          expect(tier.setNow!("k\uD800", entry(1), done)).toBe(false)
          expect(tier.setNow!("bad", js({ value: 1 }) as unknown as Entry.Entry, done)).toBe(false)
          yield* Effect.sleep("50 millis")
          expect(answered).toBe(0)
          expect(yield* Effect.promise(() => look.keys("now2:*"))).toEqual([])
        })
    )

    it.scoped(
      "RedisTier's removeNow sends an UNLINK and answers it once, after returning; it declines what it cannot start",
      () =>
        Effect.gen(function* () {
          const { tier, client } = yield* world("now5:", 64)
          const look = yield* observer
          yield* Effect.promise(() => look.mset("now5:a", "1", "now5:b", "2"))
          const { answers, result } = yield* started<CacheError.TierError>((done) =>
            tier.removeNow!(["a", "b"], done)
          )
          expect(result).toBe(true)
          yield* until(() => answers.length === 1)
          expect(answers).toEqual([{ error: undefined, afterReturn: true }])
          expect(yield* Effect.promise(() => look.exists("now5:a", "now5:b"))).toBe(0)
          // Not started: no keys, more than one UNLINK takes, a bad list from plain JS, or a key
          // whose large write is on its way (that one waits for it, removeThen's way).
          let answered = 0
          const done = () => void answered++
          expect(tier.removeNow!([], done)).toBe(false)
          expect(
            tier.removeNow!(
              Array.from({ length: 1001 }, (_, i) => `many${i}`),
              done
            )
          ).toBe(false)
          expect(tier.removeNow!([42 as unknown as string], done)).toBe(false)
          const big = yield* Effect.fork(tier.set("big", entry("x".repeat(200))))
          yield* Effect.yieldNow()
          expect(tier.removeNow!(["big"], done)).toBe(false)
          yield* Fiber.join(big)
          yield* Effect.sleep("50 millis")
          expect(answered).toBe(0)
          // Closed: answers a TierError of the removal, once.
          client.disconnect()
          const closed = yield* started<CacheError.TierError>((done) => tier.removeNow!(["a"], done))
          expect(closed.result).toBe(true)
          yield* until(() => closed.answers.length === 1)
          expect([closed.answers[0]!.error?._tag, closed.answers[0]!.error?.operation]).toEqual([
            "TierError",
            "remove"
          ])
        })
    )

    it.scoped("setNow on a closed connection answers a TierError, once", () =>
      Effect.gen(function* () {
        const { client, tier } = yield* world("now3:")
        client.disconnect()
        const { answers, result } = yield* started<CacheError.TierError>((done) =>
          tier.setNow!("k", entry(1), done)
        )
        expect(result).toBe(true)
        yield* until(() => answers.length === 1)
        expect([answers[0]!.error?._tag, answers[0]!.error?.operation, answers[0]!.afterReturn]).toEqual([
          "TierError",
          "set",
          true
        ])
      })
    )

    it.scoped(
      "RedisInvalidationBus's publishNow delivers the message and answers once, after returning",
      () =>
        Effect.gen(function* () {
          const { bus } = yield* world("now4:")
          const look = yield* observer
          const received: Array<unknown> = []
          yield* Effect.promise(() => look.subscribe("now4:invalidate"))
          look.on("message", (_channel: string, message: string) => received.push(JSON.parse(message)))
          for (const message of [
            { type: "Remove", key: "k", origin: "a" },
            { type: "RemovePattern", pattern: "p*", origin: "a" }
          ] satisfies ReadonlyArray<InvalidationMessage.InvalidationMessage>) {
            const { answers } = yield* started<CacheError.BusError>((done) => bus.publishNow!(message, done))
            yield* until(() => answers.length === 1)
            expect(answers).toEqual([{ error: undefined, afterReturn: true }])
          }
          yield* until(() => received.length === 2)
          expect(received).toMatchObject([
            { type: "Remove", key: "k", origin: "a" },
            { type: "RemovePattern", pattern: "p*", origin: "a" }
          ])
        })
    )

    it.scoped("publishNow of a message that cannot be encoded answers a BusError, and sends nothing", () =>
      Effect.gen(function* () {
        const { bus } = yield* world("now5:")
        const look = yield* observer
        const received: Array<string> = []
        yield* Effect.promise(() => look.subscribe("now5:invalidate"))
        look.on("message", (_channel: string, message: string) => received.push(message))
        // From plain JS: a value JSON cannot hold.
        const message = {
          type: "Update",
          key: "k",
          value: 1n,
          origin: "a"
        } as unknown as InvalidationMessage.InvalidationMessage
        const { answers } = yield* started<CacheError.BusError>((done) => bus.publishNow!(message, done))
        yield* until(() => answers.length === 1)
        expect([answers[0]!.error?._tag, answers[0]!.error?.reason, answers[0]!.afterReturn]).toEqual([
          "BusError",
          "message cannot be encoded",
          true
        ])
        yield* Effect.sleep("50 millis")
        expect(received).toEqual([])
      })
    )
  })
})
