import { describe, expect, it } from "@effect/vitest"
import { Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Clock, Deferred, Effect, Fiber, FiberRef, Option, TestClock } from "effect"

import * as TagTimes from "../src/internal/tags.js"
import type { TierAccess } from "../src/internal/tierAccess.js"

type Cache = TieredCache.TieredCache.Service

/** A new instance (an L1 of its own, no bus) over the shared tier `l2`. */
const instanceOn = (l2: Tier.Tier.Service) =>
  Effect.gen(function* () {
    const l1 = yield* MemoryTier.make({ maxEntries: 100 })
    return yield* TieredCache.make().pipe(
      Effect.provideService(Tier.L1, l1),
      Effect.provideService(Tier.L2, l2)
    )
  })

describe("invalidateTag", () => {
  it.scoped("invalidates every entry written with the tag, in every tier and every instance", () =>
    Effect.gen(function* () {
      const { caches, hub, l2 } = yield* MultiInstance.make(2)
      const [a, b] = caches as [Cache, Cache]
      yield* a.set("u1", 1, { tags: ["users"] })
      yield* a.set("u2", 2, { tags: ["users", "admins"] })
      yield* a.set("o1", 3, { tags: ["orders"] })
      yield* a.set("plain", 4)
      yield* MultiInstance.settle(caches, { hub })
      for (const k of ["u1", "u2", "o1", "plain"]) yield* b.get(k) // into b's L1
      yield* TestClock.adjust(1)
      yield* a.invalidateTag("users")
      yield* MultiInstance.settle(caches, { hub })
      for (const cache of [a, b]) {
        expect(yield* cache.get("u1")).toEqual(Option.none())
        expect(yield* cache.get("u2")).toEqual(Option.none())
        expect(yield* cache.get("o1")).toEqual(Option.some(3))
        expect(yield* cache.get("plain")).toEqual(Option.some(4))
      }
      // Written again after the invalidation: valid.
      yield* TestClock.adjust(1)
      yield* b.set("u1", 10, { tags: ["users"] })
      yield* MultiInstance.settle(caches, { hub })
      expect(yield* a.get("u1")).toEqual(Option.some(10))
      // The time lives in L2, under a reserved key.
      const record = (yield* l2!.snapshot).get("__tiercache:tag:users")
      expect(record?.value).toBe(1)
    })
  )

  it.scoped("a tagged entry may not outlive its tags' invalidation times (tagRetention)", () =>
    Effect.gen(function* () {
      // Before: set with ttl "30 days" and tagRetention "1 day" succeeded; after invalidateTag
      // and a day, the tag's record expired in L2 and a new instance read the entry as valid.
      const l2 = yield* TestTier.make()
      const instance = Effect.gen(function* () {
        const l1 = yield* MemoryTier.make({ maxEntries: 100 })
        return yield* TieredCache.make({
          tagRetention: "1 day",
          metricsInterval: "1 day",
          recovery: false
        }).pipe(Effect.provideService(Tier.L1, l1), Effect.provideService(Tier.L2, l2))
      })
      const a = yield* instance
      const tooLong = [
        yield* Effect.flip(a.set("k", 1, { ttl: "30 days", tags: ["t"] })),
        yield* Effect.flip(a.update("k", 1, { ttl: "23 hours", grace: "2 hours", tags: ["t"] })),
        yield* Effect.flip(a.getOrCompute("k", Effect.succeed(1), { ttl: "30 days", tags: ["t"] }))
      ]
      for (const error of tooLong) {
        expect(error).toMatchObject({ _tag: "CacheInputError", problem: "InvalidTtl" })
        expect(error.message).toContain("tagRetention")
      }
      expect((yield* l2.snapshot).size).toBe(0)
      // At most tagRetention, or untagged: written.
      yield* a.set("k", 1, { ttl: "1 day", tags: ["t"] })
      yield* a.set("plain", 2, { ttl: "30 days" })
      yield* TestClock.adjust(1)
      yield* a.invalidateTag("t")
      yield* TestClock.adjust("2 days")
      const b = yield* instance
      expect(yield* b.get("k")).toEqual(Option.none())
      expect(yield* b.get("plain")).toEqual(Option.some(2))
    })
  )

  it.scoped("clear forgets the tags' times on every instance alike, the one that cleared included", () =>
    Effect.gen(function* () {
      const { caches, hub } = yield* MultiInstance.make(2)
      const [a, b] = caches as [Cache, Cache]
      yield* a.invalidateTag("t")
      yield* MultiInstance.settle(caches, { hub })
      // clear removes the tag's record from the tiers; in the same millisecond a tagged write.
      yield* a.clear
      yield* MultiInstance.settle(caches, { hub })
      yield* a.set("k", "v", { tags: ["t"] })
      yield* MultiInstance.settle(caches, { hub })
      expect(yield* a.get("k")).toEqual(Option.some("v"))
      expect(yield* b.get("k")).toEqual(Option.some("v"))
    })
  )

  it.scoped("a new instance that never saw the message reads the tag's time from L2", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      const make = instanceOn(l2)
      const a = yield* make
      yield* a.set("k", "old", { tags: ["t"] })
      yield* TestClock.adjust(1)
      yield* a.invalidateTag("t")
      // Someone (an old instance, a replica) still has the entry in L2:
      yield* l2.plant("k", Entry.make({ value: "old", now: 0, ttlMs: 60_000, tags: ["t"] }))
      const b = yield* make
      expect(yield* b.get("k")).toEqual(Option.none())
      // Within the invalidation's millisecond, a new value cannot be told from an old one: a miss.
      expect(yield* b.getOrCompute("k", Effect.succeed("same ms"), { tags: ["t"] })).toBe("same ms")
      expect(yield* b.get("k")).toEqual(Option.none())
      yield* TestClock.adjust(1)
      expect(yield* b.getOrCompute("k", Effect.succeed("new"), { tags: ["t"] })).toBe("new")
      expect(yield* b.get("k")).toEqual(Option.some("new"))
    })
  )

  it.scoped("a tag record whose time is not a finite number counts from the record's creation", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      const l1 = yield* MemoryTier.make({ maxEntries: 100 })
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      yield* TestClock.adjust(1000)
      // Foreign data: a record of Infinity (JSON's 1e400), created at 500.
      yield* l2.plant("__tiercache:tag:t", {
        ...Entry.make({ value: 0, now: 500, ttlMs: 60_000 }),
        value: Infinity
      })
      yield* l2.plant("old", Entry.make({ value: "old", now: 400, ttlMs: 60_000, tags: ["t"] }))
      yield* l2.plant("new", Entry.make({ value: "new", now: 600, ttlMs: 60_000, tags: ["t"] }))
      // Not refused for good: an entry created after the record is valid, one before it is not.
      expect(yield* cache.get("old")).toEqual(Option.none())
      expect(yield* cache.get("new")).toEqual(Option.some("new"))
      yield* TestClock.adjust(1)
      yield* cache.set("k", "v", { tags: ["t"] })
      expect(yield* cache.get("k")).toEqual(Option.some("v"))
    })
  )

  it.scoped("a RemoveTag's time counts as it says, up to a minute ahead of the receiver's clock", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_000_000)
      const base = yield* Effect.clock
      /** The clock `ms` ahead of the TestClock (an instance whose clock runs fast). */
      const ahead = (ms: number): Clock.Clock => ({
        [Clock.ClockTypeId]: Clock.ClockTypeId,
        unsafeCurrentTimeMillis: () => base.unsafeCurrentTimeMillis() + ms,
        currentTimeMillis: Effect.sync(() => base.unsafeCurrentTimeMillis() + ms),
        unsafeCurrentTimeNanos: () => base.unsafeCurrentTimeNanos() + BigInt(ms) * 1_000_000n,
        currentTimeNanos: Effect.sync(() => base.unsafeCurrentTimeNanos() + BigInt(ms) * 1_000_000n),
        sleep: (d) => base.sleep(d)
      })
      const l2 = yield* TestTier.make()
      const hub = yield* TestBus.makeHub
      const build = (clock: Clock.Clock, withBus: boolean) =>
        Effect.gen(function* () {
          const l1 = yield* MemoryTier.make({ maxEntries: 100 })
          const make = TieredCache.make().pipe(
            Effect.provideService(Tier.L1, l1),
            Effect.provideService(Tier.L2, l2)
          )
          return yield* (
            withBus
              ? make.pipe(Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub)))
              : make
          ).pipe(Effect.withClock(clock))
        })
      // The writer's clock runs 5 ms ahead: it writes k, then invalidates its tag 1 ms later.
      const writer = yield* build(ahead(5), true)
      const receiver = yield* build(base, true)
      yield* writer.set("k", "v", { tags: ["t"] })
      yield* TestClock.adjust(1)
      yield* writer.invalidateTag("t")
      yield* MultiInstance.settle([writer, receiver], { hub })
      // Every instance refuses k, the one whose clock is behind included.
      expect(yield* writer.get("k")).toEqual(Option.none())
      expect(yield* receiver.get("k")).toEqual(Option.none())
      expect(yield* (yield* build(base, false)).get("k")).toEqual(Option.none())
      // A time an hour ahead (a broken clock, foreign data) counts as a minute ahead: not for good.
      yield* hub.publishRaw(
        JSON.stringify({ type: "RemoveTag", tag: "u", at: (yield* Clock.currentTimeMillis) + 3_600_000 })
      )
      yield* MultiInstance.settle([writer, receiver], { hub })
      yield* TestClock.adjust("59 seconds")
      yield* receiver.set("a", "refused", { tags: ["u"] })
      expect(yield* receiver.get("a")).toEqual(Option.none())
      yield* TestClock.adjust("2 seconds")
      yield* receiver.set("b", "kept", { tags: ["u"] })
      expect(yield* receiver.get("b")).toEqual(Option.some("kept"))
    })
  )

  // README (Tags): a tag's time more than a minute ahead "as it is read or received" counts as a
  // minute ahead; the received case is tested above, this is the read one (a record in L2).
  it.scoped("a tag record read from L2 more than a minute ahead counts as a minute ahead of the read", () =>
    Effect.gen(function* () {
      yield* TestClock.setTime(1_000_000)
      const l2 = yield* TestTier.make()
      yield* l2.plant(
        "__tiercache:tag:u",
        Entry.make({ value: 1_000_000 + 3_600_000, now: 1_000_000, ttlMs: 86_400_000 })
      )
      yield* l2.plant("x", Entry.make({ value: "x", now: 1_000_000, ttlMs: 86_400_000, tags: ["u"] }))
      const cache = yield* instanceOn(l2)
      // Read at 1,000,000: kept as 1,060,000.
      expect(yield* cache.get("x")).toEqual(Option.none())
      yield* TestClock.adjust("1 minute")
      yield* cache.set("a", "at the kept time", { tags: ["u"] })
      expect(yield* cache.get("a")).toEqual(Option.none())
      yield* TestClock.adjust(1)
      yield* cache.set("b", "after it", { tags: ["u"] })
      expect(yield* cache.get("b")).toEqual(Option.some("after it"))
    })
  )

  it.scoped(
    "an instance whose own clock steps back keeps its tag's time: misses, never the refused entries",
    () =>
      Effect.gen(function* () {
        // The invalidation's time is kept as it was noted: 10 minutes ahead once the clock steps
        // 10 minutes back (NTP). Entries the invalidation refused must stay refused (counting the
        // time as a minute ahead would bring back those created in the minutes before it), so the
        // tag's entries written after the step are misses until the clock passes the time again.
        yield* TestClock.setTime(10_000_000)
        const cache = yield* instanceOn(yield* TestTier.make())
        yield* cache.set("before", "refused", { ttl: "1 hour", tags: ["t"] })
        yield* TestClock.adjust("5 minutes")
        yield* cache.invalidateTag("t")
        yield* TestClock.setTime(10_000_000 + 300_000 - 600_000)
        yield* TestClock.adjust("2 minutes")
        expect(yield* cache.get("before")).toEqual(Option.none())
        yield* cache.set("after", "v", { ttl: "1 hour", tags: ["t"] })
        expect(yield* cache.get("after")).toEqual(Option.none())
        // Past the tag's time again, the tag's entries are cached as usual.
        yield* TestClock.adjust("9 minutes")
        yield* cache.set("after", "v", { ttl: "1 hour", tags: ["t"] })
        expect(yield* cache.get("after")).toEqual(Option.some("v"))
        expect(yield* cache.get("before")).toEqual(Option.none())
      })
  )

  it.scoped("a computation that started before the invalidation is not stored as valid", () =>
    Effect.gen(function* () {
      const { caches } = yield* MultiInstance.make(1)
      const cache = caches[0]!
      const gate = yield* Deferred.make<void>()
      const fiber = yield* Effect.fork(
        cache.getOrCompute("k", Effect.as(Deferred.await(gate), "computed from old data"), { tags: ["t"] })
      )
      yield* Effect.yieldNow()
      yield* TestClock.adjust(5)
      yield* cache.invalidateTag("t")
      yield* TestClock.adjust(5)
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(fiber)).toBe("computed from old data")
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )

  it.scoped(
    "a computed value is dated from its computation's start: an invalidation it never heard of refuses it",
    () =>
      Effect.gen(function* () {
        // Instances without a bus between them: b's invalidation reaches a only through L2, and a
        // does not read it while it computes. A third instance reading L2 afterwards must judge the
        // value by when its computation started (before the invalidation), not when it ended.
        const l2 = yield* TestTier.make()
        const make = instanceOn(l2)
        const a = yield* make
        const b = yield* make
        const gate = yield* Deferred.make<void>()
        const computing = yield* Effect.fork(
          a.getOrCompute("k", Effect.as(Deferred.await(gate), "computed from old data"), { tags: ["t"] })
        )
        yield* Effect.yieldNow()
        yield* TestClock.adjust(5)
        yield* b.invalidateTag("t")
        yield* TestClock.adjust(5)
        yield* Deferred.succeed(gate, undefined)
        expect(yield* Fiber.join(computing)).toBe("computed from old data")
        // Stored in L2 dated from the computation's start.
        expect((yield* l2.snapshot).get("k")?.createdAt).toBe(0)
        const c = yield* make
        expect(yield* c.get("k")).toEqual(Option.none())
      })
  )

  it.scoped("fails typed when no shared tier could store the time; bad tags are refused", () =>
    Effect.gen(function* () {
      const { caches, l2 } = yield* MultiInstance.make(1)
      yield* l2!.failOn(["set"])
      const error = yield* Effect.flip(caches[0]!.invalidateTag("t"))
      expect(error).toMatchObject({ _tag: "CacheWriteError", operation: "invalidateTag" })
      expect(yield* Effect.flip(caches[0]!.invalidateTag(""))).toMatchObject({ _tag: "CacheInputError" })
      expect(yield* Effect.flip(caches[0]!.set("__tiercache:tag:x", 1))).toMatchObject({
        _tag: "CacheInputError",
        problem: "InvalidKey"
      })
    })
  )
})

