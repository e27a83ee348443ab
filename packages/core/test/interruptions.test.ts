import { describe, expect, it } from "@effect/vitest"
import { CircuitBreaker, Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { Interruptions, MultiInstance, TestTier } from "@tiercache/testing"
import { Duration, Effect, Equal, Fiber, Option, Schedule } from "effect"

// A change or a breaker probe interrupted at any step of its run, as a caller's timeout or a
// race does to it under load: the fiber yields every few steps (Effect yields every 2,048) and
// the interruption lands while it waits to resume. Nothing it marked may stay marked.

const memoryCache = Effect.gen(function* () {
  const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
  const l2 = yield* TestTier.make()
  const cache = yield* TieredCache.make({ breaker: false }).pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, l2)
  )
  return { cache, l1 }
})

import { slowWrites } from "./slowWrites.js"

type Cache = TieredCache.TieredCache.Service

/**
 * Runs `op` (on each run's key) interrupted at each step, `prepare` first; afterwards each
 * run's key must be cached again, and the runs must have been interrupted at many points with
 * some completed.
 */
const leavesNothing = (
  cache: Cache,
  op: (key: string) => Effect.Effect<unknown, unknown>,
  prepare?: (key: string) => Effect.Effect<void, unknown>
) =>
  Effect.gen(function* () {
    const { failed, interrupted, completed } = yield* Interruptions.atEachStep(
      (run, padding) => Effect.zipRight(padding, op(`k${run}`)),
      (run) => Interruptions.cachesAgain(cache, `k${run}`),
      // Enough waits that the longest change (invalidateTag, which reads a tier's tag time
      // before writing it) also completes in some runs.
      { waits: 32, ...(prepare === undefined ? {} : { prepare: (run: string) => prepare(`k${run}`) }) }
    )
    expect(failed).toEqual([])
    expect(interrupted).toBeGreaterThan(100)
    expect(completed).toBeGreaterThan(0)
  })

describe("a change interrupted at any step", () => {
  // A change of many keys at once (pattern, tag, clear) marks every key: left marked, no key
  // would be cached again.
  const changes: ReadonlyArray<
    [string, "its key" | "every key", (cache: Cache, key: string) => Effect.Effect<unknown, unknown>]
  > = [
    ["set", "its key", (cache, key) => cache.set(key, 1)],
    ["update", "its key", (cache, key) => cache.update(key, 1)],
    ["invalidate", "its key", (cache, key) => cache.invalidate(key)],
    ["invalidateMany", "its key", (cache, key) => cache.invalidateMany([key, `${key}:other`])],
    ["invalidatePattern", "every key", (cache) => cache.invalidatePattern("p:*")],
    ["invalidateTag", "every key", (cache) => cache.invalidateTag("t")],
    ["clear", "every key", (cache) => cache.clear]
  ]
  for (const [name, which, change] of changes) {
    it.scopedLive(`${name}: ${which} is cached again afterwards`, () =>
      Effect.gen(function* () {
        const { cache } = yield* memoryCache
        yield* leavesNothing(cache, (key) => change(cache, key))
      })
    )
  }
})

describe("a change interrupted at any step, across instances", () => {
  // A change runs to its end once called: interrupted half-way, this instance's L1 would hold
  // the new value and the shared tier and the other instance the old one (or the other way).
  const changes: ReadonlyArray<[string, (cache: Cache, key: string) => Effect.Effect<unknown, unknown>]> = [
    ["set", (cache, key) => cache.set(key, "new")],
    ["update", (cache, key) => cache.update(key, "new")],
    ["invalidate", (cache, key) => cache.invalidate(key)],
    ["invalidatePattern", (cache, key) => cache.invalidatePattern(`${key}*`)]
  ]
  for (const [name, change] of changes) {
    it.scopedLive(`${name}: both instances and the shared tier agree afterwards`, () =>
      Effect.gen(function* () {
        const { caches, hub, l2 } = yield* MultiInstance.make(2)
        const [a, b] = caches as [Cache, Cache]
        const disagreements: Array<string> = []
        const { interrupted } = yield* Interruptions.atEachStep(
          (run, padding) => Effect.zipRight(padding, change(a, `k${run}`)),
          (run) =>
            Effect.gen(function* () {
              const key = `k${run}`
              yield* MultiInstance.settle([a, b], { hub: hub! })
              const answers = [
                yield* a.get(key),
                yield* b.get(key),
                Option.map(yield* l2!.get(key), (e) => e.value)
              ]
              const agree = answers.every((answer) => Equal.equals(answer, answers[0]))
              if (!agree) disagreements.push(`${run}: ${answers.map((answer) => String(answer)).join(" / ")}`)
              return agree
            }),
          // Each run's key holds "old" everywhere: in the shared tier and in both L1s.
          {
            prepare: (run) => Effect.zipRight(a.set(`k${run}`, "old"), b.get(`k${run}`)),
            pads: 13,
            waits: 24
          }
        )
        expect(disagreements.slice(0, 3)).toEqual([])
        expect(interrupted).toBeGreaterThan(100)
      })
    )
  }
})

