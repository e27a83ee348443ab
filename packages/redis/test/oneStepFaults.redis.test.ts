/**
 * The cache's one-step write (oneStepWrite.ts) on a real Redis, under faults and races: a
 * connection that stops answering while such writes are in flight, a breaker that opens under
 * one (the tier's and the bus's), many writers of one key on two instances, more removes in one
 * moment than one bus message holds, a small write behind a large one of its key, a tracer on
 * some calls. Each test checks that the one-step way was taken (RedisTier's setNow counted), so
 * that it tests that way and not the Effect one.
 */
import type * as net from "node:net"
import { describe, expect, layer } from "@effect/vitest"
import { Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, type Duration, Effect, Exit, Fiber, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, recordingTracer, tcpProxy } from "./utils.js"

interface InstanceOptions {
  readonly id: string
  readonly prefix: string
  readonly cache?: Omit<TieredCache.Options, "instanceId"> | undefined
  readonly connection?: RedisConnection.Options | undefined
}

/** One instance: MemoryTier over RedisTier and the Redis bus on one connection; setNow counted. */
const instance = (options: InstanceOptions) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(connectionLayer(options.connection))
    const connection = Context.get(context, RedisConnection.RedisConnection)
    const redis = yield* RedisTier.make({ prefix: options.prefix }).pipe(Effect.provide(context))
    const counts = { started: 0, declined: 0 }
    const l2: Tier.Tier.Service = {
      ...redis,
      setNow: (key, entry, done) => {
        const started = redis.setNow!(key, entry, done)
        if (started) counts.started++
        else counts.declined++
        return started
      }
    }
    const bus = yield* RedisInvalidationBus.make({ channel: `${options.prefix}invalidate` }).pipe(
      Effect.provide(context)
    )
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const cacheContext = yield* Layer.build(
      TieredCache.layer({ instanceId: options.id, ...options.cache }).pipe(
        Layer.provide(
          Layer.mergeAll(
            Layer.succeed(Tier.L1, l1),
            Layer.succeed(Tier.L2, l2),
            Layer.succeed(InvalidationBus.InvalidationBus, bus)
          )
        )
      )
    )
    return {
      cache: Context.get(cacheContext, TieredCache.TieredCache),
      l1,
      counts,
      client: connection.client as Redis
    }
  })

/** What L1 holds for `key` (its value), without going below it. */
const inL1 = (l1: Tier.Tier.Service, key: string) =>
  Effect.map(
    l1.get(key),
    Option.map((e) => e.value)
  )

/** The value Redis holds for `full`. */
const inRedis = (look: Redis, full: string) =>
  Effect.map(
    Effect.promise(() => look.get(full)),
    (raw) => (raw === null ? undefined : Entry.deserialize(raw)?.value)
  )

/** A proxy whose connections forward until `hold` is set: then nothing goes either way. */
const holdingProxy = Effect.gen(function* () {
  const state = { hold: false, sockets: [] as Array<net.Socket> }
  const port = yield* tcpProxy((client, connectUp) => {
    const up = connectUp()
    state.sockets.push(client)
    client.on("data", (b) => {
      if (!state.hold) up.write(b)
    })
    up.on("data", (b) => {
      if (!state.hold) client.write(b)
    })
  })
  return {
    port,
    hold: () => {
      state.hold = true
    },
    /** Forwards again, and cuts the connections that held (the clients connect again). */
    release: () => {
      state.hold = false
      for (const s of state.sockets.splice(0)) s.destroy()
    }
  }
})

const until = (holds: () => boolean, within: Duration.DurationInput = "5 seconds") =>
  eventually(
    Effect.filterOrFail(
      Effect.sync(holds),
      (b) => b,
      () => new Error("not yet")
    ),
    within
  )