// The tag times an instance keeps (internal/tags.ts) were a Map that only a clear or a resync
// emptied: every distinct tag met stayed, so a process caching entries tagged per user or per
// product (README: `tags: ["user:1"]`) grew by one record per tag it ever met. They are bounded
// now: the last `half` to `2 * half` tags used are kept, and a tag forgotten is read from the
// lower tiers again when met, as after a resync. Small bounds here.
describe("tag times (internal)", () => {
  /** A lower tier holding tag records: `records` maps a tag to its time; `reads` counts reads. */
  const lowerTier = () => {
    const records = new Map<string, number>()
    const reads: Array<string> = []
    const access = {
      lower: [undefined],
      tryRead: (_index: number, key: string) =>
        Effect.sync(() => {
          const tag = key.slice(TagTimes.TAG_PREFIX.length)
          reads.push(tag)
          const at = records.get(tag)
          return at === undefined
            ? Option.none()
            : Option.some(Entry.make({ value: at, now: at, ttlMs: 1e9 }))
        })
    } as unknown as TierAccess
    return { records, reads, access }
  }
  const tagged = (tag: string, createdAt: number): Entry.Entry => ({
    ...Entry.make({ value: 1, now: createdAt, ttlMs: 1e9, tags: [tag] })
  })

  it.effect("are bounded: a tag not met for a while is forgotten, then read again when met", () =>
    Effect.gen(function* () {
      const { records, reads, access } = lowerTier()
      const tags = TagTimes.make(access, () => 1000, { half: 4 })
      // t0 invalidated at 500 (its record in the lower tier, as invalidateTag writes it).
      records.set("t0", 500)
      tags.invalidated("t0", 500)
      expect(tags.valid(tagged("t0", 400))).toBe(false)
      // A hot tag, met between the others, is kept; 20 others met once each.
      for (let i = 1; i <= 20; i++) {
        yield* tags.load([`u${i}`])
        expect(tags.valid(tagged("hot", 1))).not.toBe(false)
        if (i === 1) yield* tags.load(["hot"])
      }
      expect(tags.size()).toBeLessThanOrEqual(8)
      expect(reads.filter((t) => t === "hot")).toEqual(["hot"])
      // t0 was forgotten: unknown, then read from the lower tier again, and still invalidated.
      expect(tags.valid(tagged("t0", 400))).toBeUndefined()
      yield* tags.load(["t0"])
      expect(tags.valid(tagged("t0", 400))).toBe(false)
      expect(tags.valid(tagged("t0", 600))).toBe(true)
      // A later invalidation of a forgotten tag is not lowered by its older record.
      tags.invalidated("u1", 700)
      expect(tags.valid(tagged("u1", 650))).toBe(false)
    })
  )
})

