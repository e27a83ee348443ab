/**
 * RedisTier's reads while the connection is busy (tierReads.ts): a read made while earlier ones
 * are unanswered waits for the end of the event-loop turn and, alone, goes out auto-pipelined
 * with the turn's other commands. Every answer must still be its own key's value with its own
 * remaining lifetime, misses and foreign data included.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Layer, Option, Random } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const Connection = connectionLayer()
const Env = Layer.mergeAll(
  Connection,
  RedisTier.layer({ prefix: "rb:" }).pipe(Layer.provide(Connection))
).pipe(Layer.provideMerge(RedisServer.layer()))

describe("RedisTier reads on a busy connection", () => {
  layer(Env, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("staggered concurrent reads each get their own key's value and lifetime", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        const now = Date.now()
        // Keys 0..199: entries whose lifetime says which key they are (key i lives i + 10 seconds).
        for (let i = 0; i < 200; i++) {
          yield* tier.set(`k${i}`, Entry.make({ value: { i }, now, ttlMs: (i + 10) * 1000 }))
        }
        // Foreign data: a list (WRONGTYPE for GETRANGE) and a string that is no entry.
        yield* Effect.promise(() => look.rpush("rb:list", "x"))
        yield* Effect.promise(() => look.set("rb:foreign", "not an entry"))
        const keys = [...Array.from({ length: 200 }, (_, i) => `k${i}`), "missing", "list", "foreign"]
        const answers = yield* Effect.forEach(
          Array.from({ length: 2000 }),
          () =>
            Effect.gen(function* () {
              // Some reads start alone in a turn, others together: both paths, busy and idle.
              if (yield* Random.nextBoolean)
                yield* Effect.sleep(`${yield* Random.nextIntBetween(0, 3)} millis`)
              const key = keys[yield* Random.nextIntBetween(0, keys.length)]!
              return [key, yield* tier.get(key)] as const
            }),
          { concurrency: 64 }
        )
        const at = Date.now()
        for (const [key, found] of answers) {
          if (!key.startsWith("k")) {
            expect(found, key).toEqual(Option.none())
            continue
          }
          const i = Number(key.slice(1))
          expect(Option.map(found, (e) => e.value)).toEqual(Option.some({ i }))
          const remaining = Option.getOrThrow(found).expiresAt - at
          expect(remaining).toBeLessThanOrEqual((i + 10) * 1000)
          expect(remaining).toBeGreaterThan((i + 10) * 1000 - 5000)
        }
      })
    )

    it.scoped("lone reads made while Redis is still busy with earlier ones get their own answers", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        const now = Date.now()
        for (let i = 0; i < 20; i++) {
          yield* tier.set(`lone${i}`, Entry.make({ value: i, now, ttlMs: (i + 10) * 1000 }))
        }
        // Redis runs a script for 300 ms: every read sent meanwhile stays unanswered.
        const spin = yield* Effect.fork(
          Effect.promise(() =>
            look.eval(
              "local t = redis.call('TIME') local e = t[1] * 1000000 + t[2] + 300000 " +
                "repeat t = redis.call('TIME') until t[1] * 1000000 + t[2] >= e return 1",
              0
            )
          )
        )
        yield* Effect.sleep("30 millis")
        // One read per event-loop turn: the first finds the connection idle, the others busy.
        const reads = []
        for (let i = 0; i < 20; i++) {
          reads.push(yield* Effect.fork(tier.get(`lone${i}`)))
          yield* Effect.sleep("2 millis")
        }
        yield* Effect.fromFiber(spin)
        const at = Date.now()
        for (let i = 0; i < 20; i++) {
          const found = yield* Effect.fromFiber(reads[i]!)
          expect(Option.map(found, (e) => e.value)).toEqual(Option.some(i))
          const remaining = Option.getOrThrow(found).expiresAt - at
          expect(remaining).toBeLessThanOrEqual((i + 10) * 1000)
          expect(remaining).toBeGreaterThan((i + 10) * 1000 - 5000)
        }
      })
    )
  })
})
