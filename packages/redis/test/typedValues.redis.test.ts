/**
 * Typed values end to end on a real Redis, two instances (each its own L1, RedisTier and
 * RedisInvalidationBus on one redis-server). README, Typed reads: `set(key, value, { schema })`
 * encodes with the schema, so Dates, bigints and classes round-trip; a value that does not decode
 * is a miss (counted in `stats.decodeErrors`), and `getOrComputeTyped` recomputes and overwrites
 * it. What Redis and the bus carry is the encoded value; every instance answers it decoded.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Option, Schema } from "effect"
import { RedisInvalidationBus } from "../src/index.js"
import { eventually, observer, rawMessages, redisInstance } from "./utils.js"

class Account extends Schema.Class<Account>("Account")({ id: Schema.Number, opened: Schema.Date }) {
  get label(): string {
    return `account ${this.id}`
  }
}
/** Encoded, every field is a string or a plain object: none is what a typed read answers. */
const Ledger = Schema.Struct({
  at: Schema.Date,
  cents: Schema.BigInt,
  rate: Schema.NumberFromString,
  account: Account
})
type Ledger = typeof Ledger.Type
const ledger = (n: number): Ledger => ({
  at: new Date(Date.UTC(2024, 0, n)),
  cents: 2n ** 64n + BigInt(n),
  rate: n + 0.25,
  account: new Account({ id: n, opened: new Date(Date.UTC(2020, 0, n)) })
})
const encoded = (n: number) => Schema.encodeSync(Ledger)(ledger(n))

/** Fails unless `value` is ledger(n) decoded: its Date, bigint, number and class instance. */
const expectLedger = (what: string, value: unknown, n: number) => {
  expect(value, what).toEqual(ledger(n))
  const read = value as Ledger
  expect([what, read.at instanceof Date, typeof read.cents, typeof read.rate, read.account?.label]).toEqual([
    what,
    true,
    "bigint",
    "number",
    `account ${n}`
  ])
}

/** What Redis holds under the cache's key (the default prefix): the entry's stored value. */
const storedValue = (key: string) =>
  Effect.flatMap(observer, (look) =>
    Effect.map(
      Effect.promise(() => look.get(`tiercache:${key}`)),
      (raw) => (raw === null ? undefined : (JSON.parse(raw) as { readonly v: unknown }).v)
    )
  )

/** Succeeds once `l1` holds `key` (fails otherwise: for `eventually`). */
const held = (
  l1: { readonly get: (key: string) => Effect.Effect<Option.Option<unknown>, unknown> },
  key: string
) => Effect.flatMap(l1.get(key), (found) => (Option.isSome(found) ? Effect.void : Effect.fail("not in L1")))
/** Succeeds once `l1` no longer holds `key`. */
const dropped = (
  l1: { readonly get: (key: string) => Effect.Effect<Option.Option<unknown>, unknown> },
  key: string
) => Effect.flatMap(l1.get(key), (found) => (Option.isNone(found) ? Effect.void : Effect.fail("still in L1")))

/**
 * Succeeds once `cache` has no computation still writing its lower tiers: a computed value
 * answers its callers once L1 holds it, and reaches Redis after.
 */
const idle = (cache: { readonly stats: Effect.Effect<{ readonly inFlight: number }> }) =>
  eventually(Effect.flatMap(cache.stats, (s) => (s.inFlight === 0 ? Effect.void : Effect.fail("writing"))))

