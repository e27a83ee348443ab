/**
 * The byte budget of one read-script call (readScript.ts): a call reads about `largeValueBytes`
 * of values at most; once the values read reach that many bytes, the keys after them are left to
 * a next call. Both ways of reading: MGET slices (no large value in the namespace) and a GETRANGE
 * per key (after the tier wrote a large one).
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, type Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer } from "./utils.js"

const LIMIT = 1024

/** How many script calls Redis ran since the last CONFIG RESETSTAT (INFO commandstats). */
const scriptCalls = (look: Redis) =>
  Effect.map(
    Effect.promise(() => look.info("commandstats")),
    (stats) =>
      ["eval", "evalsha"].reduce(
        (sum, name) => sum + Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0),
        0
      )
  )

/** A tier on `prefix` whose values of LIMIT bytes or more are large. */
const tierOn = (prefix: string) =>
  Effect.flatMap(Layer.build(connectionLayer({ largeValueBytes: LIMIT })), (context) =>
    Effect.provide(RedisTier.make({ prefix }), context)
  )

/** An entry whose stored form (Entry.serialize) is exactly `bytes` long (ASCII). */
const entryOf = (bytes: number, tag: string) => {
  const now = Date.now()
  const make = (value: string) => Entry.make({ value, now, ttlMs: 60_000 })
  const base = Entry.serialize(make(tag)).length
  const entry = make(tag + "x".repeat(bytes - base))
  expect(Entry.serialize(entry).length).toBe(bytes)
  return entry
}

/** Writes entries of `sizes` bytes under `prefix` (keys k0, k1, ...) straight into Redis. */
const plant = (look: Redis, prefix: string, sizes: ReadonlyArray<number>) =>
  Effect.promise(() =>
    Promise.all(
      sizes.map((bytes, i) =>
        look.set(`${prefix}k${i}`, Entry.serialize(entryOf(bytes, `v${i}`)), "PX", 60_000)
      )
    )
  )

/** getMany of k0..k(n-1): answers how many script calls it took, checking every value came back. */
const readCalls = (tier: Tier.Tier.Service, look: Redis, n: number) =>
  Effect.gen(function* () {
    const keys = Array.from({ length: n }, (_, i) => `k${i}`)
    yield* Effect.promise(() => look.config("RESETSTAT"))
    const found = yield* tier.getMany(keys)
    expect(found.map((o) => Option.map(o, (e) => String(e.value).slice(0, 2)))).toEqual(
      keys.map((_, i) => Option.some(`v${i}`))
    )
    return yield* scriptCalls(look)
  })

describe("the read script's byte budget per call", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("MGET slices: values that reach the budget exactly leave the next key to a next call", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const tier = yield* tierOn("rb-mget:")
        // The first slice (4 keys) reads exactly LIMIT bytes: the fifth key goes in a second call.
        yield* plant(look, "rb-mget:", [LIMIT / 4, LIMIT / 4, LIMIT / 4, LIMIT / 4, 100])
        expect(yield* readCalls(tier, look, 5)).toBe(2)
        // One byte short of it: the fifth key is read in the same call.
        yield* plant(look, "rb-mget:", [LIMIT / 4, LIMIT / 4, LIMIT / 4, LIMIT / 4 - 1, 100])
        expect(yield* readCalls(tier, look, 5)).toBe(1)
      })
    )

    it.scoped(
      "GETRANGE per key: values that reach the budget exactly leave the next key to a next call",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const tier = yield* tierOn("rb-range:")
          // The tier's own large value sets the namespace's marker: reads then take a GETRANGE each.
          yield* tier.set("big", Entry.make({ value: "b".repeat(2 * LIMIT), now: Date.now(), ttlMs: 60_000 }))
          expect(yield* Effect.promise(() => look.exists("rb-range:__tiercache:large"))).toBe(1)
          yield* plant(look, "rb-range:", [LIMIT / 2, LIMIT / 2, 100])
          expect(yield* readCalls(tier, look, 3)).toBe(2)
          yield* plant(look, "rb-range:", [LIMIT / 2, LIMIT / 2 - 1, 100])
          expect(yield* readCalls(tier, look, 3)).toBe(1)
        })
    )
  })
})