describe("the one-step write under faults and races", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped(
      "writes in flight when the connection stops answering end within the timeout, are kept, and land once it is back",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const proxy = yield* holdingProxy
          const a = yield* instance({
            id: "a",
            prefix: "f1:",
            connection: { port: proxy.port, commandTimeout: "300 millis" },
            cache: { breaker: { failureThreshold: 1000, timeout: "1 second" } }
          })
          const b = yield* instance({ id: "b", prefix: "f1:" })
          for (let i = 0; i < 20; i++) yield* a.cache.set(`k${i}`, `old${i}`)
          for (let i = 0; i < 20; i++) expect(yield* b.cache.get(`k${i}`)).toEqual(Option.some(`old${i}`))
          const before = a.counts.started
          proxy.hold()
          const started = performance.now()
          const results = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.exit(a.cache.set(`k${i}`, `new${i}`)),
            { concurrency: "unbounded" }
          )
          const took = performance.now() - started
          expect(a.counts.started - before).toBe(20)
          // L1 took them: no set failed, and each ended within about one command timeout.
          for (const r of results) expect(Exit.isSuccess(r)).toBe(true)
          expect(took).toBeLessThan(1500)
          const stats = yield* a.cache.stats
          expect(stats.pendingChanges).toBe(20)
          for (let i = 0; i < 20; i++) expect(yield* inL1(a.l1, `k${i}`)).toEqual(Option.some(`new${i}`))
          proxy.release()
          for (let i = 0; i < 20; i++) {
            yield* eventually(
              Effect.filterOrFail(
                inRedis(look, `f1:k${i}`),
                (v) => v === `new${i}`,
                (v) => new Error(`k${i}: ${String(v)}`)
              ),
              "8 seconds"
            )
          }
          yield* eventually(
            Effect.filterOrFail(
              Effect.map(a.cache.stats, (s) => s.pendingChanges),
              (n) => n === 0,
              (n) => new Error(`pending ${n}`)
            )
          )
          // The other instance agrees (its copy was removed: the replay told it).
          for (let i = 0; i < 20; i++) {
            yield* eventually(
              Effect.filterOrFail(
                b.cache.get(`k${i}`),
                (v) => Option.isSome(v) && v.value === `new${i}`,
                (v) => new Error(`b k${i}: ${String(v)}`)
              )
            )
          }
        })
    )

    it.scoped("a failed one-step write opens the breaker; the next write is refused; a probe closes it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const proxy = yield* holdingProxy
        const a = yield* instance({
          id: "a",
          prefix: "f2:",
          connection: { port: proxy.port, commandTimeout: "200 millis" },
          cache: { breaker: { failureThreshold: 1, timeout: "1 second", openFor: "300 millis" } }
        })
        yield* a.cache.set("k", 0)
        expect(a.counts.started).toBe(1)
        // The write times out: nothing answers.
        proxy.hold()
        yield* a.cache.set("k", 1)
        expect(a.counts.started).toBe(2)
        let stats = yield* a.cache.stats
        expect(stats.breakers).toEqual({ redis: "open" })
        expect(stats.tierErrors).toEqual({ redis: 1 })
        expect(stats.pendingChanges).toBe(1)
        expect((yield* a.cache.invalidationStats).breaker).toBe("open")
        // Refused the Effect way, not started.
        yield* a.cache.set("k", 2)
        expect(a.counts.started).toBe(2)
        stats = yield* a.cache.stats
        expect(stats.breakerRejections).toBe(1)
        expect(stats.tierErrors).toEqual({ redis: 1 })
        proxy.release()
        yield* until(() => a.client.status === "ready")
        yield* Effect.sleep("400 millis")
        yield* a.cache.set("k", 3)
        stats = yield* a.cache.stats
        expect(stats.breakers).toEqual({ redis: "closed" })
        expect((yield* a.cache.invalidationStats).breaker).toBe("closed")
        expect(yield* inRedis(look, "f2:k")).toBe(3)
        // Closed again: one step.
        const before = a.counts.started
        yield* a.cache.set("k", 4)
        expect(a.counts.started).toBe(before + 1)
        expect(yield* inRedis(look, "f2:k")).toBe(4)
      })
    )

    it.scoped("64 writers of one key on each of two instances: Redis and every L1 agree once settled", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const a = yield* instance({ id: "a", prefix: "f3:" })
        const b = yield* instance({ id: "b", prefix: "f3:" })
        for (let round = 0; round < 20; round++) {
          yield* Effect.forEach(
            Array.from({ length: 128 }, (_, i) => i),
            (i) => {
              const c = i % 2 === 0 ? a : b
              return i % 3 === 0 ? c.cache.update("k", `${round}-${i}`) : c.cache.set("k", `${round}-${i}`)
            },
            { concurrency: "unbounded", discard: true }
          )
          // b's and a's reads fill their L1 from Redis.
          yield* a.cache.get("k")
          yield* b.cache.get("k")
        }
        expect(a.counts.started + b.counts.started).toBeGreaterThan(1000)
        yield* Effect.sleep("200 millis")
        const final = yield* inRedis(look, "f3:k")
        for (const c of [a, b]) {
          const got = yield* c.cache.get("k")
          expect(got).toEqual(final === undefined ? Option.none() : Option.some(final))
          const l1 = yield* inL1(c.l1, "k")
          if (Option.isSome(l1)) expect(l1.value).toBe(final)
        }
      })
    )

    it.scoped(
      "writers and removers of one key on each of two instances: Redis and every L1 agree once settled",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const a = yield* instance({ id: "a", prefix: "f10:" })
          const b = yield* instance({ id: "b", prefix: "f10:" })
          for (let round = 0; round < 20; round++) {
            // Sets and updates (one script call each), invalidations of the key alone and with
            // another (an UNLINK and its message in one script call), at once on both instances.
            yield* Effect.forEach(
              Array.from({ length: 128 }, (_, i) => i),
              (i) => {
                const c = i % 2 === 0 ? a : b
                switch (i % 5) {
                  case 0:
                    return c.cache.invalidate("k")
                  case 1:
                    return c.cache.invalidateMany(["k", "other"])
                  case 2:
                    return c.cache.update("k", `${round}-${i}`)
                  default:
                    return c.cache.set("k", `${round}-${i}`)
                }
              },
              { concurrency: "unbounded", discard: true }
            )
            yield* a.cache.get("k")
            yield* b.cache.get("k")
          }
          yield* Effect.sleep("200 millis")
          const final = yield* inRedis(look, "f10:k")
          for (const c of [a, b]) {
            const got = yield* c.cache.get("k")
            expect(got).toEqual(final === undefined ? Option.none() : Option.some(final))
            const l1 = yield* inL1(c.l1, "k")
            if (Option.isSome(l1)) expect(l1.value).toBe(final)
          }
          // The last round ended with a removal or a write on each: Redis holds one of the round's
          // values or nothing, and an invalidation is final in both L1s too.
          yield* a.cache.invalidate("k")
          yield* Effect.sleep("100 millis")
          expect(yield* inRedis(look, "f10:k")).toBeUndefined()
          for (const c of [a, b]) expect(yield* c.cache.get("k")).toEqual(Option.none())
        })
    )

    it.scoped("more one-step sets in one moment than one bus message holds: every other L1 copy goes", () =>
      Effect.gen(function* () {
        const a = yield* instance({ id: "a", prefix: "f9:" })
        const b = yield* instance({ id: "b", prefix: "f9:" })
        const keys = Array.from({ length: 600 }, (_, i) => `k${i}`)
        for (const key of keys) yield* a.cache.set(key, "old")
        for (const key of keys) expect(yield* b.cache.get(key)).toEqual(Option.some("old"))
        const before = a.counts.started
        yield* Effect.forEach(
          keys,
          (key, i) => (i % 7 === 3 ? a.cache.update(key, "new") : a.cache.set(key, "new")),
          {
            concurrency: "unbounded",
            discard: true
          }
        )
        expect(a.counts.started - before).toBe(600)
        expect((yield* a.cache.invalidationStats).publishFailures).toBe(0)
        for (const key of keys) {
          yield* eventually(
            Effect.filterOrFail(
              inL1(b.l1, key),
              (v) => Option.isNone(v) || v.value === "new",
              (v) => new Error(`${key}: ${String(v)}`)
            )
          )
          expect(yield* b.cache.get(key)).toEqual(Option.some("new"))
        }
      })
    )

    it.scoped("a small set issued while a large set of its key is in flight lands after it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const a = yield* instance({ id: "a", prefix: "f5:", connection: { largeValueBytes: 1024 } })
        // Megabytes: its transfer takes long enough for a small write sent at once to land first.
        const big = (i: number) => `${i}:${"x".repeat(4_000_000)}`
        for (let i = 0; i < 8; i++) {
          const declined = a.counts.declined
          const large = yield* Effect.fork(a.cache.set("k", big(i)))
          // The large write is under way (sent, or waiting for its marker).
          yield* Effect.yieldNow()
          yield* a.cache.set("k", `small${i}`)
          yield* Fiber.join(large)
          // Both declined the one-step way: the large value, then the write behind it.
          expect(a.counts.declined - declined).toBe(2)
          expect(yield* inRedis(look, "f5:k")).toBe(`small${i}`)
          expect(yield* inL1(a.l1, "k")).toEqual(Option.some(`small${i}`))
        }
        // Once nothing is in flight (a write's order is released a few promise steps after it
        // ended), a small set is one step again, and the key is cached again.
        yield* Effect.sleep("10 millis")
        const stats = yield* a.cache.stats
        expect([stats.tierErrors, stats.pendingChanges]).toEqual([{}, 0])
        const started = a.counts.started
        yield* a.cache.set("k", "last")
        expect(a.counts.started).toBe(started + 1)
        yield* a.cache.invalidate("k")
        expect(yield* a.cache.getOrCompute("k", Effect.succeed("c"))).toBe("c")
        yield* Effect.sleep("20 millis")
        expect(yield* inL1(a.l1, "k")).toEqual(Option.some("c"))
      })
    )

    it.scoped("a tracer on some calls: those go the Effect way, with their spans; the others one step", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const a = yield* instance({ id: "a", prefix: "f8:" })
        const { names, tracer } = yield* recordingTracer
        for (let i = 0; i < 10; i++) {
          yield* a.cache.set(`k${i}`, i)
          yield* Effect.withTracer(a.cache.set(`k${i}`, i + 100), tracer)
        }
        expect(a.counts.started).toBe(10)
        expect(names().filter((n) => n === "tiercache.bus.publish").length).toBe(10)
        for (let i = 0; i < 10; i++) {
          expect(yield* inRedis(look, `f8:k${i}`)).toBe(i + 100)
          expect(yield* inL1(a.l1, `k${i}`)).toEqual(Option.some(i + 100))
        }
      })
    )
  })
})
