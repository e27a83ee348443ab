import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, RedisServer } from "@tiercache/testing"
import { Context, Duration, Effect, Layer, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, timed } from "./utils.js"

const COMMAND_TIMEOUT_MS = 500

/** What every instance shares, built afresh per instance: its own connections, as on its own machine. */
const Shared = Layer.merge(RedisTier.layer({ prefix: "tc:" }), RedisInvalidationBus.layer()).pipe(
  Layer.provide(connectionLayer({ commandTimeout: Duration.millis(COMMAND_TIMEOUT_MS) }))
)

/** One cache instance with its own MemoryTier L1 (returned too, to look at what it holds). */
const instance = (instanceId: string) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const context = yield* Layer.build(
      // The breaker reopens to probes after 300 ms (default 10 s) so recovery is quick to observe.
      TieredCache.layer({ instanceId, breaker: { openFor: "300 millis" } }).pipe(
        Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1), Layer.fresh(Shared)))
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1 }
  })

/**
 * How long a bus message may take to reach the other instance here: far more than it takes
 * (about a millisecond), far less than the entries' one-minute TTL, which an instance that missed
 * the message would wait out. Not a speed bound: a loaded host must not fail the test.
 */
const PROPAGATION_MS = 5_000

/** Polls `check` every millisecond until it holds; answers how long that took (fails past `withinMs`). */
const within = (withinMs: number, check: Effect.Effect<boolean, unknown>) =>
  Effect.gen(function* () {
    const start = Date.now()
    while (!(yield* check)) {
      if (Date.now() - start > withinMs) return yield* Effect.fail(new Error(`not within ${withinMs} ms`))
      yield* Effect.sleep("1 millis")
    }
    return Date.now() - start
  })

type Instance = Effect.Effect.Success<ReturnType<typeof instance>>

/** Waits (up to about 2 s) until no instance is still writing and each received every message sent. */
const settle = (...instances: ReadonlyArray<Instance>) =>
  MultiInstance.settle(
    instances.map((i) => i.cache),
    { pause: Effect.sleep("1 millis"), rounds: 2000 }
  )

let n = 0
const fresh = (name: string) => `${name}:${Date.now().toString(36)}:${++n}`

