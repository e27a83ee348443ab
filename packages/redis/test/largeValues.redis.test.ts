import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Either, Fiber, Layer, Option } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import {
  clientNames,
  connectionLayer,
  eventually,
  observer,
  tcpProxy,
  throttlingProxy,
  timed
} from "./utils.js"

// Issue 12, item 5: a 20 MB value is written and read back without a tier error (so without
// counting toward the breaker), and a small key read in the same tick is not held up by it.

const MB = 1024 * 1024

/**
 * One instance with default settings (command timeout 500 ms) on a connection of its own, values
 * of `largeValueBytes` or more (default 1 MB) written on the large-value connection.
 */
const instance = (instanceId: string, largeValueBytes?: number) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(
          Layer.mergeAll(Layer.succeed(Tier.L1, l1), RedisTier.layer(), RedisInvalidationBus.layer())
        ),
        Layer.provide(connectionLayer(largeValueBytes === undefined ? {} : { largeValueBytes }))
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

/**
 * An instance with its L1 at hand (MemoryTier L1, RedisTier L2, Redis bus), keys under `lo:`,
 * values of 1 KiB or more large.
 */
const instanceWithL1 = (instanceId: string) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(
          Layer.mergeAll(Layer.succeed(Tier.L1, l1), RedisTier.layer(), RedisInvalidationBus.layer())
        ),
        Layer.provide(connectionLayer({ keyPrefix: "lo:", largeValueBytes: 1024 }))
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1 }
  })

/** A RedisTier alone, keys under `lot:`, values of 1 KiB or more large. */
const tierAlone = Effect.map(
  Layer.build(
    RedisTier.layer().pipe(Layer.provide(connectionLayer({ keyPrefix: "lot:", largeValueBytes: 1024 })))
  ),
  (context) => Context.get(context, Tier.L2)
)

/** The first characters of a value: enough to tell the large one ("xxxxx") from the others. */
/** A RedisTier alone with connection options of its own, keys under `lot2:`, values of 1 KiB or more large. */
const tierWith = (options: Parameters<typeof connectionLayer>[0]) =>
  Effect.map(
    Layer.build(
      RedisTier.layer().pipe(
        Layer.provide(connectionLayer({ keyPrefix: "lot2:", largeValueBytes: 1024, ...options }))
      )
    ),
    (context) => Context.get(context, Tier.L2)
  )

const head = (value: unknown) => String(value).slice(0, 5)

const largeValue = "x".repeat(5_000)

const tierErrors = (cache: TieredCache.TieredCache.Service) =>
  Effect.map(cache.stats, (s) => Object.values(s.tierErrors).reduce((x, y) => x + y, 0))

/**
 * A TCP proxy in front of the suite's server: the first connection (the command connection,
 * opened by the layer) is forwarded at once, every later one only after `delayMs`, so that the
 * open of a connection opened on demand (the large-value connection) takes that long.
 */
const delayingProxy = (delayMs: number) =>
  Effect.suspend(() => {
    let accepted = 0
    return tcpProxy((socket, connectUp) => {
      const delay = accepted++ === 0 ? 0 : delayMs
      setTimeout(() => {
        if (socket.destroyed) return
        const up = connectUp()
        socket.pipe(up)
        up.pipe(socket)
      }, delay)
    })
  })

