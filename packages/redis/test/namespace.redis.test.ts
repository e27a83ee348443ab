import { describe, expect, layer } from "@effect/vitest"
import type { CacheError } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Either, Fiber, Layer, Option, Stream } from "effect"
import type { Redis } from "ioredis"
import { RedisConnection, RedisInvalidationBus, RedisStreams, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, redisInstance } from "./utils.js"

// Issue 12, items 1 and 2: the cache never touches keys it did not write, and caches with
// different namespaces on one Redis never act on each other's bus messages.

/** Foreign data of every type, as another part of the application would keep it. */
const seedForeign = (look: Redis) =>
  Effect.promise(async () => {
    await look.set("app:queue", "job-1")
    await look.hset("app:session:42", { user: "ada", role: "admin" })
    await look.rpush("app:list", "a", "b")
    await look.xadd("app:events", "*", "kind", "login")
    await look.sadd("app:set", "x", "y")
    // Names close to the namespace, but outside it.
    await look.set("tiercache", "bare")
    await look.set("tiercachex:1", "near")
    await look.set("other:tiercache:1", "inner")
  })

/** A dump of the foreign data: equal before and after means untouched. */
const foreign = (look: Redis) =>
  Effect.promise(async () => ({
    queue: await look.get("app:queue"),
    session: await look.hgetall("app:session:42"),
    list: await look.lrange("app:list", 0, -1),
    events: (await look.xrange("app:events", "-", "+")).map(([, fields]) => fields),
    set: (await look.smembers("app:set")).sort(),
    bare: await look.get("tiercache"),
    near: await look.get("tiercachex:1"),
    inner: await look.get("other:tiercache:1")
  }))

const keysUnder = (look: Redis, pattern: string) => Effect.promise(() => look.keys(pattern))

