/**
 * Model check: random sequences of get, getMany, set, update, getOrCompute, invalidate,
 * invalidateMany, invalidatePattern, invalidateTag, clear, reads racing an invalidation of
 * their key on one instance, writes racing a computation of their key, concurrent stampedes
 * (untyped callers, or untyped and typed callers mixed) and clock steps against two or three
 * instances sharing their lower tiers (an L2, or an L2 and an L3 that can lose entries on its
 * own, as an evicting Redis does) and a bus, every read checked against a plain map of the last
 * write. One configuration bounds L1 to fewer entries than there are keys, so reads also go
 * below an L1 that evicted; in another, one instance hears the bus late (ChaosBus). A write or
 * invalidation counts as complete once its bus messages have been delivered (the test waits
 * for that after each one, moving the clock when a delivery is late).
 *
 * Runs are deterministic: the seed is fixed (set TIERCACHE_MODEL_SEED to try another) and a
 * failure prints its seed and its shrunk command sequence.
 */
import { describe, expect, it } from "@effect/vitest"
import { InvalidationBus, Tier, type TieredCache } from "@tiercache/core"
import { ChaosBus, MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Deferred, Effect, Equal, Fiber, Layer, Option, Schema, TestClock, TestContext } from "effect"
import fc from "fast-check"

/**
 * Keys are small ints: 0-4 name `a:k0`..`a:k4` and 5-9 name `b:k0`..`b:k4`, so that globs cover
 * some of them. Key k carries the tag g(k % 2).
 */
const KEYS = 10
const keyOf = (k: number) => `${k < 5 ? "a" : "b"}:k${k % 5}`

/** The globs invalidatePattern is given, each with the keys it covers, written out by hand. */
const GLOBS: ReadonlyArray<{ readonly glob: string; readonly covers: (k: number) => boolean }> = [
  { glob: "a:*", covers: (k) => k < 5 },
  { glob: "b:*", covers: (k) => k >= 5 },
  { glob: "*:k1", covers: (k) => k % 5 === 1 },
  { glob: "a:k[0-2]", covers: (k) => k <= 2 },
  { glob: "b:k[^0-2]", covers: (k) => k >= 8 },
  { glob: "?:k4", covers: (k) => k % 5 === 4 },
  { glob: "*", covers: () => true },
  { glob: "c:*", covers: () => false }
]

type Write = "set" | "update" | "invalidate"

type Cmd =
  | { readonly op: "get"; readonly i: number; readonly k: number }
  | { readonly op: "getMany"; readonly i: number; readonly ks: ReadonlyArray<number> }
  | { readonly op: "set"; readonly i: number; readonly k: number; readonly v: number; readonly ttl: number }
  | {
      readonly op: "update"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
    }
  | {
      readonly op: "compute"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
    }
  | {
      readonly op: "stampede"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly n: number
      /** Every other caller reads with Schema.Number (the flight is one, whoever leads it). */
      readonly mixed: boolean
    }
  | {
      readonly op: "writeDuringCompute"
      /** The instance computing. */
      readonly i: number
      /** The instance writing: the computing one, or another (its message then detaches). */
      readonly w: number
      readonly k: number
      /** The computed value, ready `ms` after the computation starts. */
      readonly v: number
      readonly ms: number
      readonly write: Write
      /** The written value (set, update) and its TTL. */
      readonly wv: number
      readonly ttl: number
      /** Whether a getOrCompute of the key on instance i follows the write, before `ms` pass. */
      readonly later: boolean
      /** What that later caller's computation answers. */
      readonly lv: number
    }
  | { readonly op: "invalidate"; readonly i: number; readonly k: number }
  | { readonly op: "invalidateMany"; readonly i: number; readonly ks: ReadonlyArray<number> }
  | { readonly op: "invalidatePattern"; readonly i: number; readonly p: number }
  | { readonly op: "readDuringInvalidate"; readonly i: number; readonly k: number; readonly r: number }
  | { readonly op: "invalidateTag"; readonly i: number; readonly g: number }
  | { readonly op: "clear"; readonly i: number }
  | { readonly op: "evictL2"; readonly k: number }
  | { readonly op: "advance"; readonly ms: number }

/**
 * One group of instances: how many, whether an L3 sits below the L2, L1's bound, and how late
 * (ms, on the clock) the last instance hears the bus (0: at once, as the others); `runs`
 * sequences are tried.
 */
