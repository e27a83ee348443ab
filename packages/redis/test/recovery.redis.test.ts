import { performance } from "node:perf_hooks"
import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Duration, Effect, Fiber, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import { clientNames, connectionLayer, eventually, observer } from "./utils.js"

// Issue 12, item 4: a change reported as successful during a Redis outage is neither lost nor
// undone. Redis is killed for 3 s and started again on the same port (once empty, once with
// its data kept by AOF); instance A invalidates 25 keys and updates 25 meanwhile while B reads.
// Within 1 s of A's connection being ready again, A and B both answer the new state for all
// 50 keys, and no breaker opens after recovery.

const KEYS = 50
const OUTAGE = Duration.seconds(3)
const WITHIN_MS = 1000

const instance = (instanceId: string) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provideMerge(
          Layer.mergeAll(Layer.succeed(Tier.L1, l1), RedisTier.layer(), RedisInvalidationBus.layer())
        ),
        Layer.provideMerge(connectionLayer({ reconnectMaxDelay: "100 millis" }))
      )
    )
    return {
      cache: Context.get(context, TieredCache.TieredCache),
      client: Context.get(context, RedisConnection.RedisConnection).client
    }
  })

/** Resolves when `client` next reports ready (its reconnection after the outage). */
const nextReady = (client: Redis) =>
  Effect.async<number>((resume) => {
    const onReady = () => resume(Effect.succeed(performance.now()))
    client.once("ready", onReady)
    return Effect.sync(() => client.off("ready", onReady))
  })

const key = (i: number) => `k${i}`
/** The state every instance must answer after recovery: misses for 0..24, "new" for 25..49. */
const expected = (i: number) => (i < KEYS / 2 ? Option.none() : Option.some(`new-${i}`))

const scenario = (label: string) =>
  Effect.gen(function* () {
    const server = yield* RedisServer.RedisServer
    const look = yield* observer
    yield* Effect.promise(() => look.flushall())
    const a = yield* instance("a")
    const b = yield* instance("b")
    for (let i = 0; i < KEYS; i++) yield* a.cache.set(key(i), `old-${i}`, { ttl: "1 hour" })
    // Both hold every key in L1.
    for (const c of [a, b]) for (let i = 0; i < KEYS; i++) yield* c.cache.get(key(i))

    yield* server.stop
    const readyAgain = yield* Effect.fork(nextReady(a.client))
    // During the outage: A's changes succeed (in L1), B keeps reading.
    let reading = true
    const reader = yield* Effect.fork(
      Effect.gen(function* () {
        while (reading) {
          for (let i = 0; i < KEYS; i++) yield* Effect.ignore(b.cache.get(key(i)))
          yield* Effect.sleep("20 millis")
        }
      })
    )
    for (let i = 0; i < KEYS / 2; i++) yield* a.cache.invalidate(key(i))
    for (let i = KEYS / 2; i < KEYS; i++) yield* a.cache.update(key(i), `new-${i}`, { ttl: "1 hour" })
    yield* Effect.sleep(OUTAGE)
    yield* server.start
    const readyAt = yield* readyAgain.await.pipe(Effect.flatten)
    reading = false
    yield* Fiber.interrupt(reader)
    // From here on no breaker may open: sample every 10 ms until the end. A's breakers opened
    // during the outage (its writes failed) and may still be open at the first sample, until the
    // probe the ready signal allows; what must not happen is a breaker going from closed (or
    // half-open) to open, nor one still open at the end.
    const opened: Array<string> = []
    const last = new Map<string, string | undefined>()
    const sample = Effect.gen(function* () {
      for (const [name, c] of [
        ["a", a],
        ["b", b]
      ] as const) {
        const s = yield* c.cache.stats
        const bus = yield* c.cache.invalidationStats
        for (const [which, state] of [
          [`${name}: tier`, s.breakers.redis],
          [`${name}: bus`, bus.breaker]
        ] as const) {
          if (state === "open" && last.has(which) && last.get(which) !== "open") opened.push(which)
          last.set(which, state)
        }
      }
    })
    const sampler = yield* Effect.fork(Effect.forever(Effect.zipRight(sample, Effect.sleep("10 millis"))))

    // Within WITHIN_MS of A's connection being ready, both answer the new state for every key.
    let worst = 0
    for (const c of [a, b]) {
      for (let i = 0; i < KEYS; i++) {
        yield* eventually(
          Effect.flatMap(c.cache.get(key(i)), (found) =>
            Option.getEquivalence((x: unknown, y: unknown) => x === y)(found, expected(i))
              ? Effect.void
              : Effect.fail(found)
          ),
          Duration.millis(WITHIN_MS + 500)
        )
        worst = Math.max(worst, performance.now() - readyAt)
      }
    }
    // biome-ignore lint/suspicious/noConsole: the issue asks for the worst delay to be printed
    console.log(`${label}: worst delay after A's connection was ready: ${worst.toFixed(0)} ms`)
    yield* Fiber.interrupt(sampler)
    yield* sample
    expect(worst).toBeLessThan(WITHIN_MS)
    expect(opened).toEqual([])
    // Every breaker is closed again, and nothing is left to replay.
    expect([...last.values()].every((state) => state === "closed")).toBe(true)
    expect((yield* a.cache.stats).pendingChanges).toBe(0)
    expect((yield* a.cache.stats).replayedChanges).toBeGreaterThanOrEqual(KEYS)
  })

/**
 * The subscriber reconnects long before the command connection (whose reconnection is held back
 * here to 1.5 s): the bus's Reconnected, and so the resync that empties L1, must wait for the
 * command connection, or the reads it sends to Redis fail and open the tier's breaker.
 */
