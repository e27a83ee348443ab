/**
 * README (Statistics): "every request counts once, as an L1 hit, a lower-tier hit, a coalesced
 * wait or a miss". Two instances on one Redis read, compute and change the same keys at once:
 * each counts exactly the reads it was asked for (a getMany's every listing, a getOrCompute a
 * computation answered or joined), whatever raced it.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Effect, Schema } from "effect"
import { observer, redisInstance } from "./utils.js"

describe("statistics on Redis, two instances at once", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("every read counts once on the instance that made it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const a = yield* redisInstance("stats-a")
        const b = yield* redisInstance("stats-b")
        const keys = Array.from({ length: 20 }, (_, i) => `s${i}`)
        const compute = (i: number) => Effect.as(Effect.sleep("2 millis"), i)
        /** One round of one instance's reads on key i, and how many requests they are. */
        const reads = (cache: typeof a.cache, i: number) => {
          const key = keys[i]!
          const other = keys[(i + 7) % keys.length]!
          return [
            [cache.get(key), 1],
            [cache.get(key, { allowStale: true }), 1],
            [cache.getTyped(key, Schema.Number), 1],
            [cache.getMany([key, other, key]), 3],
            [cache.getOrCompute(key, compute(i), { ttl: "50 millis", grace: "1 minute" }), 1],
            [cache.getOrCompute(key, compute(i), { timeouts: { soft: "1 millis", hard: "1 second" } }), 1],
            [cache.getOrComputeTyped(other, Schema.Number, compute(i)), 1]
          ] as const
        }
        /** Changes made by the other instance meanwhile. */
        const changes = (cache: typeof a.cache, i: number) => [
          cache.set(keys[i]!, -i, { ttl: "30 millis", grace: "1 minute" }),
          cache.invalidate(keys[(i + 3) % keys.length]!),
          i % 5 === 0 ? cache.invalidatePattern("s1*") : Effect.void
        ]
        let issued = { a: 0, b: 0 }
        for (let round = 0; round < 4; round++) {
          const work: Array<Effect.Effect<unknown, unknown>> = []
          for (let i = 0; i < keys.length; i++) {
            for (const [cache, name] of [
              [a.cache, "a"],
              [b.cache, "b"]
            ] as const) {
              for (const [read, count] of reads(cache, i)) {
                work.push(read as Effect.Effect<unknown, unknown>)
                issued = { ...issued, [name]: issued[name] + count }
              }
            }
            work.push(...changes(round % 2 === 0 ? a.cache : b.cache, i))
          }
          yield* Effect.all(work, { concurrency: 64, discard: true })
          yield* Effect.sleep("40 millis")
        }
        const counted = (s: typeof stats.a) =>
          s.l1Hits + s.tierHits.reduce((n, h) => n + h, 0) + s.coalesced + s.misses
        const stats = { a: yield* a.cache.stats, b: yield* b.cache.stats }
        expect({ a: stats.a.requests, b: stats.b.requests }).toEqual(issued)
        expect({ a: counted(stats.a), b: counted(stats.b) }).toEqual(issued)
        // Not vacuous: every kind of outcome happened.
        for (const s of [stats.a, stats.b]) {
          expect(Math.min(s.l1Hits, s.l2Hits, s.misses, s.coalesced, s.computations)).toBeGreaterThan(0)
        }
      })
    )
  })
})