describe("large values", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "20 MB: set lands in Redis, another instance reads it back; a small read in the same tick goes first",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const a = yield* instance("a")
          const b = yield* instance("b")
          const big = (tag: string) => `${tag}:${"x".repeat(20 * MB)}`
          yield* a.set("big", big("one"), { ttl: "1 minute" })
          yield* a.set("big2", big("two"), { ttl: "1 minute" })
          yield* a.set("small", "s", { ttl: "1 minute" })
          expect(yield* Effect.promise(() => look.strlen("tiercache:big"))).toBeGreaterThan(20 * MB)

          // A lone read of it, from another instance.
          const read = yield* b.get("big")
          expect(Option.map(read, (v) => (v as string).slice(0, 4) + (v as string).length)).toEqual(
            Option.some(`one:${20 * MB + 4}`)
          )

          // A large and a small read in one tick: the small one is answered first, and both succeed.
          const order: Array<string> = []
          const [large, small] = yield* Effect.all(
            [
              Effect.tap(b.get("big2"), () => Effect.sync(() => order.push("big2"))),
              Effect.tap(b.get("small"), () => Effect.sync(() => order.push("small")))
            ],
            { concurrency: "unbounded" }
          )
          expect(Option.map(large, (v) => (v as string).length)).toEqual(Option.some(20 * MB + 4))
          expect(small).toEqual(Option.some("s"))
          expect(order).toEqual(["small", "big2"])

          // No tier error anywhere, so nothing counted toward a breaker.
          for (const cache of [a, b]) {
            expect(yield* tierErrors(cache)).toBe(0)
            expect((yield* cache.stats).breakers.redis).toBe("closed")
          }
        })
    )

    it.scoped(
      "a small set right after a large computed value: the set, which returned last, stays in Redis",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const a = yield* instance("a", 1024)
          const b = yield* instance("b", 1024)
          const stored: Array<string> = []
          for (let i = 0; i < 20; i++) {
            const key = `after-large:${i}`
            // The computed value is large: its write goes over the large-value connection, after
            // its marker's round trip, while the small SET of the set would go at once.
            const computed = `computed:${"x".repeat(4096)}`
            expect(yield* a.getOrCompute(key, Effect.succeed(computed))).toBe(computed)
            yield* a.set(key, "written")
            yield* Effect.sleep("20 millis")
            const raw = yield* Effect.promise(() => look.get(`tiercache:${key}`))
            stored.push(raw === null ? "nothing" : raw.slice(0, 15))
          }
          expect(stored).toEqual(Array.from({ length: 20 }, () => '{"v":"written",'))
          expect(yield* b.get("after-large:0")).toEqual(Option.some("written"))
        })
    )
    // README "A write runs to its end": afterwards every instance and tier agree. A large value
    // goes over the large-value connection after its marker's round trip; a small `set` of the
    // key called after it must not land first (L1 keeps the call order, and the instance ignores
    // its own Remove: it would serve the small value while Redis and the others had the large).
    it.scoped("concurrent sets of one key (a large one first): L1, Redis and another instance agree", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const a = yield* instanceWithL1("a")
        const b = yield* instanceWithL1("b")
        const disagreements: Array<unknown> = []
        for (let i = 0; i < 5; i++) {
          const key = `both:${i}`
          yield* Effect.all(
            [
              a.cache.set(key, largeValue, { ttl: "1 minute" }),
              a.cache.set(key, "small", { ttl: "1 minute" })
            ],
            { concurrency: "unbounded", discard: true }
          )
          const inL1 = Option.getOrNull(Option.map(yield* a.l1.get(key), (e) => head(e.value)))
          const raw = yield* Effect.promise(() => look.get(`lo:${key}`))
          const inRedis = raw === null ? null : head((JSON.parse(raw) as { v: unknown }).v)
          const atA = Option.getOrNull(Option.map(yield* a.cache.get(key), head))
          const atB = Option.getOrNull(Option.map(yield* b.cache.get(key), head))
          if (!(inL1 === inRedis && atA === atB)) disagreements.push({ i, inL1, inRedis, atA, atB })
        }
        expect(disagreements).toEqual([])
      })
    )

    // An invalidate called while a large `set` of its key is still on its way: once both have
    // returned, no tier and no instance keeps the value (the large SET must not land after the
    // UNLINK and bring it back).
    it.scoped("an invalidate right after a large set of its key: no tier nor instance keeps the value", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const a = yield* instanceWithL1("a")
        const b = yield* instanceWithL1("b")
        const kept: Array<unknown> = []
        for (let i = 0; i < 5; i++) {
          const key = `gone:${i}`
          yield* Effect.all([a.cache.set(key, largeValue, { ttl: "1 minute" }), a.cache.invalidate(key)], {
            concurrency: "unbounded",
            discard: true
          })
          const inL1 = Option.isSome(yield* a.l1.get(key))
          const inRedis = (yield* Effect.promise(() => look.exists(`lo:${key}`))) === 1
          const atA = Option.isSome(yield* a.cache.get(key))
          const atB = Option.isSome(yield* b.cache.get(key))
          if (inL1 || inRedis || atA || atB) kept.push({ i, inL1, inRedis, atA, atB })
        }
        expect(kept).toEqual([])
      })
    )

    // The same on RedisTier alone, for each way a key is written or removed while its large
    // write is in flight: what was called last is what Redis holds.
    it.scoped("RedisTier: a write or removal called during a large write of its key lands after it", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const now = Date.now()
        const large = Entry.make({ value: largeValue, now, ttlMs: 60_000 })
        const small = Entry.make({ value: "small", now, ttlMs: 60_000 })
        const after: ReadonlyArray<readonly [string, Effect.Effect<void, unknown>, string | null]> = [
          ["set", tier.set("k", small), "small"],
          ["setThen", Effect.asVoid(tier.setThen!("k", small, Effect.void)), "small"],
          [
            "setMany",
            tier.setMany([
              ["other", small],
              ["k", small]
            ]),
            "small"
          ],
          ["remove", tier.remove(["other", "k"]), null],
          ["removeMatching", Effect.asVoid(tier.removeMatching("k*")), null],
          ["clear", tier.clear, null]
        ]
        const found: Record<string, string | null> = {}
        for (const [name, then] of after) {
          yield* Effect.all([tier.set("k", large), then], { concurrency: "unbounded", discard: true })
          found[name] = Option.getOrNull(Option.map(yield* tier.get("k"), (e) => head(e.value)))
        }
        expect(found).toEqual(Object.fromEntries(after.map(([name, , expected]) => [name, expected])))
      })
    )

    // A large write whose caller is interrupted (a timeout, a race) once its SET is on its way
    // still lands: a write of its key called after the interruption must land after it.
    it.scoped("RedisTier: a write called after a large write was interrupted on its way lands after it", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const tier = yield* tierAlone
        const now = Date.now()
        const large = Entry.make({ value: "x".repeat(50 * MB), now, ttlMs: 60_000 })
        const small = Entry.make({ value: "small", now, ttlMs: 60_000 })
        const received = Effect.promise(async () =>
          Number(/total_net_input_bytes:(\d+)/.exec(await look.info("stats"))![1])
        )
        const before = yield* received
        const write = yield* Effect.fork(tier.set("cut", large))
        // Interrupted once Redis has begun to receive the SET (its 50 MB take it a while).
        while ((yield* received) - before < MB) yield* Effect.sleep("1 millis")
        yield* Fiber.interrupt(write)
        yield* tier.set("cut", small)
        yield* Effect.sleep("300 millis")
        expect(Option.map(yield* tier.get("cut"), (e) => head(e.value))).toEqual(Option.some("small"))
      })
    )

    // `Tier.setMany` stores the entries in order (as MemoryTier's setMany and MSET do): a key
    // given twice keeps its later entry, though the large one goes over another connection.
    // Recovery's conditional write (writeIfNewer) keeps the order of a key's writes too: a
    // large change goes over the large-value connection, and a remove called after it (sent at
    // once on the command connection) landed first, the replayed value then landing on the
    // empty key; the other way round, a replayed removal ran before a large set called earlier.
    it.scoped("RedisTier: writeIfNewer lands in call order with the other writes of its key", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const found: Array<string | null> = []
        for (let i = 0; i < 5; i++) {
          const key = `win-then-remove:${i}`
          const large = Entry.make({ value: largeValue, now: Date.now(), ttlMs: 60_000 })
          yield* Effect.all(
            [tier.writeIfNewer!([{ key, entry: large, at: large.createdAt }]), tier.remove([key])],
            { concurrency: "unbounded", discard: true }
          )
          found.push(Option.getOrNull(Option.map(yield* tier.get(key), (e) => head(e.value))))
        }
        for (let i = 0; i < 5; i++) {
          const key = `set-then-win:${i}`
          const large = Entry.make({ value: largeValue, now: Date.now() - 10, ttlMs: 60_000 })
          yield* Effect.all(
            [tier.set(key, large), tier.writeIfNewer!([{ key, entry: undefined, at: Date.now() }])],
            { concurrency: "unbounded", discard: true }
          )
          found.push(Option.getOrNull(Option.map(yield* tier.get(key), (e) => head(e.value))))
        }
        expect(found).toEqual(Array.from({ length: 10 }, () => null))
      })
    )

    // The large-value connection is opened on first use, by the large write that needs it; one
    // given up while the open was under way (a caller's timeout) left that connection open, never
    // stored, and the next large write opened another (openOnce.ts).
    it.scoped("large writes that give up while the large-value connection opens leave one connection", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const port = yield* delayingProxy(400)
        const context = yield* Layer.build(
          RedisTier.layer().pipe(
            Layer.provide(
              RedisConnection.layer({
                host: "127.0.0.1",
                port,
                commandTimeout: "500 millis",
                connectTimeout: "2 seconds",
                keyPrefix: "lot3:",
                largeValueBytes: 1024,
                connectionName: "bulkleak"
              })
            )
          )
        )
        const tier = Context.get(context, Tier.L2)
        const large = () => Entry.make({ value: largeValue, now: Date.now(), ttlMs: 60_000 })
        // Three writes given up after 100 ms, while the large-value connection (400 ms) opens.
        for (let i = 0; i < 3; i++) {
          const given = yield* Effect.timeout(tier.set(`gave-up:${i}`, large()), "100 millis").pipe(
            Effect.either
          )
          expect(given._tag).toBe("Left")
        }
        // Then one that waits for the connection.
        yield* tier.set("kept", large())
        const bulk = clientNames(look).pipe(
          Effect.map((names) => names.filter((name) => name === "bulkleak:bulk").length)
        )
        // Let every open under way end.
        yield* Effect.sleep("1500 millis")
        yield* eventually(Effect.filterOrFail(bulk, (n) => n >= 1))
        expect(yield* bulk).toBe(1)
      })
    )

    // A large write that fails by its client-side timeout has not "landed": the SET may still be
    // on its way to Redis (ioredis only stops waiting; the bytes keep flowing on the large-value
    // connection). keyOrder treats its failure as its landing ("A command's failure is its landing
    // too", keyOrder.ts end()), so a small set of the key called after the failure is sent at once
    // and the failed large value lands after it: the later, successful write is lost for good
    // (until the large value's TTL). Here Redis is made busy for a while (a Lua loop) once it has
    // begun to receive a 100 MB SET, so that the SET times out client-side (timeoutFor: 2 s plus
    // 1 us per MiB) while most of it is still in the socket; the small set is then sent and
    // succeeds within its own timeout. Expected: the small value (the last write, the one that
    // succeeded). Found: the large value.
    it.scoped(
      "RedisTier: a write called after a large write timed out lands after it (the timed-out SET may still land)",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const tier = yield* tierWith({ commandTimeout: "2 seconds", timeoutPerMegabyte: "1 micros" })
          const now = Date.now()
          const large = Entry.make({ value: "x".repeat(100 * MB), now, ttlMs: 60_000 })
          const small = Entry.make({ value: "small", now, ttlMs: 60_000 })
          const received = Effect.promise(async () =>
            Number(/total_net_input_bytes:(\d+)/.exec(await look.info("stats"))![1])
          )
          const before = yield* received
          const write = yield* Effect.fork(Effect.either(tier.set("timed-out", large)))
          while ((yield* received) - before < MB) yield* Effect.sleep("1 millis")
          // Redis busy for 2.5 s (no client is served meanwhile): the large SET's 2 s timeout
          // (counted from its send, shortly before) passes while most of its bytes are unread,
          // and the small set sent then is answered once Redis is free, within its own 2 s.
          const busy = Effect.promise(() =>
            look.eval(
              "local t = redis.call('TIME'); local s = t[1] * 1000 + t[2] / 1000; " +
                "while true do local n = redis.call('TIME'); if n[1] * 1000 + n[2] / 1000 - s > 2500 then break end end; return 1",
              0
            )
          )
          const busyFiber = yield* Effect.fork(busy)
          const largeResult = yield* Fiber.join(write)
          // The large write failed (timed out); the small one is called after it.
          expect(largeResult._tag).toBe("Left")
          const smallResult = yield* Effect.either(tier.set("timed-out", small))
          expect(smallResult).toEqual(Either.right(undefined))
          yield* Fiber.join(busyFiber)
          // Give the rest of the 100 MB time to arrive.
          yield* Effect.sleep("1500 millis")
          const stored = yield* Effect.promise(() => look.strlen("lot2:timed-out"))
          expect(stored).toBeLessThan(1024)
        })
    )

    // README, Circuit breaker: "A large value that answers within its own timeout is no failure",
    // though it takes longer than the cache's breaker.timeout and the command timeout.
    it.scoped("a large value slower than breaker.timeout but within its own timeout: no failure", () =>
      Effect.gen(function* () {
        // 2 MiB over a link of 3 MB/s: about 0.7 s each way, past the breaker's 600 ms and the
        // command timeout's 500 ms, well within the value's own 500 ms + 2 x 1 s.
        const port = yield* throttlingProxy(3 * 1_000_000)
        const slow = (instanceId: string) =>
          Effect.map(
            Layer.build(
              TieredCache.layer({ instanceId, breaker: { timeout: "600 millis" } }).pipe(
                Layer.provide(Layer.mergeAll(MemoryTier.layer({ maxEntries: 10 }), RedisTier.layer())),
                Layer.provide(
                  connectionLayer({
                    host: "127.0.0.1",
                    port,
                    keyPrefix: "slowlarge:",
                    timeoutPerMegabyte: "1 second"
                  })
                )
              )
            ),
            (context) => Context.get(context, TieredCache.TieredCache)
          )
        const [writer, reader] = yield* Effect.all([slow("w"), slow("r")])
        const value = `v:${"x".repeat(2 * MB)}`
        const [took] = yield* timed(writer.set("big", value, { ttl: "1 minute" }))
        expect(took).toBeGreaterThan(600)
        expect(Option.map(yield* reader.get("big"), (v) => (v as string).length)).toEqual(
          Option.some(value.length)
        )
        for (const cache of [writer, reader]) {
          expect(yield* tierErrors(cache)).toBe(0)
          expect((yield* cache.stats).breakers.redis).toBe("closed")
        }
      })
    )

    it.scoped("RedisTier.setMany with one key twice (large, then small) keeps the later entry", () =>
      Effect.gen(function* () {
        const tier = yield* tierAlone
        const now = Date.now()
        const large = Entry.make({ value: largeValue, now, ttlMs: 60_000 })
        const small = Entry.make({ value: "small", now, ttlMs: 60_000 })
        yield* tier.setMany([
          ["dup", large],
          ["dup", small]
        ])
        expect(Option.map(yield* tier.get("dup"), (e) => head(e.value))).toEqual(Option.some("small"))
      })
    )
  })
})
