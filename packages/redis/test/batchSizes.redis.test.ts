/**
 * README's Production checklist, Timeouts: each chunk of a batch is bounded alone, `getMany`
 * reading 512 keys per script call, `setMany` writing 1,000 per pipeline and `remove` removing
 * 1,000 keys per UNLINK, one chunk after the other. (The reads of one moment, 64 a call: RedisTier.test.ts.)
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisConnection, RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const Connection = connectionLayer()
const Env = Layer.mergeAll(
  Connection,
  RedisTier.layer({ prefix: "bs:" }).pipe(Layer.provide(Connection))
).pipe(Layer.provideMerge(RedisServer.layer()))

/** How many times Redis ran each command since the last CONFIG RESETSTAT (INFO commandstats). */
const commandCalls = (look: Redis) =>
  Effect.map(
    Effect.promise(() => look.info("commandstats")),
    (stats) => (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  )

const keys = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `k${from + i}`)
const entries = (names: ReadonlyArray<string>) =>
  names.map((k) => [k, Entry.make({ value: k, now: Date.now(), ttlMs: 60_000 })] as const)

describe("batch chunk sizes (README Production checklist: Timeouts)", () => {
  layer(Env, { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("getMany reads 512 keys per script call: 1,024 keys in 2 calls, 1,025 in 3", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        yield* tier.setMany(entries(keys(1_025)))
        for (const [n, calls] of [
          [1_024, 2],
          [1_025, 3]
        ] as const) {
          yield* Effect.promise(() => look.config("RESETSTAT"))
          const got = yield* tier.getMany(keys(n))
          expect(got.map((found) => Option.map(found, (e) => e.value))).toEqual(keys(n).map(Option.some))
          const called = yield* commandCalls(look)
          expect([n, called("evalsha") + called("eval")]).toEqual([n, calls])
        }
      })
    )

    it.scoped("remove removes 1,000 keys per UNLINK: 2,000 keys in 2, 2,001 in 3; every key gone", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        for (const [n, calls] of [
          [2_000, 2],
          [2_001, 3]
        ] as const) {
          yield* tier.setMany(entries(keys(n)))
          yield* Effect.promise(() => look.config("RESETSTAT"))
          yield* tier.remove(keys(n))
          const called = yield* commandCalls(look)
          expect([n, called("unlink")]).toEqual([n, calls])
          expect(yield* Effect.promise(() => look.exists(...keys(n).map((k) => `bs:${k}`)))).toBe(0)
        }
      })
    )

    it.scoped("setMany writes 1,000 per pipeline, each sent once the one before was answered", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const { client } = yield* RedisConnection.RedisConnection
        const look = yield* observer
        // Each pipeline's size as it is sent, and whether every earlier one was answered by then.
        const sent: Array<readonly [number, boolean]> = []
        const answered: Array<boolean> = []
        const pipeline = client.pipeline
        client.pipeline = function (this: Redis, ...args: Parameters<Redis["pipeline"]>) {
          const made = pipeline.apply(this, args)
          const exec = made.exec
          made.exec = function (this: typeof made, ...execArgs: Parameters<typeof made.exec>) {
            const index = answered.length
            sent.push([made.length, answered.every(Boolean)])
            answered.push(false)
            const result = exec.apply(this, execArgs)
            void result.then(
              () => {
                answered[index] = true
              },
              () => {
                answered[index] = true
              }
            )
            return result
          } as typeof made.exec
          return made
        } as Redis["pipeline"]
        yield* Effect.addFinalizer(() =>
          Effect.sync(() => {
            client.pipeline = pipeline
          })
        )
        yield* tier.setMany(entries(keys(2_500)))
        expect(sent).toEqual([
          [1_000, true],
          [1_000, true],
          [500, true]
        ])
        expect(yield* Effect.promise(() => look.exists(...keys(2_500).map((k) => `bs:${k}`)))).toBe(2_500)
      })
    )
  })
})