describe("TieredCache on Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("two instances see each other's invalidate, update and invalidatePattern over the bus", () =>
      Effect.gen(function* () {
        const a = yield* instance("a")
        const b = yield* instance("b")
        // Warm each path once (the first calls in a process pay for JIT and first evaluation).
        const warm = fresh("warm")
        yield* a.cache.set(warm, 0, { ttl: "1 minute" })
        yield* b.cache.get(warm)
        yield* a.cache.update(warm, 1, { ttl: "1 minute" })
        yield* a.cache.invalidate(warm)
        yield* b.cache.invalidatePattern(`${warm}*`)
        yield* settle(a, b)

        const key = fresh("user")
        yield* a.cache.set(key, { v: 1 }, { ttl: "1 minute" })
        yield* settle(a, b)
        expect(yield* b.cache.get(key)).toEqual(Option.some({ v: 1 })) // now in b's L1
        expect(Option.isSome(yield* b.l1.get(key))).toBe(true)

        // invalidate: b's L1 copy goes.
        yield* a.cache.invalidate(key)
        yield* within(PROPAGATION_MS, Effect.map(b.l1.get(key), Option.isNone))
        expect(yield* b.cache.get(key)).toEqual(Option.none())

        // update: b's L1 receives the new value itself (an L1 hit, no trip to Redis).
        yield* a.cache.set(key, { v: 2 }, { ttl: "1 minute" })
        yield* settle(a, b)
        expect(yield* b.cache.get(key)).toEqual(Option.some({ v: 2 }))
        yield* a.cache.update(key, { v: 3 }, { ttl: "1 minute" })
        yield* within(
          PROPAGATION_MS,
          Effect.map(b.l1.get(key), (e) => Option.isSome(e) && (e.value.value as { v: number }).v === 3)
        )
        const before = yield* b.cache.stats
        expect(yield* b.cache.get(key)).toEqual(Option.some({ v: 3 }))
        const after = yield* b.cache.stats
        expect(after.l1Hits - before.l1Hits).toBe(1)

        // invalidatePattern: only matching keys go from b's L1.
        const base = fresh("pattern")
        for (const k of [`${base}:user:1`, `${base}:user:2`, `${base}:order:1`]) {
          yield* b.cache.set(k, k, { ttl: "1 minute" })
        }
        yield* settle(a, b)
        for (const k of [`${base}:user:1`, `${base}:user:2`, `${base}:order:1`]) yield* a.cache.get(k)
        yield* b.cache.invalidatePattern(`${base}:user:*`)
        yield* within(
          PROPAGATION_MS,
          Effect.map(a.l1.getMany([`${base}:user:1`, `${base}:user:2`]), (es) => es.every(Option.isNone))
        )
        expect(Option.isSome(yield* a.l1.get(`${base}:order:1`))).toBe(true)
        expect(yield* a.cache.get(`${base}:user:1`)).toEqual(Option.none())
        expect((yield* a.cache.invalidationStats).messagesApplied).toBeGreaterThanOrEqual(3)
      })
    )

    it.scoped(
      "an Update without created_ms is not stored once another instance's removal of its key is remembered; otherwise it is",
      () =>
        Effect.gen(function* () {
          // "rust" is another implementation's instance on the same Redis and channel: its
          // Updates carry ttl_secs and no created_ms (nor origin).
          const a = yield* instance("a")
          const b = yield* instance("b")
          const rust = yield* observer
          const applied = Effect.map(b.cache.invalidationStats, (s) => s.messagesApplied)
          const rustUpdate = (key: string, value: string) =>
            Effect.gen(function* () {
              const before = yield* applied
              const message = JSON.stringify({ type: "Update", key, value, ttl_secs: 60 })
              yield* Effect.promise(() => rust.publish("cache:invalidate", message))
              yield* within(
                2000,
                Effect.map(applied, (n) => n > before)
              )
            })
          // No removal of the key remembered: b stores it (in its L1, for ttl_secs).
          const stored = fresh("undated")
          yield* rustUpdate(stored, "rust's")
          expect(Option.map(yield* b.l1.get(stored), (e) => e.value)).toEqual(Option.some("rust's"))
          expect(yield* b.cache.get(stored)).toEqual(Option.some("rust's"))
          // rust writes k; a removes it, and b applies a's Remove; rust's Update of k reaches b
          // after that. Undated, it may be older than a's removal (it is: Redis holds nothing), so
          // b only drops its copy; stored, b would serve rust's value alone for its minute.
          const k = fresh("undated")
          yield* Effect.promise(() => rust.set(`tc:${k}`, "rust's own encoding", "PX", 60_000))
          yield* a.cache.invalidate(k)
          yield* settle(a, b)
          yield* rustUpdate(k, "rust's")
          expect(yield* Effect.promise(() => rust.exists(`tc:${k}`))).toBe(0)
          expect(yield* b.l1.get(k)).toEqual(Option.none())
          expect(yield* b.cache.get(k)).toEqual(Option.none())
        })
    )

    it.scoped("a value promoted from Redis keeps Redis's remaining lifetime (PTTL) within a few ms", () =>
      Effect.gen(function* () {
        const a = yield* instance("a")
        const b = yield* instance("b")
        const look = yield* observer
        const key = fresh("lifetime")
        const setStart = Date.now()
        yield* a.cache.set(key, "v", { ttl: "2 seconds", grace: "1 second" })
        const setEnd = Date.now()
        yield* settle(a, b)
        yield* Effect.sleep("400 millis")
        const [promoteMs, got] = yield* timed(b.cache.get(key))
        expect(got).toEqual(Option.some("v")) // promoted into b's L1
        const before = Date.now()
        const pttl = yield* Effect.promise(() => look.pttl(`tc:${key}`))
        const after = Date.now()
        const promoted = Option.getOrThrow(yield* b.l1.get(key))
        // L1 ends the entry when Redis does (Redis's end is between before + pttl and
        // after + pttl): never after it, early by at most the promoting read's round trip.
        expect(promoted.staleUntil).toBeLessThanOrEqual(after + pttl + 1)
        expect(promoted.staleUntil).toBeGreaterThanOrEqual(before + pttl - promoteMs - 1)
        expect(promoted.staleUntil - promoted.expiresAt).toBe(1_000)
        // ...and Redis was told staleUntil (3 s) when the value was written.
        expect(pttl).toBeGreaterThanOrEqual(3_000 - (after - setStart) - 2)
        expect(pttl).toBeLessThanOrEqual(3_000 - (before - setEnd) + 2)
      })
    )

    it.scoped(
      "Redis killed while in use: L1 and computations answer, nothing waits past the command timeout; after restart L1 was cleared and all works",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const a = yield* instance("a")
          const b = yield* instance("b")
          const held = fresh("held")
          yield* a.cache.set(held, "kept", { ttl: "1 minute" })
          yield* settle(a, b)
          expect(yield* b.cache.get(held)).toEqual(Option.some("kept"))

          yield* server.stop
          const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
            Effect.flatMap(timed(effect), ([elapsed, result]) => {
              expect(elapsed).toBeLessThan(COMMAND_TIMEOUT_MS)
              return Effect.succeed(result)
            })
          expect(yield* bounded(a.cache.get(held))).toEqual(Option.some("kept"))
          expect(yield* bounded(b.cache.get(held))).toEqual(Option.some("kept"))
          const computedKey = fresh("computed")
          expect(yield* bounded(a.cache.getOrCompute(computedKey, Effect.succeed("fresh value")))).toBe(
            "fresh value"
          )
          expect(yield* bounded(a.cache.get(computedKey))).toEqual(Option.some("fresh value"))
          expect(yield* bounded(a.cache.get(fresh("nowhere")))).toEqual(Option.none())
          yield* bounded(Effect.either(a.cache.set(fresh("write"), 1, { ttl: "1 minute" })))
          yield* bounded(Effect.either(a.cache.invalidate(fresh("gone"))))
          expect(Object.values((yield* a.cache.stats).tierErrors).reduce((x, y) => x + y, 0)).toBeGreaterThan(
            0
          )

          yield* server.start
          // Both buses come back and say so: each instance clears its L1.
          yield* eventually(
            Effect.gen(function* () {
              const resyncs = yield* Effect.forEach([a, b], (i) => i.cache.invalidationStats)
              if (!resyncs.every((s) => s.resyncs >= 1)) return yield* Effect.fail("not yet")
            }),
            "3 seconds"
          )
          expect(yield* a.l1.get(held)).toEqual(Option.none())
          expect(yield* b.l1.get(held)).toEqual(Option.none())
          expect(yield* a.l1.get(computedKey)).toEqual(Option.none())

          // The same instances work again: writes reach Redis, invalidations reach the other.
          // (No settle here: messages published while the other instance was still
          // reconnecting, such as the changes A replays, never reach it, by design.)
          const again = fresh("again")
          yield* eventually(
            Effect.gen(function* () {
              yield* a.cache.set(again, "back", { ttl: "1 minute" })
              const viaB = yield* b.cache.get(again)
              if (Option.isNone(viaB)) return yield* Effect.fail("not yet")
            }),
            "5 seconds"
          )
          expect(yield* b.cache.get(again)).toEqual(Option.some("back"))
          yield* a.cache.invalidate(again)
          yield* within(PROPAGATION_MS, Effect.map(b.l1.get(again), Option.isNone))
        })
    )
  })
})