interface Config {
  readonly instances: number
  readonly l3: boolean
  readonly l1Entries: number
  readonly lateMs: number
  readonly runs: number
}

const cmd = (config: Config): fc.Arbitrary<Cmd> => {
  const i = fc.integer({ min: 0, max: config.instances - 1 })
  const k = fc.integer({ min: 0, max: KEYS - 1 })
  const ks = (minLength: number) => fc.array(k, { minLength, maxLength: 4 })
  const v = fc.integer({ min: 0, max: 1_000_000 })
  // Short TTLs half the time, so that entries often expire between two commands.
  const ttl = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 3000 }))
  const commands: Array<fc.Arbitrary<Cmd>> = [
    fc.record({ op: fc.constant("get" as const), i, k }),
    fc.record({ op: fc.constant("getMany" as const), i, ks: ks(1) }),
    fc.record({ op: fc.constant("set" as const), i, k, v, ttl }),
    fc.record({ op: fc.constant("update" as const), i, k, v, ttl }),
    fc.record({ op: fc.constant("compute" as const), i, k, v, ttl }),
    fc.record({
      op: fc.constant("stampede" as const),
      i,
      k,
      v,
      n: fc.integer({ min: 2, max: 20 }),
      mixed: fc.boolean()
    }),
    fc
      .record({
        op: fc.constant("writeDuringCompute" as const),
        i,
        w: i,
        k,
        v,
        ms: fc.integer({ min: 1, max: 50 }),
        write: fc.constantFrom<Write>("set", "update", "invalidate"),
        wv: v,
        ttl,
        later: fc.boolean(),
        lv: v
      })
      // The late instance computes only under its own writes: another's message would reach it
      // after the computation ended, and the value it then stores from old data is README's
      // known limit ("Another instance can still store a value it computed from old data in L2
      // after an `invalidate` (a race every shared cache has)").
      .map((c) => (config.lateMs > 0 && c.i === config.instances - 1 ? { ...c, w: c.i } : c)),
    fc.record({ op: fc.constant("invalidate" as const), i, k }),
    fc.record({ op: fc.constant("invalidateMany" as const), i, ks: ks(0) }),
    fc.record({
      op: fc.constant("invalidatePattern" as const),
      i,
      p: fc.integer({ min: 0, max: GLOBS.length - 1 })
    }),
    fc.record({ op: fc.constant("readDuringInvalidate" as const), i, k, r: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ op: fc.constant("invalidateTag" as const), i, g: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ op: fc.constant("clear" as const), i }),
    fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 2000 }) })
  ]
  // Only with an L3 below: without one, an entry lost by L2 is lost, and the model cannot say
  // which instances still hold it in L1.
  if (config.l3) commands.push(fc.record({ op: fc.constant("evictL2" as const), k }))
  return fc.oneof(...commands)
}

const STAMPEDE_TTL = 1000

/** Fails, naming the command and the check, with what was read and what the model expects. */
const check = (c: Cmd, what: string, actual: unknown, expected: unknown) =>
  expect(actual, `${what} after ${show(c)}: got ${show(actual)}, model ${show(expected)}`).toEqual(expected)
/** JSON, with Options (whose toJSON gives `{ _id, _tag, value }`) shortened to `{ some }` or `"none"`. */
const show = (value: unknown) =>
  JSON.stringify(value, (_, v) =>
    v !== null && typeof v === "object" && v._id === "Option"
      ? v._tag === "Some"
        ? { some: v.value }
        : "none"
      : v
  )

