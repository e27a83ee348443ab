/**
 * getMany attacked as a user would: what it answers must be what `get` of each key answers.
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, TestTier } from "@tiercache/testing"
import { Cause, Clock, Effect, Exit, Fiber, Option, TestClock } from "effect"

/** Just past the most tags an instance keeps at once (65,536 to 131,072: tags.ts). */
const MANY = 66_000

/** A cache without breaker over `l1` and `l2`: a tag's read is then a plain call of an in-memory tier. */
const quickCache = (l1: Tier.Tier.Service, l2: Tier.Tier.Service) =>
  TieredCache.make({ breaker: false }).pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, l2)
  )

/** MANY entries, each with a tag of its own that the cache has not met, planted with `plant`. */
const plantMany = (plant: (key: string, entry: Entry.Entry) => Effect.Effect<void, unknown>) =>
  Effect.gen(function* () {
    yield* TestClock.adjust(10_000)
    const now = yield* Clock.currentTimeMillis
    const keys = Array.from({ length: MANY }, (_, i) => `k${i}`)
    for (const key of keys) {
      yield* plant(key, Entry.make({ value: key, now, ttlMs: 60_000, tags: [`user:${key}`] }))
    }
    return keys
  })

const missedOf = (keys: ReadonlyArray<string>, answers: ReadonlyArray<Option.Option<unknown>>) =>
  keys.filter(
    (key, i) => !Option.getEquivalence((a: unknown, b: unknown) => a === b)(answers[i]!, Option.some(key))
  )

describe("getMany of a batch carrying more tags than an instance keeps: each entry answered, as get answers it", () => {
  it.scoped(
    "found in L2",
    () =>
      Effect.gen(function* () {
        const l2 = yield* TestTier.make()
        const cache = yield* quickCache(yield* MemoryTier.make({ maxEntries: 100_000 }), l2)
        const keys = yield* plantMany(l2.plant)
        expect(missedOf(keys, yield* cache.getMany(keys)).length).toBe(0)
        const stats = yield* cache.stats
        expect([stats.l2Hits, stats.misses, stats.promotions]).toEqual([MANY, 0, MANY])
      }),
    120_000
  )

  it.scoped(
    "in MemoryTier's L1, their tags not met (nothing in L2)",
    () =>
      Effect.gen(function* () {
        const l1 = yield* MemoryTier.make({ maxEntries: 100_000 })
        const l2 = yield* TestTier.make()
        const cache = yield* quickCache(l1, l2)
        const keys = yield* plantMany(l1.set)
        expect(missedOf(keys, yield* cache.getMany(keys)).length).toBe(0)
        const stats = yield* cache.stats
        expect([stats.l1Hits, stats.misses]).toEqual([MANY, 0])
      }),
    120_000
  )

  it.scoped(
    "in an L1 that is not a MemoryTier",
    () =>
      Effect.gen(function* () {
        const l1 = yield* TestTier.make({ name: "l1" })
        const cache = yield* quickCache(l1, yield* TestTier.make())
        const keys = yield* plantMany(l1.plant)
        expect(missedOf(keys, yield* cache.getMany(keys)).length).toBe(0)
        const stats = yield* cache.stats
        expect([stats.l1Hits, stats.misses]).toEqual([MANY, 0])
      }),
    120_000
  )
})

/**
 * A key list as plain JavaScript may hand it: a real array (Array.isArray says so) behind a Proxy
 * that counts the elements read, of `length` elements, holding `first` at index 0 and nothing
 * after it (a sparse array, as `new Array(n)` or `a.length = n` make).
 */
const countingSparse = (length: number, first: unknown) => {
  const target: Array<unknown> = []
  target.length = length
  target[0] = first
  let read = 0
  const keys = new Proxy(target, {
    get: (t, p, r) => {
      if (typeof p === "string" && /^\d+$/.test(p)) read++
      return Reflect.get(t, p, r)
    }
  })
  return { keys: keys as unknown as ReadonlyArray<string>, read: () => read }
}

describe("getMany and invalidateMany of a sparse key list from plain JavaScript", () => {
  it.scoped("refused at its first missing key, the rest of the list never read", () =>
    Effect.gen(function* () {
      const l2 = yield* TestTier.make()
      const cache = yield* quickCache(yield* MemoryTier.make({ maxEntries: 100 }), l2)
      for (const call of ["getMany", "invalidateMany"] as const) {
        const list = countingSparse(1_000_000, "a")
        const exit = yield* Effect.exit(
          call === "getMany" ? cache.getMany(list.keys) : cache.invalidateMany(list.keys)
        )
        expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({
          _tag: "CacheInputError",
          problem: "InvalidKey"
        })
        // "a", then the hole at index 1.
        expect([call, list.read()]).toEqual([call, 2])
      }
      expect((yield* l2.calls).getMany).toBe(0)
    })
  )

  it.scoped(
    "the longest sparse array JavaScript makes: refused at once, not read through 4 billion holes",
    () =>
      Effect.gen(function* () {
        const cache = yield* quickCache(yield* MemoryTier.make({ maxEntries: 100 }), yield* TestTier.make())
        const keys: Array<string> = []
        keys.length = 2 ** 32 - 1
        const exit = yield* Effect.exit(cache.getMany(keys))
        expect(Exit.isFailure(exit) && Cause.squash(exit.cause)).toMatchObject({ problem: "InvalidKey" })
        const removal = yield* Effect.exit(cache.invalidateMany(keys))
        expect(Exit.isFailure(removal) && Cause.squash(removal.cause)).toMatchObject({
          problem: "InvalidKey"
        })
      }),
    60_000
  )
})

