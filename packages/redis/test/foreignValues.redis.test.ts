import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Metric, Option } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

// DESIGN, Wire formats: a Redis value that does not decode is a miss, counted, and overwritten
// on compute. README, Observability: tiercache_tier_foreign_values_total{tier} counts each read
// of a value under the tier's prefix that is no cache entry (RedisTier.foreignValues).

/** What `RedisTier.foreignValues` counted for the tier named `tier`. */
const counted = (tier: string) =>
  Effect.map(Metric.value(Metric.tagged(RedisTier.foreignValues, "tier", tier)), (state) => state.count)

/** A tier named `name` on `prefix`, on a connection of its own. */
const tierOn = (name: string, prefix: string, largeValueBytes?: number) =>
  Effect.flatMap(
    Layer.build(connectionLayer(largeValueBytes === undefined ? {} : { largeValueBytes })),
    (context) => Effect.provide(RedisTier.make({ name, prefix }), context)
  )

/** A cache (its own L1) over a tier named `name` on `prefix`, on a connection of its own. */
const cacheOn = (name: string, prefix: string) =>
  Effect.map(
    Layer.build(
      TieredCache.layer().pipe(
        Layer.provide(Layer.merge(MemoryTier.layer({ maxEntries: 100 }), RedisTier.layer({ name, prefix }))),
        Layer.provide(connectionLayer())
      )
    ),
    (context) => Context.get(context, TieredCache.TieredCache)
  )

/** Writes what is no entry under `prefix`: foreign JSON, a plain string, a hash and a list. */
const writeForeign = (prefix: string) =>
  Effect.flatMap(observer, (look) =>
    Effect.promise(() =>
      Promise.all([
        look.set(`${prefix}json`, JSON.stringify({ user: "ada" })),
        look.set(`${prefix}text`, "plain text"),
        look.hset(`${prefix}hash`, "field", "value"),
        look.rpush(`${prefix}list`, "a")
      ])
    )
  )
const FOREIGN = ["json", "text", "hash", "list"]

const entry = (value: unknown) => Entry.make({ value, now: Date.now(), ttlMs: 60_000, graceMs: 0, tags: [] })