const run = (config: Config, cmds: ReadonlyArray<Cmd>) =>
  Effect.gen(function* () {
    const l2 = yield* TestTier.make()
    const hub = yield* TestBus.makeHub
    // Each instance's bus wraps the hub in a ChaosBus; the last one's delivers `lateMs` late.
    // MultiInstance builds the shared layer afresh for each instance, in order, so each build
    // takes the next bus.
    const buses = yield* Effect.forEach(Array.from({ length: config.instances }), () =>
      ChaosBus.wrap(TestBus.make(hub))
    )
    yield* buses[config.instances - 1]!.delay(config.lateMs)
    let built = 0
    const bus = Layer.sync(InvalidationBus.InvalidationBus, () => buses[built++]!)
    const shared = config.l3
      ? Layer.mergeAll(
          Layer.succeed(Tier.L2, l2),
          Layer.succeed(Tier.Tiers, [yield* TestTier.make({ name: "l3" })]),
          bus
        )
      : Layer.merge(Layer.succeed(Tier.L2, l2), bus)
    const { caches } = yield* MultiInstance.make(config.instances, {
      l1: { maxEntries: config.l1Entries },
      shared
    })
    // Every key k carries the tag g(k % 2); an entry is valid while fresh and created after its
    // tag's last invalidation (computed entries are dated from the computation's start).
    const model = new Map<
      string,
      { readonly value: number; readonly expiresAt: number; readonly createdAt: number }
    >()
    const tagTimes = [Number.NEGATIVE_INFINITY, Number.NEGATIVE_INFINITY]
    const tagOf = (k: number) => `g${k % 2}`
    const reads = caches.map(() => 0)
    const computations = caches.map(() => 0)
    let now = 0
    // With a late instance, a change is complete once its messages reached that one too:
    // `lateMs` later on the clock. The rule is then "after settling, every instance agrees with
    // the model"; reads before that (on the late instance) are not checked.
    const settle = Effect.zipRight(
      config.lateMs > 0
        ? Effect.zipRight(
            TestClock.adjust(config.lateMs),
            Effect.sync(() => {
              now += config.lateMs
            })
          )
        : Effect.void,
      MultiInstance.settle(caches, { hub })
    )
    // Settled for instance i, computations under way aside: every message published so far
    // has reached it.
    const delivered = (i: number) =>
      Effect.gen(function* () {
        for (let round = 0; round < 10_000; round++) {
          const published = (yield* hub.published).length
          if ((yield* caches[i]!.invalidationStats).messagesReceived >= published) return
          yield* Effect.yieldNow()
        }
        return yield* Effect.dieMessage(`messages did not reach instance ${i} within 10 000 checks`)
      })
    const fresh = (k: number) => {
      const m = model.get(keyOf(k))
      return m !== undefined && now < m.expiresAt && m.createdAt > tagTimes[k % 2]! ? m : undefined
    }
    const expectedOf = (k: number) => {
      const m = fresh(k)
      return m === undefined ? Option.none() : Option.some(m.value)
    }
    const computeOn = (i: number, v: number) =>
      Effect.sync(() => {
        computations[i]!++
        return v
      })
    /** Records a set or update of key k in the model, and gives the write's options. */
    const recordWrite = (k: number, v: number, ttl: number) => {
      model.set(keyOf(k), { value: v, expiresAt: now + ttl, createdAt: now })
      return { ttl, tags: [tagOf(k)] }
    }

    for (const c of cmds) {
      if (c.op === "advance") {
        yield* TestClock.adjust(c.ms)
        now += c.ms
        continue
      }
      if (c.op === "evictL2") {
        // The L2 loses an entry on its own (an evicting Redis): the L3 still holds it, so every
        // read still answers it, found in L1 or promoted from L3. The model does not change.
        yield* l2.remove([keyOf(c.k)])
        continue
      }
      const cache: TieredCache.TieredCache.Service = caches[c.i]!
      switch (c.op) {
        case "invalidateTag":
          yield* cache.invalidateTag(`g${c.g}`)
          tagTimes[c.g] = now
          yield* settle
          continue
        case "getMany": {
          // A batch read: each key (a key may come twice) answers as `get` would, and counts as
          // one request.
          reads[c.i]! += c.ks.length
          const got = yield* cache.getMany(c.ks.map(keyOf))
          check(c, "getMany", got, c.ks.map(expectedOf))
          continue
        }
        case "invalidateMany":
          // Every key given, in every tier and every instance's L1.
          yield* cache.invalidateMany(c.ks.map(keyOf))
          for (const k of c.ks) model.delete(keyOf(k))
          yield* settle
          continue
        case "invalidatePattern": {
          // Every key the glob covers, and no other.
          const { covers, glob } = GLOBS[c.p]!
          yield* cache.invalidatePattern(glob)
          for (let k = 0; k < KEYS; k++) if (covers(k)) model.delete(keyOf(k))
          yield* settle
          continue
        }
        case "clear":
          // Every key, and every tag's invalidation time: clear empties every tier, the tag
          // records under `__tiercache:tag:` included ("`clear` removes them", README,
          // Semantics, Tags), and tells every instance to forget the times it read.
          yield* cache.clear
          model.clear()
          tagTimes.fill(Number.NEGATIVE_INFINITY)
          yield* settle
          continue
      }
      const key = keyOf(c.k)
      const tags = [tagOf(c.k)]
      const expected = fresh(c.k)
      switch (c.op) {
        case "get": {
          reads[c.i]!++
          const got = yield* cache.get(key)
          check(c, "get", got, expectedOf(c.k))
          break
        }
        case "set":
          yield* cache.set(key, c.v, recordWrite(c.k, c.v, c.ttl))
          yield* settle
          break
        case "update":
          // Writes every tier and broadcasts the value: the other instances' L1 hold it (for the
          // same TTL, the message arriving at once) instead of dropping their copy. The model is
          // the same as set's.
          yield* cache.update(key, c.v, recordWrite(c.k, c.v, c.ttl))
          yield* settle
          break
        case "compute": {
          reads[c.i]!++
          const before = computations[c.i]!
          const got = yield* cache.getOrCompute(key, computeOn(c.i, c.v), { ttl: c.ttl, tags })
          if (expected !== undefined) {
            check(c, "value, computations", [got, computations[c.i]! - before], [expected.value, 0])
          } else {
            check(c, "value, computations", [got, computations[c.i]! - before], [c.v, 1])
            model.set(key, { value: c.v, expiresAt: now + c.ttl, createdAt: now })
          }
          yield* settle
          break
        }
        case "stampede": {
          reads[c.i]! += c.n
          const before = computations[c.i]!
          const options = { ttl: STAMPEDE_TTL, tags }
          const got = yield* Effect.all(
            Array.from({ length: c.n }, (_, j): Effect.Effect<unknown, unknown> => {
              const computation = computeOn(c.i, c.v).pipe(Effect.delay("1 millis"))
              return c.mixed && j % 2 === 1
                ? cache.getOrComputeTyped(key, Schema.Number, computation, options)
                : cache.getOrCompute(key, computation, options)
            }),
            { concurrency: "unbounded" }
          ).pipe(
            Effect.fork,
            Effect.tap(() => TestClock.adjust(1)),
            Effect.flatMap((f) => f.await),
            Effect.flatten
          )
          now += 1
          if (expected === undefined) {
            // Missing: exactly one computation (stored 1 ms later) for all the callers.
            check(c, "values, computations", [got, computations[c.i]! - before], [got.map(() => c.v), 1])
            model.set(key, { value: c.v, expiresAt: now + STAMPEDE_TTL, createdAt: now - 1 })
          } else {
            // The callers all read before the clock moved, while the value was fresh.
            check(
              c,
              "values, computations",
              [got, computations[c.i]! - before],
              [got.map(() => expected.value), 0]
            )
          }
          yield* settle
          break
        }
        case "writeDuringCompute": {
          // A set, update or invalidate of a key while instance i computes it (the writer is i,
          // or another instance whose message reaches i before the computation ends). README,
          // Semantics, getOrCompute: the write "detaches" the computation: "its result goes to
          // its callers but is not stored (it is not current), and later callers compute
          // anew". So: the caller that started the computation gets the computed value; from
          // the write on, the model holds the write's value (none for an invalidation), so no
          // later read on any instance may answer the computed value; a getOrCompute on i after
          // the write answers the written value, or (after an invalidation) runs a computation
          // of its own rather than wait for the detached one. Afterwards every instance agrees
          // with the model.
          reads[c.i]!++
          const before = computations[c.i]!
          const started = yield* Deferred.make<void>()
          const slow = Deferred.succeed(started, undefined).pipe(
            Effect.zipRight(Effect.sleep(c.ms)),
            Effect.zipRight(computeOn(c.i, c.v))
          )
          const first = yield* Effect.fork(cache.getOrCompute(key, slow, { ttl: c.ttl, tags }))
          // A fresh value answers the first caller at once; only a miss computes.
          const computing = yield* Effect.raceFirst(
            Effect.as(Deferred.await(started), true),
            Effect.as(Fiber.await(first), false)
          )
          check(c, "first caller computing", computing, expected === undefined)
          const writer = caches[c.w]!
          if (c.write === "invalidate") {
            yield* writer.invalidate(key)
            model.delete(key)
          } else {
            yield* writer[c.write](key, c.wv, recordWrite(c.k, c.wv, c.ttl))
          }
          if (c.w !== c.i) yield* delivered(c.i)
          let computedLater = 0
          if (c.later && computing) {
            reads[c.i]!++
            const after = fresh(c.k)
            const got = yield* cache.getOrCompute(key, computeOn(c.i, c.lv), { ttl: c.ttl, tags })
            if (after !== undefined) {
              check(c, "later caller", got, after.value)
            } else {
              check(c, "later caller", got, c.lv)
              model.set(key, { value: c.lv, expiresAt: now + c.ttl, createdAt: now })
              computedLater = 1
            }
          }
          if (computing) {
            yield* TestClock.adjust(c.ms)
            now += c.ms
          }
          const got = yield* Fiber.join(first)
          check(
            c,
            "first caller, computations",
            [got, computations[c.i]! - before],
            [computing ? c.v : expected!.value, (computing ? 1 : 0) + computedLater]
          )
          yield* settle
          for (let j = 0; j < caches.length; j++) {
            reads[j]!++
            const after = yield* caches[j]!.get(key)
            check(c, `get on instance ${j} afterwards`, after, expectedOf(c.k))
          }
          break
        }
        case "invalidate":
          yield* cache.invalidate(key)
          model.delete(key)
          yield* settle
          break
        case "readDuringInvalidate": {
          // A read and an invalidation of the same key on one instance at once: the read answers
          // the value before the invalidation or nothing; afterwards every read agrees with the
          // model (no tier kept the old value).
          reads[c.i]!++
          const read: Effect.Effect<Option.Option<unknown>, unknown> = c.r === 0
            ? cache.get(key)
            : c.r === 1
              ? Effect.map(cache.getMany([key]), (found) => found[0]!)
              : cache.getTyped(key, Schema.Number)
          const [got] = yield* Effect.all([read, cache.invalidate(key)], { concurrency: "unbounded" })
          const allowed = [Option.none(), ...(expected === undefined ? [] : [Option.some(expected.value)])]
          check(
            c,
            "read (none, or the value before)",
            got,
            allowed.find((a) => Equal.equals(a, got)) ?? allowed
          )
          model.delete(key)
          yield* settle
          break
        }
      }
    }
    for (let i = 0; i < caches.length; i++) {
      const s = yield* caches[i]!.stats
      // Every read counted exactly once, and the outcomes add up.
      expect(s.requests).toBe(reads[i])
      // A hit below L1 counts in its own tier's `tierHits` (L2's is also `l2Hits`).
      expect(s.tierHits).toHaveLength(config.l3 ? 2 : 1)
      expect(s.tierHits[0]).toBe(s.l2Hits)
      expect(s.l1Hits + s.tierHits.reduce((sum, n) => sum + n, 0) + s.coalesced + s.misses).toBe(s.requests)
      expect(s.computations).toBe(computations[i])
      expect(s.inFlight).toBe(0)
    }
  })