describe("getMany interrupted while it reads below L1 counts no request, as an interrupted get", () => {
  for (const shape of ["MemoryTier", "generic"] as const) {
    it.scoped(
      `L1 ${shape === "generic" ? "that is not a MemoryTier" : "a MemoryTier"}: nothing counted, then every key once`,
      () =>
        Effect.gen(function* () {
          const l2 = yield* TestTier.make()
          const chaos = yield* ChaosTier.wrap(l2)
          const l1: Tier.Tier.Service =
            shape === "generic"
              ? yield* TestTier.make({ name: "l1" })
              : yield* MemoryTier.make({ maxEntries: 100 })
          const cache = yield* TieredCache.make().pipe(
            Effect.provideService(Tier.L1, l1),
            Effect.provideService(Tier.L2, chaos)
          )
          const now = yield* Clock.currentTimeMillis
          yield* cache.set("hit", 1, { ttl: "1 minute" })
          yield* l2.plant("b", Entry.make({ value: 2, now, ttlMs: 60_000 }))
          yield* chaos.delay("getMany", "10 millis")
          yield* chaos.delay("get", "10 millis")
          const requests = Effect.map(cache.stats, (s) => [s.requests, s.l1Hits, s.l2Hits, s.misses])
          const get = yield* Effect.fork(cache.get("b"))
          yield* TestClock.adjust(5)
          yield* Fiber.interrupt(get)
          expect(yield* requests).toEqual([0, 0, 0, 0])
          const many = yield* Effect.fork(cache.getMany(["hit", "b", "x", "hit"]))
          yield* TestClock.adjust(5)
          yield* Fiber.interrupt(many)
          expect(yield* requests).toEqual([0, 0, 0, 0])
          const answered = yield* Effect.fork(cache.getMany(["hit", "b", "x", "hit"]))
          yield* TestClock.adjust(10)
          expect(yield* Fiber.join(answered)).toEqual([
            Option.some(1),
            Option.some(2),
            Option.none(),
            Option.some(1)
          ])
          expect(yield* requests).toEqual([4, 2, 1, 1])
        })
    )
  }
})

describe("getMany over a tier of someone else's that answers fewer entries than it was asked", () => {
  // Its answers cannot be matched to its keys: one that drops what it does not hold answers b's
  // entry first when a is missing, which read by position answered a with b's value. The answer
  // is that tier's failure (tierDefects.ts): every key asked of it goes on as a miss.
  it.scoped(
    "the answer is the tier's failure: each key it was asked is a miss, never another key's value",
    () =>
      Effect.gen(function* () {
        const l2 = yield* TestTier.make()
        const shortened: ReadonlyArray<Tier.Tier.Service> = [
          { ...l2, getMany: (keys) => Effect.map(l2.getMany(keys), (found) => found.filter(Option.isSome)) },
          { ...l2, getMany: (keys) => Effect.map(l2.getMany(keys), (found) => found.slice(0, 1)) }
        ]
        for (const short of shortened) {
          for (const l1 of [
            yield* MemoryTier.make({ maxEntries: 100 }),
            yield* TestTier.make({ name: "l1" })
          ]) {
            const cache = yield* TieredCache.make().pipe(
              Effect.provideService(Tier.L1, l1),
              Effect.provideService(Tier.L2, short)
            )
            const now = yield* Clock.currentTimeMillis
            yield* l2.plant("a", Entry.make({ value: "A", now, ttlMs: 60_000, tags: ["t"] }))
            yield* l2.plant("b", Entry.make({ value: "B", now, ttlMs: 60_000 }))
            expect(yield* cache.getMany(["c", "b", "a", "c"])).toEqual([
              Option.none(),
              Option.none(),
              Option.none(),
              Option.none()
            ])
            const stats = yield* cache.stats
            expect([stats.requests, stats.l2Hits, stats.misses, stats.tierErrors.test]).toEqual([4, 0, 4, 1])
            // get of each key still reads it.
            expect(yield* cache.get("b")).toEqual(Option.some("B"))
          }
        }
      })
  )
})