describe("many tags not met yet", () => {
  it.scoped(
    "are read in batches of at most BATCH per tier, every tier asked for every tag (the latest time kept)",
    () =>
      Effect.gen(function* () {
        yield* TestClock.adjust(10_000)
        const now = yield* Clock.currentTimeMillis
        const l2 = yield* TestTier.make()
        const l3 = yield* TestTier.make({ name: "l3" })
        const chaos2 = yield* ChaosTier.wrap(l2)
        const chaos3 = yield* ChaosTier.wrap(l3)
        const cache = yield* TieredCache.make().pipe(
          Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 10_000 })),
          Effect.provideService(Tier.L2, chaos2),
          Effect.provideService(Tier.Tiers, [chaos3])
        )
        // 3,000 entries, a tag each (a tag per user); u7's tag was invalidated after its entry was
        // written, its record only in L3; u8's in L2, before its entry was written.
        const n = 3000
        const keys = Array.from({ length: n }, (_, i) => `u${i}`)
        for (const [i, key] of keys.entries()) {
          yield* l2.plant(key, Entry.make({ value: i, now, ttlMs: 60_000, tags: [`user:${i}`] }))
        }
        yield* l3.plant(
          `${TagTimes.TAG_PREFIX}user:7`,
          Entry.make({ value: now + 1, now: now + 1, ttlMs: 60_000 })
        )
        yield* l2.plant(
          `${TagTimes.TAG_PREFIX}user:8`,
          Entry.make({ value: now - 1, now: now - 1, ttlMs: 60_000 })
        )
        const found = yield* cache.getMany(keys)
        expect(found.filter(Option.isSome)).toHaveLength(n - 1)
        expect(found[7]).toEqual(Option.none())
        expect(found[8]).toEqual(Option.some(8))
        // Each tier: its entries in one getMany of the batch (L2), the tags in batches of BATCH.
        const batches = Math.ceil(n / TagTimes.BATCH)
        const calls2 = yield* chaos2.calls
        const calls3 = yield* chaos3.calls
        expect([calls2.get, calls2.getMany, calls3.get]).toEqual([0, 1 + batches, 0])
        // L3 is asked for every tag too (it may hold a later time than L2), in as many batches,
        // and for u7 (its entry in L2 refused by its tag, the read goes on below).
        expect(calls3.getMany).toBe(Math.ceil(n / TagTimes.BATCH) + 1)
      })
  )

  it.scoped("a batch its tier fails leaves its tags unknown, not taken as never invalidated", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust(10_000)
      const now = yield* Clock.currentTimeMillis
      const l2 = yield* TestTier.make()
      const chaos = yield* ChaosTier.wrap(l2)
      const l1 = yield* MemoryTier.make({ maxEntries: 100 })
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, chaos)
      )
      for (const key of ["a", "b"]) {
        yield* l1.set(key, Entry.make({ value: key, now, ttlMs: 60_000, tags: [`t:${key}`] }))
      }
      // Both tags' records say invalidated after the entries were written.
      for (const key of ["a", "b"]) {
        yield* l2.plant(
          `${TagTimes.TAG_PREFIX}t:${key}`,
          Entry.make({ value: now + 1, now: now + 1, ttlMs: 60_000 })
        )
      }
      yield* chaos.fail("getMany")
      expect(yield* cache.getMany(["a", "b"])).toEqual([Option.none(), Option.none()])
      yield* chaos.heal
      // Read again once the tier answers: invalidated.
      expect(yield* cache.getMany(["a", "b"])).toEqual([Option.none(), Option.none()])
    })
  )
})

