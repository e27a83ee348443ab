/**
 * Tags end to end, on one Redis shared by several instances (the README's layers, each instance
 * on a connection of its own).
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

/**
 * One instance (a process) with the README's layers on a connection of its own: RedisTier as L2
 * (wrapped in ChaosTier when `chaos`, to slow its writes as a slow network would) and
 * RedisInvalidationBus.
 */
const instance = (
  instanceId: string,
  options: { readonly chaos?: boolean; readonly scanCount?: number } = {}
) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const connection = yield* Layer.build(connectionLayer())
    const redis = yield* RedisTier.make(
      options.scanCount === undefined ? {} : { scanCount: options.scanCount }
    ).pipe(
      Effect.provideService(
        RedisConnection.RedisConnection,
        Context.get(connection, RedisConnection.RedisConnection)
      )
    )
    const chaos = yield* ChaosTier.wrap(redis)
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(
          Layer.mergeAll(
            Layer.succeed(Tier.L1, l1),
            Layer.succeed(Tier.L2, options.chaos === true ? chaos : redis),
            RedisInvalidationBus.layer().pipe(Layer.provide(Layer.succeedContext(connection)))
          )
        )
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), chaos }
  })

describe("tags on Redis with several instances", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    // README, Tags: "invalidateTag("user:1") makes every entry carrying the tag a miss, in every
    // tier and on every instance"; Semantics/Tags: the tag's time is stored under
    // `__tiercache:tag:<tag>` and "an entry carrying the tag and created at or before that time
    // is a miss everywhere". Two invalidations of one tag on two instances overlap: A's (earlier
    // time, its Redis write slower) and B's (later time). B set k before its invalidateTag, so
    // once both have returned k must be a miss everywhere, including on an instance started
    // afterwards (a restarted process), which reads the tag's time from Redis.
    // Expected: the stored time is the latest of the two (B's), so the new instance misses.
    it.scoped("a slower, earlier invalidateTag does not roll the tag's time in Redis back", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const a = yield* instance("a", { chaos: true })
        const b = yield* instance("b")
        yield* a.chaos.delay("set", "300 millis")
        const first = yield* Effect.fork(a.cache.invalidateTag("t"))
        yield* Effect.sleep("50 millis")
        yield* b.cache.set("k", "v1", { ttl: "1 minute", tags: ["t"] })
        yield* Effect.sleep("5 millis")
        yield* b.cache.invalidateTag("t")
        expect(yield* b.cache.get("k")).toEqual(Option.none())
        yield* Fiber.join(first)
        // Every message delivered; A knows B's later time too.
        yield* eventually(
          Effect.flatMap(a.cache.invalidationStats, (s) =>
            s.messagesReceived >= 1 ? Effect.void : Effect.fail(s)
          )
        )
        expect(yield* a.cache.get("k")).toEqual(Option.none())
        // A process started now reads the tag's time from Redis.
        const c = yield* instance("c")
        expect(yield* c.cache.get("k")).toEqual(Option.none())
      })
    )

    // README, Semantics: "(options) may change between calls" is what callOptions.ts itself
    // supports (it re-resolves an options object whose `tags` array changed), and README/Tags:
    // invalidateTag "makes every entry carrying the tag a miss, in every tier and on every
    // instance". A plain loop reuses one options object, changing its tags array for the next
    // product. The entry written for p1 carried "cat:books" (Redis says so), so after B's
    // invalidateTag("cat:books") p1 must be a miss on A too.
    // Expected: A's L1 copy keeps the tags it was written with, and A misses like B.
    it.scoped("an entry's tags in L1 do not change when the caller reuses its tags array", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const a = yield* instance("a")
        const b = yield* instance("b")
        const options = { ttl: "1 minute" as const, tags: ["cat:books"] }
        yield* a.cache.getOrCompute("p1", Effect.succeed("a book"), options)
        options.tags[0] = "cat:games"
        yield* a.cache.getOrCompute("p2", Effect.succeed("a game"), options)
        // Redis holds p1 with the tag it was written with.
        yield* eventually(
          Effect.flatMap(
            Effect.promise(() => look.get("tiercache:p1")),
            (raw) => (raw?.includes("cat:books") ? Effect.void : Effect.fail(raw))
          )
        )
        const received = (yield* a.cache.invalidationStats).messagesReceived
        yield* b.cache.invalidateTag("cat:books")
        yield* eventually(
          Effect.flatMap(a.cache.invalidationStats, (s) =>
            s.messagesReceived > received ? Effect.void : Effect.fail(s)
          )
        )
        expect(yield* b.cache.get("p1")).toEqual(Option.none())
        expect(yield* a.cache.get("p1")).toEqual(Option.none())
      })
    )

    // README, Tags: an entry carrying a tag invalidated at or after its creation "is a miss
    // everywhere"; `clear` removes the tags' records with everything else. A clear removes keys
    // SCAN step by SCAN step: the tag's record went in whichever step SCAN met it, and until the
    // step that removed the last of its entries, an instance reading the tag's time afresh (one
    // that had not met the tag; the clearing one too, which forgets its tag times first) found
    // none, took the tag as never invalidated, and answered the entries invalidateTag had refused.
    // Expected: the record goes once the entries it refuses are gone, so none is answered.
    it.scoped("a clear removes a tag's record only after the entries it refuses", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const a = yield* instance("a", { scanCount: 20 })
        const keys = Array.from({ length: 1000 }, (_, i) => `k${i}`)
        yield* Effect.forEach(keys, (key) => a.cache.set(key, key, { ttl: "1 minute", tags: ["t"] }), {
          concurrency: 50,
          discard: true
        })
        yield* a.cache.invalidateTag("t")
        expect((yield* a.cache.getMany(keys)).filter(Option.isSome)).toEqual([])
        // An instance that has not met the tag yet (a process started after the invalidation).
        const b = yield* instance("b")
        const clearing = yield* Effect.fork(a.cache.clear)
        // The moment the record is gone (or the clear has ended): the entries still there must
        // be refused by both.
        const record = "tiercache:__tiercache:tag:t"
        while (clearing.unsafePoll() === null && (yield* Effect.promise(() => look.exists(record))) === 1) {
          yield* Effect.yieldNow()
        }
        const left = yield* Effect.promise(() => look.dbsize())
        const answered = [...(yield* b.cache.getMany(keys)), ...(yield* a.cache.getMany(keys))]
        expect({ answered: answered.filter(Option.isSome).length }).toEqual({ answered: 0 })
        yield* Fiber.join(clearing)
        // Not vacuous: the clear removed the record, and the entries.
        expect(yield* Effect.promise(() => look.keys("tiercache:*"))).toEqual([])
        expect(left).toBeLessThanOrEqual(1)
      })
    )

    // README, Tags: the tag's time is stored under `__tiercache:tag:<tag>`, "kept `tagRetention`,
    // default 7 days": the record's lifetime in Redis is what keeps the tag's entries refused.
    it.scoped("a tag's record lives tagRetention in Redis (7 days by default)", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const a = yield* instance("a")
        yield* a.cache.invalidateTag("kept")
        const pttl = yield* Effect.promise(() => look.pttl("tiercache:__tiercache:tag:kept"))
        const week = 7 * 24 * 3_600_000
        expect(pttl).toBeLessThanOrEqual(week)
        expect(pttl).toBeGreaterThan(week - 10_000)
      })
    )

    // README, Tags: "`invalidatePattern` never removes them [keys under `__tiercache:`], whatever
    // the glob". A tag's record removed by a pattern would let an instance that has not met the
    // tag (a process started afterwards) answer the entries the invalidation refused.
    it.scoped("no pattern removes a tag's record: an instance started afterwards still misses", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const a = yield* instance("a")
        yield* a.cache.set("dashboard", "old", { ttl: "1 minute", tags: ["user:1"] })
        yield* Effect.sleep("2 millis")
        yield* a.cache.invalidateTag("user:1")
        const record = "tiercache:__tiercache:tag:user:1"
        const entry = yield* Effect.promise(() => look.getBuffer("tiercache:dashboard"))
        const globs = [
          "*",
          "__tiercache:*",
          "__tiercache:tag:*",
          "?_tiercache:*",
          "[_]_tiercache*",
          "\\_\\_tiercache:*",
          "*user:1"
        ]
        for (const glob of globs) {
          yield* a.cache.invalidatePattern(glob)
          expect({ glob, record: yield* Effect.promise(() => look.exists(record)) }).toEqual({
            glob,
            record: 1
          })
        }
        // The entry is in Redis again (a replica, an old instance's late write): refused by its tag.
        yield* Effect.promise(() => look.set("tiercache:dashboard", entry!, "PX", 60_000))
        expect(yield* (yield* instance("b")).cache.get("dashboard")).toEqual(Option.none())
        expect(yield* (yield* instance("c")).cache.getMany(["dashboard"])).toEqual([Option.none()])
      })
    )

    // DESIGN.md, Wire formats: "Messages are decoded with Schema; malformed ones are counted and
    // skipped"; InvalidationMessage.RemoveTag: `at` is "When the tag was invalidated (epoch ms)".
    // A RemoveTag whose `at` is 1e400 (JSON for a number no epoch can be: it parses as Infinity)
    // counts as its arrival: it must not become the tag's time for good (every entry carrying the tag refused, its own invalidateTag unable to lower
    // it, until a clear or a bus reconnect), so a value set afterwards with the tag is cached.
    it.scoped("a RemoveTag whose time is not finite counts from its arrival, not forever", () =>
      Effect.gen(function* () {
        const look = yield* observer
        yield* Effect.promise(() => look.flushall())
        const b = yield* instance("b")
        // Infinity (a time an hour ahead: tags.test.ts, on the TestClock).
        for (const [tag, at] of [["t", "1e400"]]) {
          const before = (yield* b.cache.invalidationStats).messagesApplied
          yield* Effect.promise(() =>
            look.publish("cache:invalidate", `{"type":"RemoveTag","tag":"${tag}","at":${at},"origin":"x"}`)
          )
          yield* eventually(
            Effect.flatMap(b.cache.invalidationStats, (s) =>
              s.messagesApplied > before ? Effect.void : Effect.fail(s)
            )
          )
        }
        // Past the millisecond of the arrivals (an entry created at a tag's time is a miss).
        yield* Effect.sleep("5 millis")
        yield* b.cache.set("k", "v1", { ttl: "1 minute", tags: ["t"] })
        expect(yield* b.cache.get("k")).toEqual(Option.some("v1"))
      })
    )
  })
})