const subscriberFirst = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const look = yield* observer
  yield* Effect.promise(() => look.flushall())
  const b = yield* instance("b")
  for (let i = 0; i < KEYS; i++) yield* b.cache.set(key(i), `v-${i}`, { ttl: "1 hour" })
  for (let i = 0; i < KEYS; i++) yield* b.cache.get(key(i))
  yield* server.stop
  const retry = b.client.options.retryStrategy
  b.client.options.retryStrategy = () => 1500
  yield* Effect.sleep("500 millis")
  yield* server.start
  const states = new Set<string>()
  const until = performance.now() + 3000
  while (performance.now() < until) {
    // Every key in L1 until the resync; misses in an empty Redis afterwards.
    for (let i = 0; i < KEYS; i++) yield* b.cache.get(key(i))
    states.add((yield* b.cache.stats).breakers.redis!)
    yield* Effect.sleep("10 millis")
  }
  b.client.options.retryStrategy = retry
  expect(b.client.status).toBe("ready")
  expect((yield* b.cache.invalidationStats).resyncs).toBe(1)
  expect([...states]).toEqual(["closed"])
  expect((yield* b.cache.stats).tierErrors).toEqual({})
})

/** RedisTier's conditional write: the stored entry's createdAt decides, in one script per key. */
const conditionalWrite = Effect.gen(function* () {
  const look = yield* observer
  yield* Effect.promise(() => look.flushall())
  // Values of 1 KiB or more travel on the large-value connection: some changes below do.
  const context = yield* Layer.build(
    RedisTier.layer().pipe(Layer.provide(connectionLayer({ largeValueBytes: 1024 })))
  )
  const tier = Context.get(context, Tier.L2)
  const now = Date.now()
  const at = (value: string, createdAt: number) =>
    Entry.make({ value, now: createdAt, ttlMs: 3_600_000 + (now - createdAt) })
  yield* tier.set("k", at("stored", now))
  yield* tier.set("j", at("stored", now))
  yield* Effect.promise(() => look.set("tiercache:foreign", "not an entry"))
  const applied = yield* tier.writeIfNewer!([
    { key: "k", entry: at("older", now - 1), at: now - 1 },
    { key: "j", entry: undefined, at: now - 1 },
    { key: "foreign", entry: at("mine", now - 5), at: now - 5 },
    { key: "absent", entry: at("new", now), at: now }
  ])
  expect(applied).toEqual([false, false, true, true])
  expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some("stored"))
  expect(Option.isSome(yield* tier.get("j"))).toBe(true)
  expect(Option.map(yield* tier.get("foreign"), (e) => e.value)).toEqual(Option.some("mine"))
  expect(Option.map(yield* tier.get("absent"), (e) => e.value)).toEqual(Option.some("new"))
  // Same time or later: applied (a removal and a write).
  expect(
    yield* tier.writeIfNewer!([
      { key: "j", entry: undefined, at: now },
      { key: "k", entry: at("newer", now + 1), at: now + 1 }
    ])
  ).toEqual([true, true])
  expect(yield* tier.get("j")).toEqual(Option.none())
  expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some("newer"))
  const pttl = yield* Effect.promise(() => look.pttl("tiercache:k"))
  expect(pttl).toBeGreaterThan(3_500_000)
  // Large values: the same guard, on their own connection, answers in order.
  const big = (tag: string) => tag.repeat(4096)
  yield* Effect.promise(() => look.set("tiercache:big", Entry.serialize(at(big("s"), now)), "PX", 3_600_000))
  expect(yield* clientNames(look)).not.toContain("tiercache:bulk")
  expect(yield* Effect.promise(() => look.exists("tiercache:__tiercache:large"))).toBe(0)
  expect(
    yield* tier.writeIfNewer!([
      { key: "small", entry: at("s", now), at: now },
      { key: "big", entry: at(big("o"), now - 1), at: now - 1 },
      { key: "big2", entry: at(big("n"), now), at: now },
      { key: "small2", entry: at("t", now - 1), at: now - 1 }
    ])
  ).toEqual([true, false, true, true])
  expect(yield* clientNames(look)).toContain("tiercache:bulk")
  // The large-value marker was set to outlive the large value written (see RedisTier.test.ts).
  expect(yield* Effect.promise(() => look.pttl("tiercache:__tiercache:large"))).toBeGreaterThan(3_600_000)
  expect(Option.map(yield* tier.get("big"), (e) => e.value)).toEqual(Option.some(big("s")))
  expect(Option.map(yield* tier.get("big2"), (e) => e.value)).toEqual(Option.some(big("n")))
  expect(yield* tier.writeIfNewer!([{ key: "big", entry: at(big("m"), now + 1), at: now + 1 }])).toEqual([
    true
  ])
  expect(Option.map(yield* tier.get("big"), (e) => e.value)).toEqual(Option.some(big("m")))
})

describe("changes made during a Redis outage are neither lost nor undone", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })(
    "without persistence",
    (it) => {
      it.scoped("A invalidates 25 and updates 25 during a 3 s outage; A and B answer the new state", () =>
        scenario("without persistence")
      )
      it.scoped(
        "the subscriber reconnects first: the resync waits for the command connection",
        () => subscriberFirst
      )
      it.scoped("RedisTier.writeIfNewer never replaces a newer entry", () => conditionalWrite)
    }
  )
  layer(RedisServer.layer({ appendonly: true }), { excludeTestServices: true, timeout: "60 seconds" })(
    "with AOF (Redis comes back with the old values)",
    (it) => {
      it.scoped("A invalidates 25 and updates 25 during a 3 s outage; A and B answer the new state", () =>
        scenario("with AOF")
      )
    }
  )
})