describe("namespaces on a shared Redis", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("with default settings, clear and every pattern invalidation leave foreign keys alone", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        yield* seedForeign(look)
        const before = yield* foreign(look)
        const { cache } = yield* redisInstance("a")
        const fill = Effect.forEach(
          ["app:queue", "app:session:42", "app:list", "app:events", "app:set", "tiercache", "user:1"],
          (key) => cache.set(key, { key }, { ttl: "1 minute", tags: ["t"] }),
          { discard: true }
        )
        const cases: ReadonlyArray<readonly [string, Effect.Effect<void, unknown>]> = [
          ["invalidatePattern *", cache.invalidatePattern("*")],
          ["invalidatePattern app:*", cache.invalidatePattern("app:*")],
          ["invalidatePattern ?", cache.invalidatePattern("app:queu?")],
          ["invalidatePattern [...]", cache.invalidatePattern("[a-z]pp:*")],
          ["invalidate (exact)", cache.invalidate("app:queue")],
          ["invalidateMany", cache.invalidateMany(["app:session:42", "app:list", "app:events", "app:set"])],
          ["invalidateTag", cache.invalidateTag("t")],
          ["clear", cache.clear]
        ]
        for (const [name, run] of cases) {
          yield* fill
          // The cache's own keys are in its namespace, tiercache: by default.
          expect((yield* keysUnder(look, "tiercache:*")).sort()).toContain("tiercache:app:queue")
          yield* run
          expect({ name, data: yield* foreign(look) }).toEqual({ name, data: before })
        }
        // Not vacuous: clear did remove the cache's own keys (the tag's record included).
        expect(yield* keysUnder(look, "tiercache:*")).toEqual([])
        expect(yield* cache.get("user:1")).toEqual(Option.none())
      })
    )

    it.scoped(
      "nested prefixes (nest: and nest:b:) are not kept apart: the outer one's keys, clear and patterns reach the inner one's",
      () =>
        Effect.gen(function* () {
          // The README's Prefix bullet: no prefix may start with another application's.
          const look = yield* observer
          const outer = yield* redisInstance("outer", { keyPrefix: "nest:" })
          const inner = yield* redisInstance("inner", { keyPrefix: "nest:b:" })
          const exists = (key: string) => Effect.promise(() => look.exists(key))
          // The outer cache's key b:k is the inner cache's k.
          yield* inner.cache.set("k", "inner's", { ttl: "1 minute" })
          expect(yield* outer.cache.get("b:k")).toEqual(Option.some("inner's"))
          // Its patterns reach the inner cache's keys.
          yield* outer.cache.invalidatePattern("b:*")
          expect(yield* exists("nest:b:k")).toBe(0)
          // Its clear (SCAN nest:*) deletes them, tag records included; the inner cache's
          // instances are not told (another bus namespace) and serve their L1 copy meanwhile.
          yield* inner.cache.set("k", "inner's", { ttl: "1 minute" })
          yield* inner.cache.invalidateTag("t")
          expect(yield* exists("nest:b:__tiercache:tag:t")).toBe(1)
          yield* outer.cache.clear
          expect(yield* exists("nest:b:k")).toBe(0)
          expect(yield* exists("nest:b:__tiercache:tag:t")).toBe(0)
          expect(yield* inner.cache.get("k")).toEqual(Option.some("inner's"))
          expect((yield* inner.bus.stats).foreignMessages).toBeGreaterThan(0)
          // The inner cache's clear stays within nest:b:.
          yield* outer.cache.set("x", "outer's", { ttl: "1 minute" })
          yield* inner.cache.clear
          expect(yield* exists("nest:x")).toBe(1)
        })
    )

    it.scoped(
      "a cache key named like a stream under the same prefix replaces the stream, and its invalidation removes it; a prefix of their own keeps them apart",
      () =>
        Effect.gen(function* () {
          // The README's Prefix bullet and RedisStreams' doc: SET replaces a key of any type.
          const look = yield* observer
          const { cache } = yield* redisInstance("a", { keyPrefix: "clash:" })
          const connection = yield* Layer.build(connectionLayer({ keyPrefix: "clash:" }))
          const streams = yield* Effect.provide(RedisStreams.make(), connection)
          const type = (key: string) => Effect.promise(() => look.type(key))
          for (const [name, write] of [
            ["set", cache.set("events", "cached", { ttl: "1 minute" })],
            ["update", cache.update("events", "cached", { ttl: "1 minute" })],
            ["getOrCompute", Effect.asVoid(cache.getOrCompute("events", Effect.succeed("cached")))]
          ] as const) {
            yield* cache.invalidate("events")
            yield* streams.publish("events", { id: "1" })
            expect([name, yield* type("clash:events")]).toEqual([name, "stream"])
            yield* write
            // (getOrCompute writes the tiers after it answers.)
            yield* eventually(
              Effect.flatMap(type("clash:events"), (t) => (t === "string" ? Effect.void : Effect.fail(t)))
            ).pipe(Effect.orElse(() => Effect.void))
            expect([name, yield* type("clash:events")]).toEqual([name, "string"])
          }
          // invalidate and invalidateMany remove the key whatever its type: the stream too.
          for (const remove of [cache.invalidate("events"), cache.invalidateMany(["events", "other"])]) {
            yield* remove
            yield* streams.publish("events", { id: "1" })
            expect(yield* type("clash:events")).toBe("stream")
            yield* remove
            expect(yield* type("clash:events")).toBe("none")
          }
          yield* cache.set("events", "cached", { ttl: "1 minute" })
          // The other way round, a publish to a stream named like a cache key fails; the value stays.
          const refused = yield* Effect.either(streams.publish("events", { id: "2" }))
          expect(Either.isLeft(refused) && refused.left._tag).toBe("StreamError")
          expect(yield* cache.get("events")).toEqual(Option.some("cached"))
          // RedisStreams with a prefix of its own (neither prefix starting with the other): both stay.
          const apart = yield* Effect.provide(RedisStreams.make({ prefix: "clash-streams:" }), connection)
          yield* apart.publish("events", { id: "3" })
          yield* cache.set("events", "cached again", { ttl: "1 minute" })
          expect(yield* type("clash-streams:events")).toBe("stream")
          expect((yield* apart.readLatest("events", 1)).map((e) => e.fields)).toEqual([[["id", "3"]]])
          expect(yield* cache.get("events")).toEqual(Option.some("cached again"))
        })
    )

    it.scoped("tag records and streams live in the namespace too", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const { cache } = yield* redisInstance("a")
        yield* cache.invalidateTag("reports")
        expect(yield* keysUnder(look, "*__tiercache:tag:reports")).toEqual([
          "tiercache:__tiercache:tag:reports"
        ])
        const connection = yield* Layer.build(connectionLayer())
        const streams = yield* Effect.provide(RedisStreams.make(), connection)
        yield* streams.publish("orders", { id: "1" })
        expect(yield* Effect.promise(() => look.type("tiercache:orders"))).toBe("stream")
        expect(yield* Effect.promise(() => look.exists("orders"))).toBe(0)
        const latest = yield* streams.readLatest("orders", 1)
        expect(latest.map((e) => e.fields)).toEqual([[["id", "1"]]])
      })
    )

    it.scoped(
      "clear and pattern invalidations leave RedisStreams' streams in the namespace (any non-string key)",
      () =>
        Effect.gen(function* () {
          // Before: RedisStreams keeps its streams under the same prefix, and the cache's SCAN took
          // every key there: cache.clear (or invalidatePattern("*"), or "o*") deleted the
          // application's event streams, consumer groups and all.
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const { cache } = yield* redisInstance("a")
          const streams = yield* Effect.provide(RedisStreams.make(), yield* Layer.build(connectionLayer()))
          yield* streams.publish("orders", { id: "1" })
          yield* streams.createGroup("orders", "billing")
          yield* Effect.promise(() => look.hset("tiercache:session:1", { user: "ada" }))
          yield* Effect.promise(() => look.rpush("tiercache:queue", "job"))
          const kept = Effect.promise(async () => ({
            orders: await look.xlen("tiercache:orders"),
            groups: await look.xinfo("GROUPS", "tiercache:orders").then(
              (groups) => (groups as Array<unknown>).length,
              () => 0
            ),
            session: await look.hgetall("tiercache:session:1"),
            queue: await look.lrange("tiercache:queue", 0, -1)
          }))
          const before = yield* kept
          expect(before).toEqual({ orders: 1, groups: 1, session: { user: "ada" }, queue: ["job"] })
          for (const [name, run] of [
            ["clear", cache.clear],
            ["invalidatePattern *", cache.invalidatePattern("*")],
            ["invalidatePattern o*", cache.invalidatePattern("o*")],
            ["invalidatePattern [oqs]*", cache.invalidatePattern("[oqs]*")]
          ] as const) {
            yield* cache.set("orders-cached", 1, { ttl: "1 minute" })
            yield* cache.set("session:2", 2, { ttl: "1 minute" })
            yield* run
            expect({ name, data: yield* kept }).toEqual({ name, data: before })
            // Not vacuous: the cache's own keys the glob covers are gone.
            expect({
              name,
              left: yield* Effect.promise(() => look.exists("tiercache:orders-cached"))
            }).toEqual({
              name,
              left: 0
            })
          }
          expect(yield* Effect.promise(() => look.exists("tiercache:session:2"))).toBe(0)
        })
    )

    it.scoped(
      "an empty prefix must be asked for (allowEmptyPrefix), on the connection and on each layer",
      () =>
        Effect.gen(function* () {
          const refused = yield* Effect.either(Layer.build(connectionLayer({ keyPrefix: "" })))
          expect(Either.isLeft(refused)).toBe(true)
          if (Either.isLeft(refused)) {
            expect(refused.left).toMatchObject({ _tag: "CacheConfigError", option: "keyPrefix" })
          }
          const tier = yield* Effect.either(Effect.provide(RedisTier.make({ prefix: "" }), connectionLayer()))
          expect(tier).toMatchObject({ _tag: "Left", left: { _tag: "CacheConfigError", option: "prefix" } })
          const streams = yield* Effect.either(
            Effect.provide(RedisStreams.make({ prefix: "" }), connectionLayer())
          )
          expect(streams).toMatchObject({
            _tag: "Left",
            left: { _tag: "CacheConfigError", option: "prefix" }
          })

          // Asked for: bare keys, and clear reaches every key of the database (documented).
          const look = yield* observer
          yield* Effect.promise(() => look.set("bare:foreign", "x"))
          const bare = yield* Effect.provide(
            RedisTier.make({ prefix: "", allowEmptyPrefix: true }),
            yield* Layer.build(connectionLayer())
          )
          const allowed = yield* Layer.build(connectionLayer({ keyPrefix: "", allowEmptyPrefix: true }))
          expect(Context.get(allowed, RedisConnection.RedisConnection).keyPrefix).toBe("")
          yield* bare.clear
          expect(yield* Effect.promise(() => look.exists("bare:foreign"))).toBe(0)
        })
    )

    it.scoped(
      "options from plain JS that are not an object, and a channel that is no name, are refused",
      () =>
        Effect.gen(function* () {
          // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
          const js = (options: unknown): any => options
          const refused = (make: Effect.Effect<unknown, unknown, RedisConnection.RedisConnection>) =>
            Effect.flip(Effect.provide(make, connectionLayer()))
          for (const options of [null, "tiercache:"]) {
            for (const make of [RedisTier.make, RedisInvalidationBus.make, RedisStreams.make]) {
              expect(yield* refused(make(js(options)))).toMatchObject({
                _tag: "CacheConfigError",
                option: "options"
              })
            }
          }
          for (const channel of ["", Symbol("c"), 42]) {
            expect(yield* refused(RedisInvalidationBus.make({ channel: js(channel) }))).toMatchObject({
              _tag: "CacheConfigError",
              option: "channel"
            })
          }
        })
    )

    it.scoped("a scanCount that is no positive integer is refused at build, not by each clear", () =>
      Effect.gen(function* () {
        // Before: NaN, Infinity or 1e30 went to SCAN as its COUNT, which Redis refused: the tier
        // built, then every clear and invalidatePattern failed (a TierError, counted against the
        // breaker, and a clear kept for a replay that failed the same way).
        // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
        const js = (options: unknown): any => options
        for (const scanCount of [Number.NaN, Number.POSITIVE_INFINITY, 1e30, 0, -1, 2.5, "100", null]) {
          const built = yield* Effect.either(
            Effect.provide(RedisTier.make(js({ scanCount })), connectionLayer())
          )
          const error = Either.isLeft(built) ? (built.left as CacheError.CacheConfigError) : undefined
          expect([scanCount, error === undefined ? "built" : [error._tag, error.option]]).toEqual([
            scanCount,
            ["CacheConfigError", "scanCount"]
          ])
        }
        const tier = yield* Effect.provide(
          RedisTier.make({ scanCount: 1 }),
          yield* Layer.build(connectionLayer())
        )
        yield* tier.clear
      })
    )

    it.scoped(
      "a channel with a lone surrogate is refused: Redis names it with U+FFFD, and no message came through",
      () =>
        Effect.gen(function* () {
          // Before: the bus subscribed to "inv\uFFFD", each message came back on that name, and
          // every one (the own echoes included) was dropped as another channel's: another
          // instance's set left this one's L1 stale until the TTL.
          for (const channel of ["inv\uD800", "\uDC00inv", "a\uDBFFb"]) {
            const built = yield* Effect.either(
              Effect.provide(RedisInvalidationBus.make({ channel }), connectionLayer())
            )
            const error = Either.isLeft(built) ? (built.left as CacheError.CacheConfigError) : undefined
            expect(error === undefined ? "built" : [error._tag, error.option]).toEqual([
              "CacheConfigError",
              "channel"
            ])
            expect(error?.message).toContain("UTF-16")
          }
          // A well-formed non-ASCII channel still works.
          const channel = "inv:日本\u{1F600}"
          const bus = yield* Effect.provide(RedisInvalidationBus.make({ channel }), connectionLayer())
          const events = yield* bus.subscribe
          const look = yield* observer
          const got = yield* Effect.fork(Stream.runHead(events))
          yield* Effect.promise(() => look.publish(channel, '{"type":"Remove","key":"k"}'))
          expect(yield* Fiber.join(got)).toMatchObject(
            Option.some({ _tag: "Message", message: { type: "Remove", key: "k" } })
          )
        })
    )

    it.scoped(
      "a prefix or namespace with a lone surrogate is refused: Redis would merge it with others",
      () =>
        Effect.gen(function* () {
          // Before: "app\uD800:" and "app\uDBFF:" both reached Redis as "app\uFFFD:": two caches
          // shared every key (one's clear removed the other's entries), while their buses, which
          // compare the namespaces as given, dropped each other's messages as foreign.
          const option = (built: Either.Either<unknown, unknown>) => {
            const error = Either.isLeft(built) ? (built.left as CacheError.CacheConfigError) : undefined
            return error === undefined
              ? "built"
              : [error._tag, error.option, error.message.includes("UTF-16")]
          }
          for (const prefix of ["app\uD800:", "app\uDBFF:", "\uDC00"]) {
            expect(option(yield* Effect.either(Layer.build(connectionLayer({ keyPrefix: prefix }))))).toEqual(
              ["CacheConfigError", "keyPrefix", true]
            )
            expect(
              option(yield* Effect.either(Effect.provide(RedisTier.make({ prefix }), connectionLayer())))
            ).toEqual(["CacheConfigError", "prefix", true])
            expect(
              option(yield* Effect.either(Effect.provide(RedisStreams.make({ prefix }), connectionLayer())))
            ).toEqual(["CacheConfigError", "prefix", true])
            expect(
              option(
                yield* Effect.either(
                  Effect.provide(RedisInvalidationBus.make({ namespace: prefix }), connectionLayer())
                )
              )
            ).toEqual(["CacheConfigError", "namespace", true])
          }
          // A well-formed non-ASCII prefix is kept apart from its neighbours.
          const look = yield* observer
          const { cache } = yield* redisInstance("a", { keyPrefix: "app\u{1F600}:" })
          yield* Effect.promise(() => look.set("app\uFFFD:k", "foreign"))
          yield* cache.set("k", 1, { ttl: "1 minute" })
          yield* cache.clear
          expect(yield* Effect.promise(() => look.get("app\uFFFD:k"))).toBe("foreign")
        })
    )

    it.scoped("prefixes app[1]: and app1: on one channel: neither acts on the other's update or clear", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const a = yield* redisInstance("a", { keyPrefix: "app[1]:" })
        const b = yield* redisInstance("b", { keyPrefix: "app1:" })
        const b2 = yield* redisInstance("b2", { keyPrefix: "app1:" })
        // Both hold "user" in L1.
        yield* a.cache.set("user", "a-value", { ttl: "1 minute" })
        yield* b.cache.set("user", "b-value", { ttl: "1 minute" })
        expect(yield* b.cache.get("user")).toEqual(Option.some("b-value"))
        expect(yield* b2.cache.get("user")).toEqual(Option.some("b-value"))

        // An update in app[1]: must not put its value into app1:'s L1.
        yield* a.cache.update("user", "from-a", { ttl: "1 minute" })
        // A clear in app[1]: must not empty app1:'s L1, nor touch its keys.
        yield* a.cache.clear
        // A message of b's own namespace, sent after those: once b has it, b has seen a's too
        // (one channel, in order).
        yield* b2.cache.update("sentinel", 1, { ttl: "1 minute" })
        yield* eventually(
          Effect.flatMap(b.l1.get("sentinel"), (found) =>
            Option.isSome(found) ? Effect.void : Effect.fail(0)
          )
        )
        expect(Option.map(yield* b.l1.get("user"), (e) => e.value)).toEqual(Option.some("b-value"))
        expect(yield* b.cache.get("user")).toEqual(Option.some("b-value"))
        expect(yield* Effect.promise(() => look.get("app1:user"))).not.toBeNull()
        expect(yield* Effect.promise(() => look.exists("app[1]:user"))).toBe(0)
        const stats = yield* b.bus.stats
        expect(stats.namespace).toBe("app1:")
        // Every message a sent (set, update, clear) was dropped by b's bus, and counted.
        expect(stats.foreignMessages).toBe((yield* a.cache.invalidationStats).messagesSent)
        expect(stats.foreignMessages).toBeGreaterThanOrEqual(3)
        // And the other way round.
        const before = (yield* a.bus.stats).foreignMessages
        yield* b.cache.clear
        yield* eventually(
          Effect.flatMap(a.bus.stats, (s) =>
            s.foreignMessages > before ? Effect.void : Effect.fail("not yet")
          )
        )
      })
    )

    it.scoped(
      "caches on two databases of one server, same prefix and channel: neither applies the other's messages",
      () =>
        Effect.gen(function* () {
          // Before: Pub/Sub ignores the database, and both buses stamped "tiercache:": an update on
          // db 0 put its value into the L1 of the cache on db 1, which served it for that key.
          const zero = yield* redisInstance("zero", { db: 0 })
          const one = yield* redisInstance("one", { db: 1 })
          const oneToo = yield* redisInstance("one-too", { db: 1 })
          yield* one.cache.set("k", "db1-value", { ttl: "1 minute" })
          yield* zero.cache.update("k", "db0-value", { ttl: "1 minute" })
          // A message of db 1's own namespace, sent after those: once it has arrived, db 0's have.
          yield* oneToo.cache.update("sentinel", 1, { ttl: "1 minute" })
          yield* eventually(
            Effect.flatMap(one.l1.get("sentinel"), (found) =>
              Option.isSome(found) ? Effect.void : Effect.fail(0)
            )
          )
          expect(yield* one.cache.get("k")).toEqual(Option.some("db1-value"))
          expect((yield* one.bus.stats).foreignMessages).toBe(
            (yield* zero.cache.invalidationStats).messagesSent
          )
          expect((yield* one.bus.stats).namespace).not.toBe((yield* zero.bus.stats).namespace)
          // A url's database counts the same.
          const server = yield* RedisServer.RedisServer
          const byUrl = yield* redisInstance("by-url", { url: `redis://${server.host}:${server.port}/1` })
          expect((yield* byUrl.bus.stats).namespace).toBe((yield* one.bus.stats).namespace)
          expect((yield* zero.bus.stats).namespace).toBe("tiercache:")
        })
    )

    it.scoped(
      "an explicit bus namespace on two databases of one server: neither applies the other's messages",
      () =>
        Effect.gen(function* () {
          // Before: the namespace option was stamped as given, without the database, so two apps
          // on db 0 and db 1 that name one namespace (as the README asks when RedisTier has a
          // prefix of its own) put each other's updates into their L1s.
          const bus = { namespace: "app:" }
          const zero = yield* redisInstance("zero", { db: 0 }, bus)
          const one = yield* redisInstance("one", { db: 1 }, bus)
          const oneToo = yield* redisInstance("one-too", { db: 1 }, bus)
          yield* one.cache.set("k", "db1-value", { ttl: "1 minute" })
          yield* one.cache.set("sentinel", 1, { ttl: "1 minute" })
          yield* zero.cache.update("k", "db0-value", { ttl: "1 minute" })
          yield* zero.cache.clear
          // A message of db 1's own namespace, sent after those: once it has arrived, db 0's have
          // (and one database's instances still hear each other).
          yield* oneToo.cache.invalidate("sentinel")
          yield* eventually(
            Effect.flatMap(one.l1.get("sentinel"), (found) =>
              Option.isNone(found) ? Effect.void : Effect.fail(0)
            )
          )
          expect(Option.map(yield* one.l1.get("k"), (e) => e.value)).toEqual(Option.some("db1-value"))
          expect((yield* one.bus.stats).foreignMessages).toBe(
            (yield* zero.cache.invalidationStats).messagesSent
          )
          expect((yield* zero.bus.stats).namespace).toBe("app:")
          expect((yield* one.bus.stats).namespace).toBe("app:@1")
        })
    )

    it.scoped(
      "prefix app: on db 1 and prefix app:@1 on db 0, one channel: neither stores the other's update",
      () =>
        Effect.gen(function* () {
          // Before: the bus namespace was `<prefix>@<db>` on db 1 and `<prefix>` on db 0, so both
          // stamped "app:@1": an update of "z" on db 0 put its value into the L1 of the cache on
          // db 1, which served it while its own Redis database held no "z".
          const one = yield* redisInstance("one", { db: 1, keyPrefix: "app:" })
          const oneToo = yield* redisInstance("one-too", { db: 1, keyPrefix: "app:" })
          const zero = yield* redisInstance("zero", { db: 0, keyPrefix: "app:@1" })
          const zeroToo = yield* redisInstance("zero-too", { db: 0, keyPrefix: "app:@1" })
          yield* zero.cache.update("z", "db0-value", { ttl: "1 minute" })
          // A message of each one's own namespace, sent after it: once it has arrived, the
          // update has (one channel, in order), and each database's instances still hear each other.
          yield* oneToo.cache.update("sentinel", 1, { ttl: "1 minute" })
          yield* zeroToo.cache.update("sentinel", 0, { ttl: "1 minute" })
          yield* eventually(
            Effect.flatMap(Effect.zip(one.l1.get("sentinel"), zero.l1.get("sentinel")), ([a, b]) =>
              Option.isSome(a) && Option.isSome(b) ? Effect.void : Effect.fail(0)
            )
          )
          expect(yield* one.l1.get("z")).toEqual(Option.none())
          expect(yield* one.cache.get("z")).toEqual(Option.none())
          expect((yield* one.bus.stats).namespace).not.toBe((yield* zero.bus.stats).namespace)
          // The other way round.
          yield* one.cache.update("y", "db1-value", { ttl: "1 minute" })
          yield* zeroToo.cache.invalidate("sentinel")
          yield* eventually(
            Effect.flatMap(zero.l1.get("sentinel"), (found) =>
              Option.isNone(found) ? Effect.void : Effect.fail(0)
            )
          )
          expect(yield* zero.cache.get("y")).toEqual(Option.none())
          // A prefix without such a tail keeps its namespace on db 0 (no change for it).
          const plain = yield* redisInstance("plain", { db: 0, keyPrefix: "app:" })
          expect((yield* plain.bus.stats).namespace).toBe("app:")
        })
    )

    it.scoped(
      "two apps wired as RedisTier.layer's example (a prefix of the tier's own, the bus's namespace alike) never store each other's updates",
      () =>
        Effect.gen(function* () {
          // Before: the example gave RedisTier `prefix: "myapp:"` and RedisInvalidationBus no
          // namespace, so the bus stamped the connection's keyPrefix ("tiercache:"): two apps
          // following it with their own prefixes on one Redis put each other's updates into their
          // L1s, and served them for keys their own prefix never held.
          const mine = yield* redisInstance("mine", {}, { namespace: "myapp:" }, { prefix: "myapp:" })
          const mineToo = yield* redisInstance("mine-too", {}, { namespace: "myapp:" }, { prefix: "myapp:" })
          const theirs = yield* redisInstance(
            "theirs",
            {},
            { namespace: "otherapp:" },
            { prefix: "otherapp:" }
          )
          yield* theirs.cache.update("k", "theirs", { ttl: "1 minute" })
          // A message of mine's own namespace, sent after it: once mine has it, it has theirs too.
          yield* mineToo.cache.update("sentinel", 1, { ttl: "1 minute" })
          yield* eventually(
            Effect.flatMap(mine.l1.get("sentinel"), (found) =>
              Option.isSome(found) ? Effect.void : Effect.fail(0)
            )
          )
          expect(yield* mine.l1.get("k")).toEqual(Option.none())
          expect(yield* mine.cache.get("k")).toEqual(Option.none())
        })
    )

    it.scoped("a message without a namespace (the Rust crate's) applies to a cache on its channel", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const { cache, l1, bus } = yield* redisInstance("a", { keyPrefix: "seed:" })
        yield* cache.set("k", "v", { ttl: "1 minute" })
        expect(Option.isSome(yield* l1.get("k"))).toBe(true)
        yield* Effect.promise(() => look.publish("cache:invalidate", '{"type":"Remove","key":"k"}'))
        yield* eventually(
          Effect.flatMap(l1.get("k"), (found) => (Option.isNone(found) ? Effect.void : Effect.fail(1)))
        )
        expect((yield* bus.stats).foreignMessages).toBe(0)
      })
    )
  })
})
