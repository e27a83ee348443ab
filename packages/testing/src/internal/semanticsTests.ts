/**
 * The tests of `TierSuite.run`: TieredCache's core semantics over one tier as the L2 (reads,
 * promotion, lifetimes, writes; computations in semanticsCompute.ts).
 *
 * @internal
 */
import { expect, type Vitest } from "@effect/vitest"
import { Entry, Tier, type TieredCache } from "@tiercache/core"
import { Clock, Effect, Option, TestClock } from "effect"
import { registerInputTests } from "./inputTests.js"
import { registerComputeTests } from "./semanticsCompute.js"
import { type Context, freshKey } from "./suiteContext.js"
import { registerTierContractTests } from "./tierContractTests.js"
import { registerWriteNowTests } from "./writeNowTests.js"

/** Registers the suite's tests with `it` (from `layer(...)` of @effect/vitest). */
export const register = <R>(it: Vitest.MethodsNonLive<R, boolean>, { instances, live }: Context<R>): void => {
  it.scoped("an L1 hit answers from memory; an L2 hit is promoted to L1", () =>
    Effect.gen(function* () {
      const { caches, l2, settle } = yield* instances()
      const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
      const key = freshKey("promote")
      yield* a.set(key, { n: 1 }, { ttl: "1 minute" })
      yield* settle
      expect(yield* a.get(key)).toEqual(Option.some({ n: 1 }))
      // b's L1 is empty: L2 answers and b's L1 receives the entry.
      expect(yield* b.get(key)).toEqual(Option.some({ n: 1 }))
      expect(yield* b.get(key)).toEqual(Option.some({ n: 1 }))
      const sa = yield* a.stats
      const sb = yield* b.stats
      expect([sa.l1Hits, sa.l2Hits, sa.misses]).toEqual([1, 0, 0])
      expect([sb.l1Hits, sb.l2Hits, sb.misses, sb.promotions]).toEqual([1, 1, 0, 1])
      expect(Option.isSome(yield* l2.get(key))).toBe(true)
    })
  )

  if (!live) {
    it.scoped("a promoted copy expires when the L2 copy does, not after a default", () =>
      Effect.gen(function* () {
        const { caches, settle } = yield* instances()
        const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
        const key = freshKey("lifetime")
        yield* a.set(key, "v", { ttl: "10 seconds" })
        yield* settle
        yield* TestClock.adjust("7 seconds")
        expect(yield* b.get(key)).toEqual(Option.some("v")) // promoted with 3 s left
        yield* TestClock.adjust("2999 millis")
        expect(yield* b.get(key)).toEqual(Option.some("v"))
        expect((yield* b.stats).l1Hits).toBe(1)
        yield* TestClock.adjust("1 millis")
        expect(yield* b.get(key)).toEqual(Option.none())
        expect((yield* b.stats).misses).toBe(1)
      })
    )

    it.scoped("an entry expires exactly at its TTL", () =>
      Effect.gen(function* () {
        const { caches } = yield* instances(1)
        const cache = caches[0]!
        const key = freshKey("ttl")
        yield* cache.set(key, 42, { ttl: "500 millis" })
        yield* TestClock.adjust("499 millis")
        expect(yield* cache.get(key)).toEqual(Option.some(42))
        yield* TestClock.adjust("1 millis")
        expect(yield* cache.get(key)).toEqual(Option.none())
        const s = yield* cache.stats
        expect([s.l1Hits, s.l2Hits, s.misses]).toEqual([1, 0, 1])
      })
    )
  } else {
    // Each read is timed from the write (not from the read before it), so that a slow host
    // delays no read into the next one's window: the copy promoted at about 300 ms must still
    // be there at 600 (400 ms before the end) and gone at 1,150, 150 ms after the L2 copy's end
    // and before the end of a copy given the whole TTL again when promoted (1,300 or later).
    it.scoped("a promoted copy keeps the L2 copy's remaining lifetime", () =>
      Effect.gen(function* () {
        const { caches, settle } = yield* instances()
        const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
        const key = freshKey("lifetime")
        const written = yield* Clock.currentTimeMillis
        const at = (ms: number) =>
          Effect.flatMap(Clock.currentTimeMillis, (now) => Effect.sleep(Math.max(0, written + ms - now)))
        yield* a.set(key, "v", { ttl: "1 second" })
        yield* settle
        yield* at(300)
        expect(yield* b.get(key)).toEqual(Option.some("v"))
        yield* at(600)
        expect(yield* b.get(key)).toEqual(Option.some("v"))
        yield* at(1_150)
        expect(yield* b.get(key)).toEqual(Option.none())
      })
    )
  }

  // The cache relies on both: staleUntil for the grace window (stale-while-revalidate, a
  // promoted copy's lifetime), createdAt for tag invalidations (an entry made before its tag's
  // invalidation is gone). A live tier may re-base an entry's end on its own countdown (Redis's
  // PTTL, against clock skew): its end may then move by about a round trip (within 1 s here),
  // while the grace window and createdAt stay exact.
  it.scoped("a tier gives back an entry's grace window, creation time and end as written", () =>
    Effect.gen(function* () {
      const { l2 } = yield* instances(1)
      const now = yield* Clock.currentTimeMillis
      const exact = (e: Entry.Entry) => ({
        value: e.value,
        grace: e.staleUntil - e.expiresAt,
        createdAt: e.createdAt,
        tags: e.tags
      })
      // Made 5 s ago (createdAt apart from now), 61 s to live, then 30.5 s of grace.
      const one = Entry.make({
        value: { n: 1 },
        now: now - 5_000,
        ttlMs: 66_000,
        graceMs: 30_500,
        tags: ["t"]
      })
      const two = Entry.make({ value: "two", now: now - 1, ttlMs: 60_001, graceMs: 7 })
      const [k1, k2] = [freshKey("times"), freshKey("times")]
      yield* l2.set(k1, one)
      yield* l2.setMany([[k2, two]])
      const read = [
        Option.getOrThrow(yield* l2.get(k1)),
        ...(yield* l2.getMany([k1, k2])).map(Option.getOrThrow)
      ]
      const written = [one, one, two]
      expect(read.map(exact)).toEqual(written.map(exact))
      read.forEach((got, i) => {
        const end = written[i]!.expiresAt
        if (live) {
          expect(Math.abs(got.expiresAt - end)).toBeLessThan(1_000)
        } else {
          expect(got.expiresAt).toBe(end)
        }
      })
    })
  )

  it.scoped("set writes every tier", () =>
    Effect.gen(function* () {
      const { caches, l2 } = yield* instances(1)
      const key = freshKey("write")
      yield* caches[0]!.set(key, [1, 2, 3], { ttl: "1 minute", tags: ["t"] })
      const stored = yield* l2.get(key)
      expect(Option.map(stored, (e) => [e.value, e.tags])).toEqual(Option.some([[1, 2, 3], ["t"]]))
      expect((yield* caches[0]!.get(key))._tag).toBe("Some")
    })
  )

  it.scoped("a pattern leaves the cache's own keys (a tag's time); clear removes them", () =>
    Effect.gen(function* () {
      const { caches, l2, settle } = yield* instances()
      const [a, b] = caches as [TieredCache.TieredCache.Service, TieredCache.TieredCache.Service]
      const id = freshKey("owner")
      const tag = `user:${id}`
      const entryKey = `profile:${id}:avatar`
      yield* a.set(entryKey, "old avatar", { ttl: "1 minute", tags: [tag] })
      yield* live ? Effect.sleep("2 millis") : TestClock.adjust("1 millis")
      yield* a.invalidateTag(tag)
      yield* settle
      // A pattern for "every key of this id" matches the tag's record, not the entry's key.
      yield* a.invalidatePattern(`*:${id}`)
      yield* settle
      const record = `${Tier.reservedPrefix}tag:${tag}`
      expect(Option.isSome(yield* l2.get(record))).toBe(true)
      expect(Option.isSome(yield* l2.get(entryKey))).toBe(true)
      expect(yield* a.get(entryKey)).toEqual(Option.none())
      expect(yield* b.get(entryKey)).toEqual(Option.none())
      // The tier itself, whatever the glob; `clear` removes the cache's own keys too.
      const now = yield* Clock.currentTimeMillis
      const own = `${Tier.reservedPrefix}tag:${freshKey("own")}`
      yield* l2.set(own, Entry.make({ value: now, now, ttlMs: 60_000 }))
      yield* l2.removeMatching("*")
      expect(Option.isSome(yield* l2.get(own))).toBe(true)
      yield* l2.clear
      expect(Option.isNone(yield* l2.get(own))).toBe(true)
    })
  )

  registerComputeTests(it, { instances, live })
  registerInputTests(it, { instances, live })
  registerTierContractTests(it, { instances, live })
  registerWriteNowTests(it, { instances, live })
}