/**
 * The groups checked: two and three instances over one shared L2 (as before), two over an L2
 * and an L3 with an L1 of 3 entries for 10 keys, three over an L2 and an L3, and three over an
 * L2 whose last instance hears the bus 200 ms late.
 */
const CONFIGS: ReadonlyArray<Config> = [
  { instances: 2, l3: false, l1Entries: 10_000, lateMs: 0, runs: 100 },
  { instances: 3, l3: false, l1Entries: 10_000, lateMs: 0, runs: 100 },
  { instances: 2, l3: true, l1Entries: 3, lateMs: 0, runs: 100 },
  { instances: 3, l3: true, l1Entries: 10_000, lateMs: 0, runs: 100 },
  // Every change moves the clock 200 ms here (the late delivery): slower, so fewer runs.
  { instances: 3, l3: false, l1Entries: 10_000, lateMs: 200, runs: 60 }
]

const SEED = Number(process.env.TIERCACHE_MODEL_SEED ?? 20_261_202)

describe("model check", () => {
  it("random operations on 2 and 3 instances agree with a map of the last write", async () => {
    for (const config of CONFIGS) {
      await fc.assert(
        fc.asyncProperty(fc.array(cmd(config), { minLength: 1, maxLength: 60 }), (cmds) =>
          Effect.runPromise(run(config, cmds).pipe(Effect.scoped, Effect.provide(TestContext.TestContext)))
        ),
        { numRuns: config.runs, seed: SEED }
      )
    }
  }, 120_000)
})
