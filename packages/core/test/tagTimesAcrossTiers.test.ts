import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { Clock, Effect, Option, TestClock } from "effect"
import * as TagTimes from "../src/internal/tags.js"
import type { TierAccess } from "../src/internal/tierAccess.js"

// A tag's invalidation time is written to every lower tier, each keeping its latest
// (writeIfNewer); a write that missed one tier (an outage, a breaker open) leaves an older time
// there than in the tiers below. An instance that had not met the tag read it from the first
// tier that held a record, so an entry created between the two times was served as valid.

/** An instance (no bus) over an L2 and an L3, each behind a ChaosTier, at time 10,000. */
const world = Effect.gen(function* () {
  yield* TestClock.adjust(10_000)
  const l2 = yield* TestTier.make({ name: "l2" })
  const l3 = yield* TestTier.make({ name: "l3" })
  const chaos2 = yield* ChaosTier.wrap(l2)
  const chaos3 = yield* ChaosTier.wrap(l3)
  const instance = TieredCache.make().pipe(
    Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, chaos2),
    Effect.provideService(Tier.Tiers, [chaos3])
  )
  const now = yield* Clock.currentTimeMillis
  /** Plants `tier`'s record of tag t, invalidated at `at`. */
  const record = (tier: TestTier.TestTier, at: number) =>
    tier.plant(`${TagTimes.TAG_PREFIX}t`, Entry.make({ value: at, now: at, ttlMs: 600_000 }))
  /** Plants entry `key` in L2, tagged t, created at `at`. */
  const tagged = (key: string, at: number) =>
    l2.plant(key, Entry.make({ value: key, now: at, ttlMs: 600_000, tags: ["t"] }))
  return { l2, l3, chaos2, chaos3, instance, now, record, tagged }
})

describe("a tag's invalidation time read from several lower tiers", () => {
  it.scoped("is the latest any of them holds, by get and getMany", () =>
    Effect.gen(function* () {
      const { l2, l3, instance, now, record, tagged } = yield* world
      // "between" was created after L2's time of t, before L3's; "after" after both.
      yield* tagged("between", now - 50)
      yield* tagged("after", now - 10)
      yield* record(l2, now - 100)
      yield* record(l3, now - 20)
      expect(yield* (yield* instance).get("between")).toEqual(Option.none())
      expect(yield* (yield* instance).get("after")).toEqual(Option.some("after"))
      expect(yield* (yield* instance).getMany(["between", "after"])).toEqual([
        Option.none(),
        Option.some("after")
      ])
      // The other way round: L2 holds the later time.
      yield* record(l2, now - 20)
      yield* record(l3, now - 100)
      expect(yield* (yield* instance).getMany(["between", "after"])).toEqual([
        Option.none(),
        Option.some("after")
      ])
    })
  )

  it.scoped("after an invalidation whose write of the time missed L2", () =>
    Effect.gen(function* () {
      const { chaos2, instance, now, tagged } = yield* world
      const a = yield* instance
      yield* a.invalidateTag("t")
      yield* tagged("k", now + 1)
      yield* TestClock.adjust(10)
      // The second invalidation reaches L3 only; L2 keeps the first one's time.
      yield* chaos2.fail("set", { times: 1 })
      yield* a.invalidateTag("t")
      // An instance that never heard of either (started since, or resynced).
      expect(yield* (yield* instance).get("k")).toEqual(Option.none())
    })
  )

  it.scoped("is unknown while a tier cannot be asked, whatever the others hold: a miss", () =>
    Effect.gen(function* () {
      const { l2, l3, chaos2, chaos3, instance, now, record, tagged } = yield* world
      yield* tagged("k", now - 50)
      yield* record(l2, now - 100)
      // L3 fails: it may hold a later time.
      yield* chaos3.fail("all")
      const b = yield* instance
      expect(yield* b.get("k")).toEqual(Option.none())
      expect(yield* b.getMany(["k"])).toEqual([Option.none()])
      // L3 answers again, holding nothing: L2's time decides (read again, not taken as known).
      yield* chaos3.heal
      expect(yield* b.get("k")).toEqual(Option.some("k"))
      // L2 cannot be asked for tag times (two tags: one getMany), L3 holds an older one.
      yield* l2.plant("two", Entry.make({ value: "two", now: now - 50, ttlMs: 600_000, tags: ["t", "u"] }))
      yield* record(l3, now - 200)
      yield* chaos2.fail("getMany")
      const c = yield* instance
      expect(yield* c.get("two")).toEqual(Option.none())
      yield* chaos2.heal
      expect(yield* c.get("two")).toEqual(Option.some("two"))
    })
  )

  it.scoped("is never invalidated when no tier holds a record", () =>
    Effect.gen(function* () {
      const { chaos2, chaos3, instance, now, tagged } = yield* world
      yield* tagged("k", now - 50)
      const b = yield* instance
      expect(yield* b.get("k")).toEqual(Option.some("k"))
      // Each tier asked once (a get, one tag), L3 too though L2 held nothing.
      expect((yield* chaos2.calls).get).toBe(2)
      expect((yield* chaos3.calls).get).toBe(1)
    })
  )
})

describe("a tag's invalidation time noted here", () => {
  it("only grows: an older time noted later (a message delayed, a clock behind) does not lower it", () => {
    const tags = TagTimes.make({} as TierAccess, () => 0)
    const at = (createdAt: number) => Entry.make({ value: "v", now: createdAt, ttlMs: 60_000, tags: ["t"] })
    tags.invalidated("t", 1_000)
    tags.invalidated("t", 500)
    // An entry created between the two is invalidated by the later time, which still holds.
    expect(tags.valid(at(700))).toBe(false)
    expect(tags.valid(at(1_001))).toBe(true)
  })
})