describe("interrupting a change", () => {
  for (const [label, options] of [
    ["with the breaker", {}],
    ["without a breaker (no bound of the cache's own)", { breaker: false }]
  ] as const) {
    it.scopedLive(
      `waits for its end ${label}: once the interruption returns, the slow lower tier holds the write (disconnected, it goes on alone)`,
      () =>
        Effect.gen(function* () {
          const { store, cache } = yield* slowWrites("100 millis", options)
          const write = yield* Effect.fork(cache.set("k", "v"))
          yield* Effect.sleep("10 millis")
          expect(Option.isNone(yield* store.get("k"))).toBe(true)
          yield* Fiber.interrupt(write)
          expect(Option.map(yield* store.get("k"), (entry) => entry.value)).toEqual(Option.some("v"))
          // Disconnected, the caller's interruption returns at once and the write goes on.
          const disconnected = yield* Effect.fork(Effect.disconnect(cache.set("d", "v")))
          yield* Effect.sleep("10 millis")
          yield* Fiber.interrupt(disconnected)
          expect(Option.isNone(yield* store.get("d"))).toBe(true)
          yield* Effect.repeat(store.get("d"), {
            until: Option.isSome,
            schedule: Schedule.spaced("10 millis")
          }).pipe(Effect.timeout("5 seconds"))
          expect(Option.map(yield* store.get("d"), (entry) => entry.value)).toEqual(Option.some("v"))
        })
    )
  }

  it.scopedLive("still ends a hung tier's call at the breaker's timeout", () =>
    Effect.gen(function* () {
      const { cache } = yield* slowWrites("1 hour", { breaker: { timeout: "100 millis" } })
      const write = yield* Effect.fork(cache.set("k", "v"))
      yield* Effect.sleep("10 millis")
      // The write is uninterruptible; its L2 call still ends at 100 ms (a counted failure).
      const ended = yield* Fiber.interrupt(write).pipe(Effect.timeout("5 seconds"), Effect.either)
      expect(ended._tag).toBe("Right")
      expect(Object.values((yield* cache.stats).tierErrors)).toEqual([1])
    })
  )
})

