/**
 * A typed value that reaches L1 by any way but a write (promoted from a lower tier by get,
 * getOrComputeTyped, getMany, from the second or the third lower tier, or kept by the fail-safe)
 * answers the next typed hit in L1 decoded, as the read that brought it there did: L1 keeps the
 * stored (encoded) value with its decoding for the schema last used (README, Semantics: "L1
 * keeps the decoded value of the last schema used, so a repeated typed hit does not decode
 * again"). A schema whose Encoded side differs from its Type (Dates, bigints, a class, numbers
 * from strings) tells the two apart: the encoded value answered as the decoded one would be a
 * wrong-typed value.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Clock, Effect, Option, Schema, TestClock } from "effect"

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
const ledger: Ledger = {
  at: new Date(Date.UTC(2024, 0, 2)),
  cents: 2n ** 64n + 1n,
  rate: 0.25,
  account: new Account({ id: 7, opened: new Date(Date.UTC(2020, 0, 1)) })
}
const encoded = Schema.encodeSync(Ledger)(ledger)

/** Fails unless `value` is the ledger decoded: its Date, bigint, number and class instance. */
const expectDecoded = (what: string, value: unknown) => {
  expect(value, what).toEqual(ledger)
  const read = value as Ledger
  expect([what, read.at instanceof Date, typeof read.cents, typeof read.rate, read.account?.label]).toEqual([
    what,
    true,
    "bigint",
    "number",
    "account 7"
  ])
}

/**
 * The typed reads of `key` that L1 answers now, each checked decoded and counted as an L1 hit
 * (no lower tier is read: the copy L1 holds answers).
 */
const typedHitsInL1 = (cache: TieredCache.TieredCache.Service, key: string, how: string) =>
  Effect.gen(function* () {
    const before = yield* cache.stats
    expectDecoded(`${how}, then getTyped`, Option.getOrThrow(yield* cache.getTyped(key, Ledger)))
    expectDecoded(
      `${how}, then getOrComputeTyped`,
      yield* cache.getOrComputeTyped(key, Ledger, Effect.die("cached"))
    )
    const many = yield* cache.getMany([key], Ledger)
    expectDecoded(`${how}, then getMany`, Option.getOrThrow(many[0]!))
    const after = yield* cache.stats
    expect([how, after.l1Hits - before.l1Hits, after.requests - before.requests]).toEqual([how, 3, 3])
  })

/** A cache over MemoryTier and TestTier L2 (and an L3 when asked), the clock 10 s past the epoch. */
const setup = (withL3: boolean, options: TieredCache.Options = {}) =>
  Effect.gen(function* () {
    yield* TestClock.adjust(10_000)
    const l2 = yield* TestTier.make()
    const l3 = yield* TestTier.make({ name: "l3" })
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const cache = yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2),
      withL3 ? Effect.provideService(Tier.Tiers, [l3]) : (e) => e
    )
    const now = yield* Clock.currentTimeMillis
    /** Plants the ledger, stored encoded as every tier holds it, in `tier`. */
    const plant = (tier: TestTier.TestTier, key: string, ttlMs = 60_000, graceMs = 0) =>
      tier.plant(key, Entry.make({ value: encoded, now, ttlMs, graceMs }))
    return { cache, l1, l2, l3, plant }
  })

describe("a typed value promoted into L1 answers the next typed hit decoded", () => {
  it.scoped("promoted by getTyped, getOrComputeTyped and getMany from the one lower tier", () =>
    Effect.gen(function* () {
      const { cache, l1, l2, plant } = yield* setup(false)
      yield* plant(l2, "get")
      yield* plant(l2, "compute")
      yield* plant(l2, "many")
      expectDecoded("getTyped from L2", Option.getOrThrow(yield* cache.getTyped("get", Ledger)))
      expectDecoded(
        "getOrComputeTyped from L2",
        yield* cache.getOrComputeTyped("compute", Ledger, Effect.die("in L2"))
      )
      expectDecoded("getMany from L2", Option.getOrThrow((yield* cache.getMany(["many"], Ledger))[0]!))
      expect((yield* cache.stats).promotions).toBe(3)
      // L1 holds what the tiers hold: the encoded value.
      expect(Option.map(yield* l1.get("get"), (e) => e.value)).toEqual(Option.some(encoded))
      yield* typedHitsInL1(cache, "get", "promoted by getTyped")
      yield* typedHitsInL1(cache, "compute", "promoted by getOrComputeTyped")
      yield* typedHitsInL1(cache, "many", "promoted by getMany")
    })
  )

  it.scoped("promoted from the second or the third lower tier (L2 and L3)", () =>
    Effect.gen(function* () {
      const { cache, l2, l3, plant } = yield* setup(true)
      for (const [tier, where] of [
        [l2, "l2"],
        [l3, "l3"]
      ] as const) {
        for (const read of ["get", "compute", "many"]) yield* plant(tier, `${read}:${where}`)
        expectDecoded(
          `getTyped from ${where}`,
          Option.getOrThrow(yield* cache.getTyped(`get:${where}`, Ledger))
        )
        expectDecoded(
          `getOrComputeTyped from ${where}`,
          yield* cache.getOrComputeTyped(`compute:${where}`, Ledger, Effect.die("stored"))
        )
        expectDecoded(
          `getMany from ${where}`,
          Option.getOrThrow((yield* cache.getMany([`many:${where}`], Ledger))[0]!)
        )
        for (const read of ["get", "compute", "many"]) {
          yield* typedHitsInL1(cache, `${read}:${where}`, `promoted from ${where} by ${read}`)
        }
      }
      expect((yield* cache.stats).promotions).toBe(6)
    })
  )

  it.scoped("kept in L1 by the fail-safe: the throttle's hits answer it decoded", () =>
    Effect.gen(function* () {
      const { cache, l2, plant } = yield* setup(false, {
        staleWhileRevalidate: false,
        failSafeThrottle: "5 seconds"
      })
      yield* plant(l2, "k", 1_000, 60_000)
      yield* TestClock.adjust(2_000)
      // Stale in L2; the computation fails: the stale value answers, kept in L1 for 5 s.
      expectDecoded("fail-safe", yield* cache.getOrComputeTyped("k", Ledger, Effect.fail("source down")))
      expect((yield* cache.stats).failSafeHits).toBe(1)
      yield* typedHitsInL1(cache, "k", "kept by the fail-safe")
    })
  )
})
