/**
 * Writes interrupted at any step on a real Redis (the README setup: MemoryTier, RedisTier and
 * the bus on one connection, so a set and its message leave together): once the interruption
 * has come, the write has run to its end or not begun (never half-way: this instance's L1 and
 * Redis agree), the key is cached again, on this instance and on another one.
 */
import { describe, expect, layer } from "@effect/vitest"
import type { TieredCache } from "@tiercache/core"
import { Interruptions, RedisServer } from "@tiercache/testing"
import { Effect, Equal, Option } from "effect"
import { eventually, observer, redisInstance } from "./utils.js"

const instance = (instanceId: string) =>
  redisInstance(instanceId, {}, { channel: "interrupted:invalidate" }, { prefix: "interrupted:" })

type Cache = TieredCache.TieredCache.Service

describe("a write interrupted at any step on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    const writes: ReadonlyArray<[string, (cache: Cache, key: string) => Effect.Effect<unknown, unknown>]> = [
      ["set", (cache, key) => cache.set(key, "new")],
      ["update", (cache, key) => cache.update(key, "new")],
      ["invalidate", (cache, key) => cache.invalidate(key)],
      ["invalidateMany", (cache, key) => cache.invalidateMany([key, `${key}:other`])],
      ["invalidatePattern", (cache, key) => cache.invalidatePattern(`${key}*`)],
      ["invalidateTag", (cache) => cache.invalidateTag("t")]
    ]
    for (const [name, write] of writes) {
      it.scoped(`${name}: both instances agree afterwards, and cache the key again`, () =>
        Effect.gen(function* () {
          const look = yield* observer
          const { cache: a, l1 } = yield* instance(`a-${name}`)
          const { cache: b } = yield* instance(`b-${name}`)
          const key = (run: string) => `${name}:${run}`
          const { failed, interrupted } = yield* Interruptions.atEachStep(
            (run, padding) => Effect.zipRight(padding, write(a, key(run))),
            (run) =>
              Effect.gen(function* () {
                // Run to its end or not begun: A's L1 holds "old" exactly when Redis does (an
                // invalidated tag leaves its entries where they are).
                const inL1 = Option.exists(yield* l1.get(key(run)), (e) => e.value === "old")
                const stored = yield* Effect.promise(() => look.get(`interrupted:${key(run)}`))
                if (name !== "invalidateTag" && inL1 !== (stored?.includes('"old"') === true)) return false
                // B hears of A's write over the bus: give it the time to.
                const agree = yield* eventually(
                  Effect.flatMap(Effect.zip(a.get(key(run)), b.get(key(run))), ([x, y]) =>
                    Equal.equals(x, y) ? Effect.void : Effect.fail("disagree")
                  ),
                  "2 seconds"
                ).pipe(Effect.isSuccess)
                return (
                  agree &&
                  (yield* Interruptions.cachesAgain(a, key(run))) &&
                  (yield* Interruptions.cachesAgain(b, `${key(run)}:b`))
                )
              }),
            // Each run's key holds "old" in Redis and in both L1s.
            {
              prepare: (run) => Effect.zipRight(a.set(key(run), "old", { tags: ["t"] }), b.get(key(run))),
              pads: 13
            }
          )
          expect(failed).toEqual([])
          expect(interrupted).toBe(13 * 16)
        })
      )
    }
  })
})
