/**
 * A stale value (past its TTL, inside its grace window) answered to a typed caller is decoded for
 * that caller's schema, as a fresh one is: by `getTyped` with `allowStale` (from L1 or from the
 * lower tier), and by `getOrComputeTyped` with stale-while-revalidate, where callers of other
 * schemas (or none) arriving while the refresh runs each get the stale copy their own way
 * (README, Typed reads and Grace and fail-safe). A schema whose Encoded side differs from its Type
 * tells the answers apart.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Option, Schema, TestClock } from "effect"

/** Encoded, `at` is a string and `cents` a string. */
const Ledger = Schema.Struct({ at: Schema.Date, cents: Schema.BigInt })
/** The same stored value read as text. */
const AsText = Schema.Struct({ at: Schema.String, cents: Schema.String })
const ledger = (n: number) => ({ at: new Date(Date.UTC(2024, 0, n)), cents: 2n ** 64n + BigInt(n) })
const encoded = (n: number) => Schema.encodeSync(Ledger)(ledger(n))

/** A cache over MemoryTier and TestTier; the ledger 1 written typed, then past its TTL (grace 1 minute). */
const staleLedger = (options: TieredCache.Options) =>
  Effect.gen(function* () {
    yield* TestClock.adjust(10_000)
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    const l2 = yield* TestTier.make()
    const cache = yield* TieredCache.make(options).pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
    yield* cache.set("k", ledger(1), { schema: Ledger, ttl: "1 second", grace: "1 minute" })
    yield* TestClock.adjust("2 seconds")
    return { cache, l1 }
  })

describe("stale values answered to typed callers", () => {
  it.scoped("getTyped with allowStale: L1's stale copy, and the lower tier's, decoded", () =>
    Effect.gen(function* () {
      const { cache, l1 } = yield* staleLedger({})
      for (const where of ["L1", "L2"]) {
        if (where === "L2") yield* l1.clear
        expect([where, yield* cache.getTyped("k", Ledger, { allowStale: true })]).toEqual([
          where,
          Option.some(ledger(1))
        ])
        expect([where, yield* cache.getTyped("k", AsText, { allowStale: true })]).toEqual([
          where,
          Option.some(encoded(1))
        ])
        expect([where, yield* cache.getTyped("k", Ledger, { allowStale: true })]).toEqual([
          where,
          Option.some(ledger(1))
        ])
        // Without allowStale: a miss.
        expect([where, yield* cache.getTyped("k", Ledger)]).toEqual([where, Option.none()])
      }
      expect((yield* cache.stats).staleServed).toBe(6)
    })
  )

  it.scoped(
    "stale-while-revalidate: each caller during the refresh gets the stale copy decoded its own way",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* staleLedger({ staleWhileRevalidate: true })
        const refresh = Effect.as(Effect.sleep("1 second"), ledger(2))
        // The first caller starts the refresh and is answered at once.
        expect(yield* cache.getOrComputeTyped("k", Ledger, refresh)).toEqual(ledger(1))
        // Callers arriving while it runs: their own decoding of the stale copy, at once.
        expect(yield* cache.getOrComputeTyped("k", AsText, Effect.die("refreshing"))).toEqual(encoded(1))
        expect(yield* cache.getOrCompute("k", Effect.die("refreshing"))).toEqual(encoded(1))
        expect(yield* cache.getOrComputeTyped("k", Ledger, Effect.die("refreshing"))).toEqual(ledger(1))
        const s = yield* cache.stats
        expect([s.staleServed, s.l1Hits]).toEqual([4, 4])
        // Once refreshed: the new value, to every schema.
        yield* TestClock.adjust("1 second")
        for (let i = 0; i < 100 && (yield* cache.stats).inFlight > 0; i++) yield* Effect.yieldNow()
        expect(yield* cache.getOrComputeTyped("k", Ledger, Effect.die("refreshed"))).toEqual(ledger(2))
        expect(yield* cache.getTyped("k", AsText)).toEqual(Option.some(encoded(2)))
        expect((yield* cache.stats).computations).toBe(1)
      })
  )
})