// Before: the tags not met yet were read with Effect.forEach(..., { concurrency: "unbounded" })
// in the reader's own fiber. Effect 3.22's concurrent forEach hangs for good when its fiber is
// interrupted while it yields inside forEach's own uninterruptible steps (it yields every 2,048
// steps by default; here every 12, so that each step is reached), so a get or getMany of an entry
// with two tags not met yet, cut by a timeout at that moment, never returned, and the timeout
// around it waited for ever. The reads of several tags now run in a fiber of their own.
describe("a read waiting for tag times, interrupted at any step, ends", () => {
  it.scoped("get and getMany of entries with two tags not met yet", () =>
    Effect.gen(function* () {
      yield* TestClock.adjust(10_000)
      const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
      const l2 = yield* TestTier.make()
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, l2)
      )
      const now = yield* Clock.currentTimeMillis
      const hung: Array<string> = []
      let ended = 0
      for (const many of [false, true]) {
        for (let pad = 0; pad < 8; pad++) {
          for (let wait = 0; wait < 24; wait++) {
            const run = `${many}:${pad}:${wait}`
            // Tags this instance has not met: each run reads them.
            const entry = Entry.make({ value: 1, now, ttlMs: 60_000, tags: [`a${run}`, `b${run}`] })
            yield* l2.plant(`k${run}`, entry)
            let padding: Effect.Effect<void> = Effect.void
            for (let i = 0; i < pad; i++) padding = Effect.zipRight(padding, Effect.void)
            const read: Effect.Effect<unknown, unknown> = many
              ? cache.getMany([`k${run}`])
              : cache.get(`k${run}`)
            // A daemon: a fiber that hangs must not hold up the test's end.
            const fiber = yield* Effect.forkDaemon(
              Effect.locally(Effect.zipRight(padding, read), FiberRef.currentMaxOpsBeforeYield, 12)
            )
            for (let i = 0; i < wait; i++) yield* Effect.yieldNow()
            yield* Fiber.interruptFork(fiber)
            for (let i = 0; i < 500 && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* Effect.yieldNow()
            if (Option.isNone(yield* Fiber.poll(fiber))) hung.push(run)
            else ended++
          }
        }
      }
      expect({ hung, ended }).toEqual({ hung: [], ended: 2 * 8 * 24 })
    })
  )
})