describe("interrupting an invalidation that waits for a computed value's write", () => {
  it.scopedLive("still removes the value once the wait is over", () =>
    Effect.gen(function* () {
      const { l1, cache } = yield* slowWrites("1 hour", { breaker: { timeout: "200 millis" } })
      // Answered from L1; its write below L1 hangs until the breaker's timeout.
      expect(yield* cache.getOrCompute("k", Effect.succeed("computed"))).toBe("computed")
      const invalidation = yield* Effect.fork(cache.invalidate("k"))
      yield* Effect.sleep("10 millis")
      yield* Fiber.interrupt(invalidation)
      expect(yield* l1.get("k")).toEqual(Option.none())
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )
})

const reads: ReadonlyArray<[string, (cache: Cache, key: string) => Effect.Effect<unknown, unknown>]> = [
  ["get", (cache, key) => cache.get(key)],
  ["getMany", (cache, key) => cache.getMany([key, `${key}:absent`])]
]

describe("a read interrupted at any step", () => {
  it.scopedLive("getOrCompute: its computation goes on, is stored once, and is not run again", () =>
    Effect.gen(function* () {
      const { cache } = yield* memoryCache
      const started = new Map<string, number>()
      let runningAfter = 0
      const ended = new Map<string, number>()
      const bump = (counts: Map<string, number>, key: string) => counts.set(key, (counts.get(key) ?? 0) + 1)
      // A computation of many steps, so that most interruptions land while it runs.
      const compute = (key: string) =>
        Effect.suspend(() => {
          bump(started, key)
          return Effect.zipRight(
            Effect.repeatN(Effect.yieldNow(), 24),
            Effect.sync(() => {
              bump(ended, key)
              return key
            })
          )
        })
      const { failed, interrupted } = yield* Interruptions.atEachStep(
        (run, padding) => Effect.zipRight(padding, cache.getOrCompute(`c${run}`, compute(`c${run}`))),
        (run) =>
          Effect.gen(function* () {
            const key = `c${run}`
            if (started.has(key) && !ended.has(key)) runningAfter++
            yield* MultiInstance.settle([cache])
            const answer = yield* cache.getOrCompute(key, compute(key))
            // Run once, by the interrupted caller's flight or else by this call, and never cut off.
            return (
              answer === key &&
              started.get(key) === 1 &&
              ended.get(key) === 1 &&
              Option.isSome(yield* cache.get(key))
            )
          })
      )
      expect(failed).toEqual([])
      // Many computations were still running when their caller's interruption was done.
      // Every caller was interrupted, many while their computation ran on (it outlasts them).
      expect(interrupted).toBe(24 * 16)
      expect(runningAfter).toBeGreaterThan(60)
    })
  )

  for (const [name, read] of reads) {
    it.scopedLive(`${name} of a value found in L2: the key is cached afterwards`, () =>
      Effect.gen(function* () {
        const { cache, l1 } = yield* memoryCache
        // Each run's key is in L2 only.
        yield* leavesNothing(
          cache,
          (key) => read(cache, key),
          (key) => Effect.zipRight(cache.set(key, "stored"), l1.remove([key]))
        )
      })
    )
  }
})

// README: "A read's promotion into a shared tier (an entry found in a third tier or lower) or
// into an L1 that is not a MemoryTier runs to its end the same way". Interrupted half-way, L1
// and L2 would disagree, and a promotion's pending store left behind would hold every later
// invalidation of its key up for the whole wait.
describe("a read of a value found in a third tier, over an L1 that is not a MemoryTier, interrupted at any step", () => {
  for (const [name, read] of reads) {
    it.scopedLive(`${name}: L1 and L2 agree, an invalidate does not wait, the key is cached again`, () =>
      Effect.gen(function* () {
        const [l1, l2, l3] = [
          yield* TestTier.make({ name: "l1" }),
          yield* TestTier.make({ name: "l2" }),
          yield* TestTier.make({ name: "l3" })
        ]
        const cache = yield* TieredCache.make({ breaker: false }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, l2),
          Effect.provideService(Tier.Tiers, [l3])
        )
        const { failed, interrupted, completed } = yield* Interruptions.atEachStep(
          (run, padding) => Effect.zipRight(padding, read(cache, `k${run}`)),
          (run) =>
            Effect.gen(function* () {
              const key = `k${run}`
              yield* MultiInstance.settle([cache])
              if (Option.isSome(yield* l1.get(key)) !== Option.isSome(yield* l2.get(key))) return false
              const [took] = yield* Effect.timed(cache.invalidate(key))
              return Duration.toMillis(took) < 300 && (yield* Interruptions.cachesAgain(cache, key))
            }),
          {
            waits: 160,
            pads: 4,
            prepare: (run) => l3.set(`k${run}`, Entry.make({ value: "v", now: Date.now(), ttlMs: 3_600_000 }))
          }
        )
        expect(failed).toEqual([])
        expect(interrupted).toBeGreaterThan(100)
        expect(completed).toBeGreaterThan(0)
      })
    )
  }
})

describe("a breaker's probe interrupted at any step", () => {
  it.scopedLive("the next call after it probes, and a good probe closes the breaker", () =>
    Effect.gen(function* () {
      const breaker = yield* CircuitBreaker.make("test", { failureThreshold: 1, openFor: "1 millis" })
      const open = () => "open"
      const late = () => "late"
      let probed = 0
      const { failed, interrupted } = yield* Interruptions.atEachStep(
        // The probe: it outlasts the interruption when it gets that far.
        (_, padding) =>
          Effect.zipRight(
            padding,
            breaker.run(
              Effect.suspend(() => {
                probed++
                return Effect.never
              }),
              open,
              late,
              true
            )
          ),
        () =>
          Effect.gen(function* () {
            yield* Effect.sleep("2 millis")
            const probe = yield* Effect.either(breaker.run(Effect.succeed("ok"), open, late, true))
            return probe._tag === "Right" && breaker.state() === "closed"
          }),
        {
          // Opened by a failure, and open for long enough that the next call probes.
          prepare: () =>
            Effect.gen(function* () {
              yield* Effect.either(breaker.run(Effect.fail("failed"), open, late, true))
              expect(breaker.state()).toBe("open")
              yield* Effect.sleep("2 millis")
            }),
          pads: 13,
          waits: 48
        }
      )
      expect(failed).toEqual([])
      expect(interrupted).toBe(13 * 48)
      // Most runs were interrupted while the probe ran, the others before it began.
      expect(probed).toBeGreaterThan(150)
      expect(probed).toBeLessThan(13 * 48)
    })
  )
})