describe("foreign values under the prefix", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped(
      "a lone get counts each foreign value it reads (WRONGTYPE included); entries and misses do not",
      () =>
        Effect.gen(function* () {
          const tier = yield* tierOn("fv-get", "fv-get:")
          yield* writeForeign("fv-get:")
          yield* tier.set("good", entry(1))
          expect(Option.isSome(yield* tier.get("good"))).toBe(true)
          expect(yield* tier.get("missing")).toEqual(Option.none())
          expect(yield* counted("fv-get")).toBe(0)
          for (const key of FOREIGN) expect(yield* tier.get(key)).toEqual(Option.none())
          expect(yield* counted("fv-get")).toBe(4)
          // Read again: counted again (a read each).
          expect(yield* tier.get("hash")).toEqual(Option.none())
          expect(yield* counted("fv-get")).toBe(5)
        })
    )

    it.scoped("getMany and the reads of one tick: one count per foreign key, good keys still answered", () =>
      Effect.gen(function* () {
        const tier = yield* tierOn("fv-many", "fv-many:")
        yield* writeForeign("fv-many:")
        yield* tier.setMany([
          ["a", entry("A")],
          ["b", entry("B")]
        ])
        const keys = ["a", "json", "missing", "hash", "b", "text", "list"]
        const many = yield* tier.getMany(keys)
        expect(many.map(Option.map((e) => e.value))).toEqual([
          Option.some("A"),
          Option.none(),
          Option.none(),
          Option.none(),
          Option.some("B"),
          Option.none(),
          Option.none()
        ])
        expect(yield* counted("fv-many")).toBe(4)
        // The same keys read at once: one script call for the tick's reads.
        const got = yield* Effect.all(
          keys.map((key) => tier.get(key)),
          { concurrency: "unbounded" }
        )
        expect(got.map(Option.isSome)).toEqual([true, false, false, false, true, false, false])
        expect(yield* counted("fv-many")).toBe(8)
        // With the large-value marker set, the script reads by GETRANGE: the same counts.
        const look = yield* observer
        yield* Effect.promise(() => look.set("fv-many:__tiercache:large", "1", "PX", 60_000))
        expect((yield* tier.getMany(keys)).map(Option.isSome)).toEqual([
          true,
          false,
          false,
          false,
          true,
          false,
          false
        ])
        expect(yield* counted("fv-many")).toBe(12)
      })
    )

    // An empty string is a plain string, no entry (Entry.serialize never writes one). GETRANGE
    // answers "" for a missing key too: the reads tell the two apart by the key's PTTL.
    it.scoped("an empty string counts as a foreign value on every read path; a missing key does not", () =>
      Effect.gen(function* () {
        const tier = yield* tierOn("fv-blank", "fv-blank:")
        const look = yield* observer
        yield* Effect.promise(() => look.set("fv-blank:blank", ""))
        yield* Effect.promise(() => look.set("fv-blank:blank2", "", "PX", 60_000))
        yield* tier.set("good", entry("G"))
        // A lone read.
        expect(yield* tier.get("blank")).toEqual(Option.none())
        expect(yield* tier.get("missing")).toEqual(Option.none())
        expect(yield* counted("fv-blank")).toBe(1)
        const keys = ["good", "blank", "missing", "blank2"]
        const expected = [true, false, false, false]
        // The reads of one tick: one script call (MGET path).
        const got = yield* Effect.all(
          keys.map((key) => tier.get(key)),
          { concurrency: "unbounded" }
        )
        expect(got.map(Option.isSome)).toEqual(expected)
        expect(yield* counted("fv-blank")).toBe(3)
        expect((yield* tier.getMany(keys)).map(Option.isSome)).toEqual(expected)
        expect(yield* counted("fv-blank")).toBe(5)
        // With the large-value marker set, the script reads by GETRANGE: the same counts.
        yield* Effect.promise(() => look.set("fv-blank:__tiercache:large", "1", "PX", 60_000))
        expect((yield* tier.getMany(keys)).map(Option.isSome)).toEqual(expected)
        expect(yield* counted("fv-blank")).toBe(7)
        // Replaced by a write: an entry, uncounted.
        yield* tier.set("blank", entry("B"))
        expect(Option.map(yield* tier.get("blank"), (e) => e.value)).toEqual(Option.some("B"))
        expect(yield* counted("fv-blank")).toBe(7)
      })
    )

    it.scoped("a large foreign value (read on the large-value connection) counts once per read", () =>
      Effect.gen(function* () {
        const tier = yield* tierOn("fv-large", "fv-large:", 1024)
        const look = yield* observer
        yield* Effect.promise(() => look.set("fv-large:big", "x".repeat(4096)))
        yield* tier.set("fine", entry("y".repeat(4096)))
        expect(yield* tier.get("big")).toEqual(Option.none())
        expect(yield* counted("fv-large")).toBe(1)
        const many = yield* tier.getMany(["fine", "big"])
        expect(many.map(Option.isSome)).toEqual([true, false])
        expect(yield* counted("fv-large")).toBe(2)
      })
    )

    // KeyValueStoreTier counts the value its writeIfNewer reads before it overwrites it (the
    // docs: each read that meets one); RedisTier's script read the stored entry's time and
    // replaced a foreign value without a count.
    it.scoped(
      "writeIfNewer counts each foreign value it meets (and replaces); entries and misses do not",
      () =>
        Effect.gen(function* () {
          const tier = yield* tierOn("fv-cond", "fv-cond:", 1024)
          yield* writeForeign("fv-cond:")
          const look = yield* observer
          yield* Effect.promise(() => look.set("fv-cond:big", "x".repeat(4096)))
          const now = Date.now()
          yield* tier.set("newer", Entry.make({ value: "kept", now: now + 10_000, ttlMs: 60_000 }))
          yield* tier.set("older", Entry.make({ value: "old", now: now - 10_000, ttlMs: 60_000 }))
          const applied = yield* tier.writeIfNewer!([
            ...FOREIGN.map((key) => ({ key, entry: entry(key), at: now })),
            { key: "newer", entry: entry("lost"), at: now },
            { key: "older", entry: entry("new"), at: now },
            { key: "missing", entry: entry("new"), at: now },
            { key: "gone", entry: undefined, at: now },
            // A large change travels alone, on the large-value connection: counted the same.
            { key: "big", entry: entry("y".repeat(4096)), at: now }
          ])
          expect(applied).toEqual([true, true, true, true, false, true, true, true, true])
          expect(yield* counted("fv-cond")).toBe(5)
          // Replaced by entries: read as entries, uncounted.
          const read = yield* tier.getMany([...FOREIGN, "big"])
          expect(read.map(Option.isSome)).toEqual([true, true, true, true, true])
          expect(yield* counted("fv-cond")).toBe(5)
          // A foreign removal target is counted too, and removed.
          yield* Effect.promise(() => look.set("fv-cond:text", "plain again"))
          expect(yield* tier.writeIfNewer!([{ key: "text", entry: undefined, at: Date.now() }])).toEqual([
            true
          ])
          expect(yield* counted("fv-cond")).toBe(6)
          expect(yield* Effect.promise(() => look.exists("fv-cond:text"))).toBe(0)
        })
    )

    // The script tells an empty value from a missing key by an EXISTS (GETRANGE answers "" for
    // both): an empty string is a plain string, no entry, and counted when replaced.
    it.scoped("writeIfNewer counts an empty string it replaces, not a missing key", () =>
      Effect.gen(function* () {
        const tier = yield* tierOn("fv-empty", "fv-empty:")
        const look = yield* observer
        yield* Effect.promise(() => look.set("fv-empty:blank", ""))
        const now = Date.now()
        const applied = yield* tier.writeIfNewer!([
          { key: "blank", entry: entry("filled"), at: now },
          { key: "missing", entry: entry("new"), at: now }
        ])
        expect(applied).toEqual([true, true])
        expect(yield* counted("fv-empty")).toBe(1)
        expect(Option.map(yield* tier.get("blank"), (e) => e.value)).toEqual(Option.some("filled"))
      })
    )

    it.scoped(
      "a foreign value overwritten by getOrCompute is counted once, then read as the entry on two instances",
      () =>
        Effect.gen(function* () {
          const a = yield* cacheOn("fv-two", "fv-two:")
          const b = yield* cacheOn("fv-two", "fv-two:")
          yield* writeForeign("fv-two:")
          // Instance b reads the list first: a miss, counted.
          expect(yield* b.get("list")).toEqual(Option.none())
          expect(yield* counted("fv-two")).toBe(1)
          // Instance a computes over the foreign values and overwrites them.
          for (const key of FOREIGN)
            expect(yield* a.getOrCompute(key, Effect.succeed(`computed ${key}`))).toBe(`computed ${key}`)
          expect(yield* counted("fv-two")).toBe(5)
          // a's writes to Redis land after its answers: wait until Redis holds the four entries.
          const look = yield* observer
          yield* eventually(
            Effect.flatMap(
              Effect.promise(() =>
                Promise.all(FOREIGN.map((key) => look.get(`fv-two:${key}`).catch(() => null)))
              ),
              (values) =>
                values.every((v) => v !== null && Entry.deserialize(v)) ? Effect.void : Effect.fail(values)
            )
          )
          // Now entries: instance b (its L1 never held them) reads them from Redis, uncounted.
          expect(yield* b.getMany(FOREIGN)).toEqual(FOREIGN.map((key) => Option.some(`computed ${key}`)))
          expect(yield* b.get("json")).toEqual(Option.some("computed json"))
          expect(yield* counted("fv-two")).toBe(5)
          // The L1 hit path counts nothing.
          expect(yield* a.get("text")).toEqual(Option.some("computed text"))
          expect(yield* counted("fv-two")).toBe(5)
          // Tier.L2 is Redis: the cache's decodeErrors is the Schema's, untouched.
          expect((yield* a.stats).decodeErrors).toBe(0)
        })
    )
  })
})