describe("typed values through Redis and the bus", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("a typed update travels encoded: the other instance answers it decoded from its own L1", () =>
      Effect.gen(function* () {
        const messages = yield* rawMessages(RedisInvalidationBus.defaultChannel)
        const a = yield* redisInstance("typed-a")
        const b = yield* redisInstance("typed-b")
        yield* a.cache.update("ledger:1", ledger(1), { schema: Ledger, ttl: "1 minute" })
        // The Update's value is what Redis holds: the encoded value, JSON-safe.
        expect(yield* storedValue("ledger:1")).toEqual(encoded(1))
        yield* eventually(held(b.l1, "ledger:1"))
        expect(Option.map(yield* b.l1.get("ledger:1"), (e) => e.value)).toEqual(Option.some(encoded(1)))
        const update = yield* eventually(
          Effect.suspend(() => {
            const found = messages
              .map(
                (raw) =>
                  JSON.parse(raw) as { readonly type: string; readonly key: string; readonly value: unknown }
              )
              .find((m) => m.type === "Update" && m.key === "ledger:1")
            return found === undefined ? Effect.fail("no Update seen") : Effect.succeed(found)
          })
        )
        expect(update.value).toEqual(encoded(1))
        // Answered by b's L1 (the copy the bus brought), decoded, again and again, by every typed read.
        const before = yield* b.cache.stats
        expectLedger("getTyped", Option.getOrThrow(yield* b.cache.getTyped("ledger:1", Ledger)), 1)
        expectLedger("getTyped again", Option.getOrThrow(yield* b.cache.getTyped("ledger:1", Ledger)), 1)
        expectLedger(
          "getOrComputeTyped",
          yield* b.cache.getOrComputeTyped("ledger:1", Ledger, Effect.die("held")),
          1
        )
        expectLedger("getMany", Option.getOrThrow((yield* b.cache.getMany(["ledger:1"], Ledger))[0]!), 1)
        const after = yield* b.cache.stats
        expect([after.l1Hits - before.l1Hits, after.l2Hits - before.l2Hits]).toEqual([4, 0])
        // Another schema reads the same copy its own way; the first one's answer is unchanged.
        const AsText = Schema.Struct({ at: Schema.String, cents: Schema.String, rate: Schema.String })
        expect(yield* b.cache.getTyped("ledger:1", AsText)).toEqual(
          Option.some({ at: "2024-01-01T00:00:00.000Z", cents: String(2n ** 64n + 1n), rate: "1.25" })
        )
        expectLedger(
          "getTyped after another schema",
          Option.getOrThrow(yield* b.cache.getTyped("ledger:1", Ledger)),
          1
        )
      })
    )

    it.scoped("a typed set is read from Redis by the other instance, promoted, and answered decoded", () =>
      Effect.gen(function* () {
        const a = yield* redisInstance("typed-c")
        const b = yield* redisInstance("typed-d")
        yield* a.cache.set("ledger:2", ledger(2), { schema: Ledger, ttl: "1 minute" })
        yield* a.cache.getOrComputeTyped("ledger:3", Ledger, Effect.succeed(ledger(3)), { ttl: "1 minute" })
        yield* idle(a.cache)
        for (const n of [2, 3]) {
          const key = `ledger:${n}`
          expect(yield* storedValue(key)).toEqual(encoded(n))
          yield* eventually(dropped(b.l1, key))
          expectLedger(`${key} from Redis`, Option.getOrThrow(yield* b.cache.getTyped(key, Ledger)), n)
          expect(Option.map(yield* b.l1.get(key), (e) => e.value)).toEqual(Option.some(encoded(n)))
          expectLedger(
            `${key} from b's L1`,
            yield* b.cache.getOrComputeTyped(key, Ledger, Effect.die("held")),
            n
          )
        }
        const stats = yield* b.cache.stats
        expect([stats.l2Hits, stats.promotions, stats.l1Hits, stats.decodeErrors]).toEqual([2, 2, 2, 0])
      })
    )
    // README, Typed reads. Instance a runs the old deploy, b the new one, whose schema does not
    // decode what a wrote: b's reads are misses counted as decode errors, never a's value (fresh,
    // stale in its grace window, or as the fail-safe's fallback), and b's computation overwrites it.
    it.scoped(
      "a schema change between deploys: the new schema never answers the old value, it recomputes",
      () =>
        Effect.gen(function* () {
          const Old = Schema.Struct({ id: Schema.Number, name: Schema.String })
          const New = Schema.Struct({
            id: Schema.Number,
            name: Schema.Struct({ first: Schema.String, last: Schema.String }),
            since: Schema.Date
          })
          const renamed = (id: number) => ({
            id,
            name: { first: "Ada", last: "Lovelace" },
            since: new Date(id)
          })
          const a = yield* redisInstance("typed-old")
          const b = yield* redisInstance(
            "typed-new",
            {},
            {},
            {},
            {
              staleWhileRevalidate: true,
              failSafeThrottle: "5 seconds"
            }
          )
          // Fresh, and in b's L1 too (the bus brought it).
          yield* a.cache.update("user:1", { id: 1, name: "Ada Lovelace" }, { schema: Old, ttl: "1 minute" })
          yield* eventually(held(b.l1, "user:1"))
          // Stale: past its TTL, inside its grace window, as a's write left it a while ago.
          const look = yield* observer
          const now = Date.now()
          const staleEntry = {
            v: { id: 2, name: "Ada Lovelace" },
            e: now - 1_000,
            s: now + 60_000,
            c: now - 2_000
          }
          yield* Effect.promise(() => look.set("tiercache:user:2", JSON.stringify(staleEntry), "PX", 60_000))
          expect(yield* a.cache.getTyped("user:2", Old, { allowStale: true })).toEqual(
            Option.some({ id: 2, name: "Ada Lovelace" })
          )

          const before = yield* b.cache.stats
          expect(yield* b.cache.getTyped("user:1", New)).toEqual(Option.none())
          expect(yield* b.cache.getMany(["user:1", "user:2"], New)).toEqual([Option.none(), Option.none()])
          expect(yield* b.cache.getTyped("user:2", New, { allowStale: true })).toEqual(Option.none())
          // The fail-safe has no value of this schema to fall back on: the computation's error.
          const failed = yield* Effect.exit(
            b.cache.getOrComputeTyped("user:2", New, Effect.fail("source down"))
          )
          expect(failed).toEqual(Exit.fail("source down"))
          // Nor does stale-while-revalidate: the caller waits for the computation.
          expect(yield* b.cache.getOrComputeTyped("user:2", New, Effect.succeed(renamed(2)))).toEqual(
            renamed(2)
          )
          expect(yield* b.cache.getOrComputeTyped("user:1", New, Effect.succeed(renamed(1)))).toEqual(
            renamed(1)
          )
          const after = yield* b.cache.stats
          expect({
            // user:1 in L1 and Redis (getTyped, getMany, the computation), user:2 in Redis (getMany,
            // getTyped, both computations).
            decodeErrors: after.decodeErrors - before.decodeErrors,
            misses: after.misses - before.misses,
            staleServed: after.staleServed - before.staleServed,
            failSafeHits: after.failSafeHits - before.failSafeHits,
            computations: after.computations - before.computations
          }).toEqual({ decodeErrors: 10, misses: 7, staleServed: 0, failSafeHits: 0, computations: 3 })
          // Overwritten in Redis with the new encoding; a's L1 copy dropped (b's write told it).
          yield* idle(b.cache)
          expect(yield* storedValue("user:1")).toEqual(Schema.encodeSync(New)(renamed(1)))
          expect(yield* storedValue("user:2")).toEqual(Schema.encodeSync(New)(renamed(2)))
          yield* eventually(dropped(a.l1, "user:1"))
          // And the old deploy, in turn, never answers the new value as its own.
          expect(yield* a.cache.getTyped("user:1", Old)).toEqual(Option.none())
          expect(yield* a.cache.getTyped("user:2", Old, { allowStale: true })).toEqual(Option.none())
        })
    )
  })
})
