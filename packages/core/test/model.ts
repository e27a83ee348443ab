/**
 * Model check: random sequences of get, getTyped and getMany with a schema that refuses some
 * values (an odd number does not decode: a miss), getMany, set, update, getOrCompute, getOrComputeTyped with that
 * schema (a stored odd number is recomputed and overwritten), getOrCompute by several callers of
 * a computation that fails (the error reaches each, once computed, and is not cached), invalidate,
 * invalidateMany, invalidatePattern, invalidateTag, clear, reads racing an invalidation of
 * their key on one instance, writes racing a computation of their key, two instances' writes of
 * one key landing in the lower tiers in the other order than they were made (the first made
 * held at its instance's gate until the second landed: every instance must then answer the
 * first, which landed last; it catches a receiver keeping its own or a third instance's copy
 * because it was created later), concurrent stampedes
 * (untyped callers, or untyped and typed callers mixed) and clock steps against two or three
 * instances sharing their lower tiers (an L2, or an L2 and an L3 that can lose entries on its
 * own, as an evicting Redis does) and a bus, every read checked against a plain map of the last
 * write. One configuration bounds L1 to fewer entries than there are keys, so reads also go
 * below an L1 that evicted; in another, one instance hears the bus late (ChaosBus); in another,
 * the L2 and the buses share one ordered stream and start writes and publishes at once, as
 * RedisTier and RedisInvalidationBus do, so sets and updates take the one-step write. A write or
 * invalidation counts as complete once its bus messages have been delivered (the test waits
 * for that after each one, moving the clock when a delivery is late).
 *
 * Grace configurations (three: stale-while-revalidate on with l1TtlScale 0.5, or 0.3 over an
 * L3 and an L1 of 3 entries; off with l1TtlScale 1): writes and computations carry a `grace`
 * window, and the map keeps each entry's staleUntil. A read answers the last written value
 * while it is fresh; `get` with allowStale (getStale, untyped or typed) also inside its grace
 * window (expiresAt <= now < staleUntil), never past it nor once it was invalidated;
 * getOrCompute (single, stampede, racing a write) answers it there at once and refreshes it in
 * the background, exactly once (with stale-while-revalidate). graceRace races a refresh
 * against the clock on one instance: a value with a short grace window, a slow computation, a
 * slow L2 write (ChaosTier), and getOrCompute calls (some after dropping the key from that
 * instance's L1, as an LRU eviction would) and gets on every instance while they run; the
 * model follows that instance's flights (which answers at once and which wait, which flight a
 * caller joins, which is superseded once its stale value's window ended) and allows a previous
 * value only while its window lasts and it is not overwritten below. It catches the bug fixed
 * in 694b167 (a caller joining a flight during its lower-tier write got a stale value whose
 * window had ended).
 *
 * Outage configurations (two and three instances over an L2, three over an L2 and an L3):
 * `outage` takes every lower tier down (ChaosTier.fail("all"), the L3 with the L2) and every
 * instance's bus with it (publishes fail, or are lost), runs gets, getManys, sets, updates,
 * getOrComputes, invalidates, invalidateManys, invalidatePatterns and clock steps during it, lets
 * gets read once the tiers answer again (with their data of before the outage), then has each
 * instance's bus report its reconnection, in instance order (the kept changes are replayed, then
 * L1 is cleared). During the outage every write succeeds and its writer reads it back; a read
 * answers what that instance's own L1 may hold (its own writes and computations exactly; for a
 * key it did not touch, the value before the outage or nothing, narrowed by what it read) or
 * misses, never another instance's change; once the tiers answer again, a key the instance
 * changed answers its change, never the tiers' older entry. After the replays every instance
 * reads, for every key, the outage's changes applied in the order they were made over the data
 * before it (a value computed during the outage is not a change: it is gone with the resync).
 * See `outage` for the one window left open (a pattern of one instance against an earlier write
 * of another). The replay is done at the first reconnection, through breakers the outage opened.
 *
 * Runs are deterministic: the seed is fixed (set TIERCACHE_MODEL_SEED to try another; and
 * TIERCACHE_MODEL_CONFIG to an index of CONFIGS to run only that group) and a failure prints
 * its seed and its shrunk command sequence. The groups run in model.0.test.ts to
 * model.2.test.ts (see MODEL_PARTS).
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import { InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosBus, ChaosTier, MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import {
  Cause,
  Context,
  Data,
  Deferred,
  Duration,
  Effect,
  Equal,
  Exit,
  Fiber,
  Layer,
  Option,
  Runtime,
  Schema,
  TestClock,
  TestContext
} from "effect"
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
  /** getTyped with Even: a stored odd number does not decode (a miss, as a gone entry). */
  | { readonly op: "getTyped"; readonly i: number; readonly k: number }
  /** getMany with Even: a stored odd number does not decode (a miss, as a gone entry). */
  | { readonly op: "getManyTyped"; readonly i: number; readonly ks: ReadonlyArray<number> }
  /** A get with `allowStale: true` (untyped, or with Schema.Number): grace configurations only. */
  | { readonly op: "getStale"; readonly i: number; readonly k: number; readonly typed: boolean }
  | {
      readonly op: "set"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
      readonly grace: number
    }
  | {
      readonly op: "update"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
      readonly grace: number
    }
  | {
      readonly op: "compute"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
      readonly grace: number
    }
  /**
   * getOrComputeTyped with Even, computing `v` (even): a stored odd number is a miss, recomputed
   * and overwritten.
   */
  | {
      readonly op: "computeTyped"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly ttl: number
      readonly grace: number
    }
  /**
   * `n` concurrent getOrCompute callers of a computation that fails (configurations without
   * grace: no stale value, so no fail-safe).
   */
  | { readonly op: "computeFail"; readonly i: number; readonly k: number; readonly n: number }
  | {
      readonly op: "stampede"
      readonly i: number
      readonly k: number
      readonly v: number
      readonly n: number
      /** Every other caller reads with Schema.Number (the flight is one, whoever leads it). */
      readonly mixed: boolean
      readonly grace: number
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
      /** The written value (set, update), its TTL and grace (the computation's too). */
      readonly wv: number
      readonly ttl: number
      readonly grace: number
      /** Whether a getOrCompute of the key on instance i follows the write, before `ms` pass. */
      readonly later: boolean
      /** What that later caller's computation answers. */
      readonly lv: number
    }
  | {
      /**
       * Two instances writing one key at once, landing in the other order than they were made:
       * instance i's write (`w1` of `v1`) is made first, its L2 write held until instance j's
       * (`w2` of `v2`, made 1 ms later) has landed; so L2 holds i's value, and after settling
       * every instance must answer it (configurations without `ordered`).
       */
      readonly op: "crossedWrites"
      readonly i: number
      readonly j: number
      readonly k: number
      readonly w1: "set" | "update"
      readonly v1: number
      readonly w2: "set" | "update"
      readonly v2: number
      readonly ttl: number
      readonly grace: number
    }
  | { readonly op: "invalidate"; readonly i: number; readonly k: number }
  | { readonly op: "invalidateMany"; readonly i: number; readonly ks: ReadonlyArray<number> }
  | { readonly op: "invalidatePattern"; readonly i: number; readonly p: number }
  | { readonly op: "readDuringInvalidate"; readonly i: number; readonly k: number; readonly r: number }
  | { readonly op: "invalidateTag"; readonly i: number; readonly g: number }
  | { readonly op: "clear"; readonly i: number }
  | { readonly op: "evictL2"; readonly k: number }
  | { readonly op: "advance"; readonly ms: number }
  | GraceRace
  | Outage

/**
 * Redis down for a while (configurations with `outage` only): every lower tier fails every call
 * (ChaosTier.fail("all"): the L2, and the L3 below it too), and every instance's bus either fails
 * its publishes (`fail`: the change is kept for the bus too) or loses them (`drop`). The steps
 * run during it, each one millisecond after the one before (so that no two changes share a
 * time); then the tiers and the buses heal and each instance's bus reports its reconnection, in
 * instance order, each waited for until the instance has replayed what it kept and cleared its L1.
 * Not in outages: clear and invalidateTag among the steps, and the configuration whose L1 evicts.
 * In both, what an instance answers would hang on its breaker's state (the recovery's gate sits
 * below the breaker: a tag's time read after a clear is answered by the gate while the breaker
 * is closed, and is a miss while the outage holds it open; an L1 that evicted a kept write asks
 * the failing tier through the gate, a miss either way unless a kept clear covers the key),
 * which the model does not follow.
 */
interface Outage {
  readonly op: "outage"
  readonly bus: "fail" | "drop"
  readonly steps: ReadonlyArray<OutageStep>
  /** Gets (instance, key) once the tiers answer again, before any bus reports its reconnection. */
  readonly healed: ReadonlyArray<{ readonly i: number; readonly k: number }>
}
interface OutageStep {
  readonly s:
    | "get"
    | "getMany"
    | "set"
    | "update"
    | "compute"
    | "invalidate"
    | "invalidateMany"
    | "invalidatePattern"
    | "advance"
  readonly i: number
  readonly k: number
  readonly ks: ReadonlyArray<number>
  readonly v: number
  readonly ttl: number
  readonly p: number
  readonly ms: number
}

/**
 * A refresh racing the clock (grace configurations only). Instance w sets key k to v0 (TTL
 * ttl0, grace grace0), every instance reads it once when `warm` (L1 copies, scaled), the clock
 * moves `wait` ms to t0; then instance i calls getOrCompute (computing v in `ms`) and, while the
 * lower tiers' writes take `writeDelay` ms, the steps run at their `at` (ms after t0, in
 * order): a getOrCompute on i (computing lv in lms), the same after dropping k from i's L1 (as
 * an LRU eviction would), or a get (allowStale or not) on any instance j. Every computation
 * here has the TTL RACE_TTL (longer than the race) and grace g. Step times are even and
 * computation times odd (ms after t0), writeDelay even: a step never falls on the moment a
 * computation ends or its lower-tier write lands.
 */
interface GraceRace {
  readonly op: "graceRace"
  readonly i: number
  readonly w: number
  readonly k: number
  readonly v0: number
  readonly ttl0: number
  readonly grace0: number
  readonly warm: boolean
  readonly wait: number
  readonly v: number
  readonly ms: number
  readonly g: number
  readonly writeDelay: number
  readonly steps: ReadonlyArray<RaceStep>
}
interface RaceStep {
  readonly at: number
  readonly r: "compute" | "evictCompute" | "get" | "getStale"
  readonly j: number
  readonly lv: number
  readonly lms: number
}

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
  /**
   * Writes and computations carry a grace window (and getStale, graceRace run): with the
   * cache's `l1TtlScale` and `staleWhileRevalidate`.
   */
  readonly grace?: { readonly l1TtlScale: number; readonly swr: boolean } | undefined
  /** Outages run (see Outage). */
  readonly outage?: boolean | undefined
  /**
   * The L2 and every bus name one ordered stream and start writes and publishes at once
   * (`sequence`, `setThen`, `setNow`, `removeThen`, `removeNow`, `publishNow`, as RedisTier and
   * RedisInvalidationBus on one connection): sets, updates and invalidates take the one-step
   * way (oneStepWrite.ts), invalidateMany sends its messages right after the removal.
   */
  readonly ordered?: boolean | undefined
}

/**
 * `tier` and `buses` on one ordered stream, writing and publishing at once through `runtime`
 * (the test's, with its clock): the shape of RedisTier and RedisInvalidationBus on one
 * connection, over the in-memory doubles.
 */
const onOneStream = (
  tier: Tier.Tier.Service,
  buses: ReadonlyArray<InvalidationBus.InvalidationBus.Service>,
  runtime: Runtime.Runtime<never>
) => {
  const stream = { name: "one stream" }
  const run = Runtime.runCallback(runtime)
  /** A call's failure as the one-step write expects it (a typed error; a defect is a failure too). */
  const failureOf = <E>(exit: Exit.Exit<unknown, E>): E | undefined =>
    Exit.isSuccess(exit)
      ? undefined
      : Option.getOrElse(Cause.failureOption(exit.cause), () => Cause.squash(exit.cause) as E)
  const ordered: Tier.Tier.Service = {
    ...tier,
    callTimeout: Duration.millis(500),
    sequence: stream,
    setThen: (key, entry, then) =>
      Effect.flatMap(Effect.either(tier.set(key, entry)), (written) =>
        Effect.map(then, (value) => [written._tag === "Left" ? written.left : undefined, value] as const)
      ),
    setNow: (key, entry, done) => {
      run(tier.set(key, entry), { onExit: (exit) => done(failureOf(exit)) })
      return true
    },
    removeThen: (keys, then) =>
      Effect.flatMap(Effect.either(tier.remove(keys)), (removed) =>
        Effect.map(then, (value) => [removed._tag === "Left" ? removed.left : undefined, value] as const)
      ),
    removeNow: (keys, done) => {
      run(tier.remove(keys), { onExit: (exit) => done(failureOf(exit)) })
      return true
    }
  }
  const busesNow = buses.map(
    (bus): InvalidationBus.InvalidationBus.Service => ({
      ...bus,
      callTimeout: Duration.millis(500),
      sequence: stream,
      publishNow: (message, done) => run(bus.publish(message), { onExit: (exit) => done(failureOf(exit)) })
    })
  )
  return { tier: ordered, buses: busesNow }
}

/** Runs `calls` at once while the test clock moves 1 ms (their computations take 1 ms); their answers. */
const atOnceOverOneMs = <A, E, R>(calls: ReadonlyArray<Effect.Effect<A, E, R>>) =>
  Effect.all(calls, { concurrency: "unbounded" }).pipe(
    Effect.fork,
    Effect.tap(() => TestClock.adjust(1)),
    Effect.flatMap((f) => f.await),
    Effect.flatten
  )

const cmd = (config: Config): fc.Arbitrary<Cmd> => {
  const i = fc.integer({ min: 0, max: config.instances - 1 })
  // With grace, half the commands on three keys: reads then often meet a key's stale window.
  const k = config.grace
    ? fc.oneof(fc.integer({ min: 0, max: KEYS - 1 }), fc.integer({ min: 0, max: 2 }))
    : fc.integer({ min: 0, max: KEYS - 1 })
  const ks = (minLength: number) => fc.array(k, { minLength, maxLength: 4 })
  const v = fc.integer({ min: 0, max: 1_000_000 })
  // Short TTLs half the time, so that entries often expire between two commands.
  const ttl = fc.oneof(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 3000 }))
  // With grace: none, short or (mostly) long windows, so that reads fall before, inside and
  // after them.
  const grace = config.grace
    ? fc.oneof(
        { arbitrary: fc.constant(0), weight: 1 },
        { arbitrary: fc.integer({ min: 1, max: 300 }), weight: 1 },
        { arbitrary: fc.integer({ min: 1, max: 3000 }), weight: 2 },
        { arbitrary: fc.integer({ min: 1000, max: 20_000 }), weight: 4 }
      )
    : fc.constant(0)
  const commands: Array<fc.Arbitrary<Cmd>> = [
    fc.record({ op: fc.constant("get" as const), i, k }),
    fc.record({ op: fc.constant("getMany" as const), i, ks: ks(1) }),
    fc.record({ op: fc.constant("getManyTyped" as const), i, ks: ks(1) }),
    fc.record({ op: fc.constant("getTyped" as const), i, k }),
    fc.record({ op: fc.constant("set" as const), i, k, v, ttl, grace }),
    fc.record({ op: fc.constant("update" as const), i, k, v, ttl, grace }),
    fc.record({ op: fc.constant("compute" as const), i, k, v, ttl, grace }),
    fc.record({
      op: fc.constant("computeTyped" as const),
      i,
      k,
      v: v.map((n) => n - (n % 2)),
      ttl,
      grace
    }),
    fc.record({
      op: fc.constant("stampede" as const),
      i,
      k,
      v,
      n: fc.integer({ min: 2, max: 20 }),
      mixed: fc.boolean(),
      grace
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
        grace,
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
    fc.record({
      op: fc.constant("readDuringInvalidate" as const),
      i,
      k,
      // 3: a get with allowStale (grace configurations).
      r: fc.integer({ min: 0, max: config.grace ? 3 : 2 })
    }),
    fc.record({ op: fc.constant("invalidateTag" as const), i, g: fc.integer({ min: 0, max: 1 }) }),
    fc.record({ op: fc.constant("clear" as const), i }),
    fc.record({ op: fc.constant("advance" as const), ms: fc.integer({ min: 1, max: 2000 }) })
  ]
  // Only with an L3 below: without one, an entry lost by L2 is lost, and the model cannot say
  // which instances still hold it in L1.
  if (config.l3) commands.push(fc.record({ op: fc.constant("evictL2" as const), k }))
  // Without grace only: with a stale value a failed computation answers it (fail-safe) and keeps
  // it in that instance's L1, which the model's one map does not follow.
  if (!config.grace) {
    commands.push(
      fc.record({ op: fc.constant("computeFail" as const), i, k, n: fc.integer({ min: 1, max: 5 }) })
    )
  }
  // Not on one ordered stream: there the message follows the write on the stream, and a write
  // held below would hold it too.
  if (!config.ordered) {
    const w = fc.constantFrom<"set" | "update">("set", "update")
    commands.push(
      fc
        .record({
          op: fc.constant("crossedWrites" as const),
          i,
          j: i,
          k,
          w1: w,
          v1: v,
          w2: w,
          v2: v,
          ttl,
          grace
        })
        .map((c) => (c.j === c.i ? { ...c, j: (c.i + 1) % config.instances } : c))
    )
  }
  if (config.outage) {
    // Half the steps on three keys: two instances then often change one key in one outage.
    const ok = fc.oneof(fc.integer({ min: 0, max: KEYS - 1 }), fc.integer({ min: 0, max: 2 }))
    commands.push(
      fc.record({
        op: fc.constant("outage" as const),
        bus: fc.constantFrom<Outage["bus"]>("fail", "drop"),
        steps: fc.array(
          fc.record({
            s: fc.constantFrom<OutageStep["s"]>(
              "get",
              "get",
              "getMany",
              "set",
              "set",
              "update",
              "compute",
              "compute",
              "invalidate",
              "invalidateMany",
              "invalidatePattern",
              "advance"
            ),
            i,
            k: ok,
            ks: fc.array(ok, { minLength: 1, maxLength: 4 }),
            v,
            ttl,
            p: fc.integer({ min: 0, max: GLOBS.length - 1 }),
            ms: fc.integer({ min: 1, max: 500 })
          }),
          { minLength: 1, maxLength: 8 }
        ),
        healed: fc.array(fc.record({ i, k: ok }), { maxLength: 4 })
      })
    )
  }
  if (config.grace) {
    commands.push(fc.record({ op: fc.constant("getStale" as const), i, k, typed: fc.boolean() }))
    commands.push(graceRaceArb(i, k, v))
    // More writes, stale reads and clock steps, fewer broad invalidations (a stale read needs a
    // write, time, then a read of that key); graceRace rarer: it moves the clock seconds on,
    // past most other entries' windows.
    const weights: Partial<Record<Cmd["op"], number>> = {
      set: 4,
      compute: 4,
      getStale: 4,
      advance: 4,
      invalidateMany: 1,
      invalidatePattern: 1,
      invalidateTag: 1,
      clear: 1,
      graceRace: 1
    }
    // Each arbitrary gives one op: read it from a sample.
    return fc.oneof(
      ...commands.map((arbitrary) => ({ arbitrary, weight: weights[fc.sample(arbitrary, 1)[0]!.op] ?? 2 }))
    )
  }
  return fc.oneof(...commands)
}

/** The TTL of graceRace's computations: longer than any race lasts, so they stay fresh. */
const RACE_TTL = 30_000

const graceRaceArb = (
  i: fc.Arbitrary<number>,
  k: fc.Arbitrary<number>,
  v: fc.Arbitrary<number>
): fc.Arbitrary<GraceRace> => {
  const odd = (max: number) => fc.integer({ min: 0, max: (max - 1) / 2 }).map((n) => 2 * n + 1)
  const even = (max: number) => fc.integer({ min: 0, max: max / 2 }).map((n) => 2 * n)
  return fc
    .record({
      op: fc.constant("graceRace" as const),
      i,
      w: i,
      k,
      v0: v,
      ttl0: fc.integer({ min: 1, max: 1000 }),
      grace0: fc.integer({ min: 1, max: 2000 }),
      warm: fc.boolean(),
      wait: fc.integer({ min: 0, max: 3500 }),
      v,
      ms: odd(2999),
      g: fc.integer({ min: 0, max: 3000 }),
      // Below the breaker's 1 s call timeout.
      writeDelay: fc.oneof(fc.constant(0), even(900)),
      steps: fc.array(
        fc.record({
          at: even(4000),
          // Near the end of the first computation (where its lower-tier write lands): `d` ms
          // after it, instead of `at`.
          near: fc.boolean(),
          d: fc.integer({ min: -200, max: 1000 }),
          r: fc.constantFrom<RaceStep["r"]>("compute", "evictCompute", "get", "getStale"),
          j: i,
          lv: v,
          lms: odd(999)
        }),
        { minLength: 1, maxLength: 6 }
      )
    })
    .map(({ steps, ...c }) => ({
      ...c,
      steps: steps
        .map(({ at, near, d, ...s }): RaceStep => {
          const t = near ? Math.max(0, c.ms + d) : at
          return { ...s, at: t - (t % 2) }
        })
        .sort((a, b) => a.at - b.at)
    }))
}

const STAMPEDE_TTL = 1000

/** The typed error of computeFail's computation. */
class SourceDown extends Data.TaggedError("SourceDown")<{ readonly k: number }> {}

/**
 * The schema of typed reads that decode some values and not others: an even number decodes, an
 * odd one does not ("a stored value that does not decode is a miss", README, Typed reads).
 */
const Even = Schema.Number.pipe(Schema.filter((n) => n % 2 === 0))

/** The model's entry for a key: the last write (or computation) and its times. */
interface ModelEntry {
  readonly value: number
  readonly expiresAt: number
  readonly staleUntil: number
  readonly createdAt: number
}

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
    const testL2 = yield* TestTier.make()
    // With grace, L2 can be slowed down (graceRace's lower-tier writes); with outages, it fails.
    const l2: Tier.Tier.Service = config.grace || config.outage ? yield* ChaosTier.wrap(testL2) : testL2
    // An outage takes the L3 down with the L2.
    const testL3 = yield* TestTier.make({ name: "l3" })
    const l3: Tier.Tier.Service = config.outage ? yield* ChaosTier.wrap(testL3) : testL3
    const hub = yield* TestBus.makeHub
    // Each instance's bus wraps the hub in a ChaosBus; the last one's delivers `lateMs` late.
    // The shared layer is built afresh for each instance, in order, so each build takes the
    // next bus.
    const buses = yield* Effect.forEach(Array.from({ length: config.instances }), () =>
      ChaosBus.wrap(TestBus.make(hub))
    )
    yield* buses[config.instances - 1]!.delay(config.lateMs)
    const stream = config.ordered ? onOneStream(l2, buses, yield* Effect.runtime<never>()) : undefined
    const busServices: ReadonlyArray<InvalidationBus.InvalidationBus.Service> = stream?.buses ?? buses
    let built = 0
    const bus = Layer.sync(InvalidationBus.InvalidationBus, () => busServices[built++]!)
    const l2Shared = stream?.tier ?? l2
    // Each instance reaches the shared lower tiers through gates of its own: crossedWrites holds
    // one instance's writes of a key there until they open.
    const held: Array<
      { readonly key: string; readonly open: Deferred.Deferred<void>; reached: number } | undefined
    > = []
    const gated = (tier: Tier.Tier.Service, i: number): Tier.Tier.Service =>
      stream !== undefined
        ? tier
        : {
            ...tier,
            set: (key, entry) => {
              const hold = held[i]
              if (hold?.key !== key) return tier.set(key, entry)
              hold.reached++
              return Effect.zipRight(Deferred.await(hold.open), tier.set(key, entry))
            }
          }
    let builtL2 = 0
    let builtL3 = 0
    const l2Layer = Layer.sync(Tier.L2, () => gated(l2Shared, builtL2++))
    const shared = config.l3
      ? Layer.mergeAll(
          l2Layer,
          Layer.sync(Tier.Tiers, () => [gated(l3, builtL3++)]),
          bus
        )
      : Layer.merge(l2Layer, bus)
    // As MultiInstance.make builds them, each with its own L1, kept here (graceRace drops a key
    // from one, as an LRU eviction would).
    const l1s = yield* Effect.forEach(Array.from({ length: config.instances }), () =>
      MemoryTier.make({ maxEntries: config.l1Entries })
    )
    const caches: Array<TieredCache.TieredCache.Service> = []
    for (let i = 0; i < config.instances; i++) {
      const options: TieredCache.Options = config.grace
        ? {
            instanceId: `instance-${i + 1}`,
            l1TtlScale: config.grace.l1TtlScale,
            staleWhileRevalidate: config.grace.swr
          }
        : { instanceId: `instance-${i + 1}` }
      const layer = TieredCache.layer(options).pipe(
        Layer.provide(Layer.merge(Layer.succeed(Tier.L1, l1s[i]!), Layer.fresh(shared)))
      )
      caches.push(Context.get(yield* Layer.build(layer), TieredCache.TieredCache))
    }
    // A failed check can leave computations and slowed writes under way; closing the caches
    // waits for the writes on the clock: move it on first (finalizers run last added first).
    yield* Effect.addFinalizer((exit) => (Exit.isFailure(exit) ? TestClock.adjust("1 minute") : Effect.void))
    // Every key k carries the tag g(k % 2); an entry is valid while it is fresh (before
    // expiresAt), or stale (before staleUntil: expiresAt + its grace) for reads that take stale
    // values, and created after its tag's last invalidation (computed entries are dated from
    // the computation's start). Every tier and every instance's L1 holds the model's entry for a
    // key or nothing (a copy in L1 lives a fraction, l1TtlScale, of its lifetime and grace; a
    // read that finds it past that reads the lower tiers).
    const model = new Map<string, ModelEntry>()
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
    /** Yields until `done()` (fibers under way on the clock's present moment ran), at most 10 000 times. */
    const until = (done: () => boolean, what: string) =>
      Effect.gen(function* () {
        for (let round = 0; round < 10_000; round++) {
          if (done()) return
          yield* Effect.yieldNow()
        }
        return yield* Effect.dieMessage(`${what}: not within 10 000 yields`)
      })
    const valid = (k: number) => {
      const m = model.get(keyOf(k))
      return m !== undefined && m.createdAt > tagTimes[k % 2]! ? m : undefined
    }
    const fresh = (k: number) => {
      const m = valid(k)
      return m !== undefined && now < m.expiresAt ? m : undefined
    }
    /** The entry while a read that takes stale values may answer it (fresh, or in its grace window). */
    const usable = (k: number) => {
      const m = valid(k)
      return m !== undefined && now < m.staleUntil ? m : undefined
    }
    /** Stale, and getOrCompute answers it at once while it refreshes it (stale-while-revalidate). */
    const servedStale = (k: number) =>
      config.grace?.swr === true && fresh(k) === undefined ? usable(k) : undefined
    const expectedOf = (k: number) => {
      const m = fresh(k)
      return m === undefined ? Option.none() : Option.some(m.value)
    }
    /** What a read with Even answers: the fresh value when it decodes, else a miss. */
    const expectedEvenOf = (k: number) => {
      const m = fresh(k)
      return m === undefined || m.value % 2 !== 0 ? Option.none() : Option.some(m.value)
    }
    const computeOn = (i: number, v: number) =>
      Effect.sync(() => {
        computations[i]!++
        return v
      })
    /** The model's entry for a value written or computed now. */
    const entryOf = (v: number, ttl: number, grace: number, createdAt = now): ModelEntry => ({
      value: v,
      expiresAt: now + ttl,
      staleUntil: now + ttl + grace,
      createdAt
    })
    /** The options of a write or computation (grace only in grace configurations). */
    const optionsOf = (k: number, ttl: number, grace: number) =>
      config.grace ? { ttl, grace, tags: [tagOf(k)] } : { ttl, tags: [tagOf(k)] }
    /** Records a set or update of key k in the model, and gives the write's options. */
    const recordWrite = (k: number, v: number, ttl: number, grace: number) => {
      model.set(keyOf(k), entryOf(v, ttl, grace))
      return optionsOf(k, ttl, grace)
    }

    /** Lets the fibers the clock woke run (a computation storing its value, a write landing). */
    const pause = Effect.forEach(Array.from({ length: 50 }), () => Effect.yieldNow(), { discard: true })

    /**
     * graceRace (see GraceRace). The model follows instance i's flights of the key, as README
     * states them (Semantics, getOrCompute and Grace): a getOrCompute at t answers the current
     * value when fresh; inside its grace window (stale-while-revalidate) the stale value at
     * once, starting a refresh when no flight is under way; else it joins the flight under way
     * (its computed value when it ends), unless that flight answered stale and the stale
     * value's window has ended meanwhile: then it computes anew (and the superseded flight's
     * value is never stored nor answered). A flight's value is current on i once its
     * computation ends (in L1, or answered from the flight while its lower-tier write runs),
     * and in the lower tiers `writeDelay` later. A get on another instance (or on i after its
     * L1 copy was dropped) answers what L1 or the lower tiers hold: the current value or the
     * one not yet overwritten below; with allowStale also v0 while its window lasts (another
     * instance's L1 copy, until the message of the refresh's write reaches it). No read may
     * answer v0 past its grace window, nor a superseded flight's value.
     */
    const graceRace = (c: GraceRace) =>
      Effect.gen(function* () {
        const key = keyOf(c.k)
        const i = c.i
        // Past any tag invalidation of this moment: v0 is valid.
        yield* TestClock.adjust(1)
        now += 1
        yield* caches[c.w]!.set(key, c.v0, recordWrite(c.k, c.v0, c.ttl0, c.grace0))
        yield* settle
        if (c.warm) {
          for (let j = 0; j < caches.length; j++) {
            reads[j]!++
            check(c, `warm get on instance ${j}`, yield* caches[j]!.get(key), Option.some(c.v0))
          }
        }
        if (c.wait > 0) yield* TestClock.adjust(c.wait)
        now += c.wait
        const t0 = now
        const old = model.get(key)!
        const before = computations[i]!
        yield* (l2 as ChaosTier.ChaosTier.Service).delay("set", c.writeDelay)

        interface Flight {
          readonly v: number
          readonly start: number
          readonly land: number
          /** When its lower-tier write lands. */
          readonly written: number
          readonly servedStale: boolean
          superseded: boolean
        }
        const flights: Array<Flight> = []
        const entryOfFlight = (f: Flight): ModelEntry => ({
          value: f.v,
          expiresAt: f.land + RACE_TTL,
          staleUntil: f.land + RACE_TTL + c.g,
          createdAt: f.start
        })
        /** The entry of the last stored flight whose `when` passed by t, else v0's. */
        const landed = (t: number, when: "land" | "written"): ModelEntry => {
          for (let n = flights.length - 1; n >= 0; n--) {
            const f = flights[n]!
            if (!f.superseded && f[when] < t) return entryOfFlight(f)
          }
          return old
        }
        /** The flight registered on i at t (the last one started, until its write lands). */
        const active = (t: number) => {
          const f = flights.at(-1)
          return f !== undefined && t < f.written ? f : undefined
        }
        const startFlight = (v: number, t: number, ms: number, servedStale: boolean) => {
          const f: Flight = {
            v,
            start: t,
            land: t + ms,
            written: t + ms + c.writeDelay,
            servedStale,
            superseded: false
          }
          flights.push(f)
          return f
        }
        /** What a getOrCompute on i at t answers, and when (undefined: at once). */
        const computeAt = (
          t: number,
          v: number,
          ms: number
        ): { readonly v: number; readonly at?: number } => {
          const current = landed(t, "land")
          if (t < current.expiresAt) return { v: current.value }
          if (config.grace!.swr && t < current.staleUntil) {
            if (active(t) === undefined) startFlight(v, t, ms, true)
            return { v: current.value }
          }
          const a = active(t)
          if (a !== undefined && !a.servedStale) return { v: a.v, at: a.land }
          if (a !== undefined) a.superseded = true
          const f = startFlight(v, t, ms, false)
          return { v, at: f.land }
        }
        let evictedAt: number | undefined
        const gets: Array<{
          readonly what: string
          readonly fiber: Fiber.RuntimeFiber<Option.Option<unknown>, unknown>
          readonly allowed: ReadonlyArray<Option.Option<unknown>>
        }> = []
        const answers: Array<{
          readonly what: string
          readonly fiber: Fiber.RuntimeFiber<unknown, unknown>
          readonly v: number
        }> = []
        const call = (what: string, v: number, ms: number) =>
          Effect.gen(function* () {
            reads[i]!++
            const expected = computeAt(now, v, ms)
            const fiber = yield* Effect.fork(
              caches[i]!.getOrCompute(
                key,
                Effect.zipRight(Effect.sleep(ms), computeOn(i, v)),
                optionsOf(c.k, RACE_TTL, c.g)
              )
            )
            yield* pause
            const polled = fiber.unsafePoll()
            // At once: the current value, fresh or stale, without waiting for a computation; but
            // a value found fresh in L3 waits for its promotion into L2, whose write may be
            // slowed down (its value is checked at the end). Waiting: not answered before its
            // computation ends.
            if (polled !== null || expected.at !== undefined || !config.l3) {
              check(
                c,
                `${what} at t0+${now - t0}: answered at once`,
                polled === null ? "waits" : Exit.isSuccess(polled) ? { at: polled.value } : "failed",
                expected.at === undefined ? { at: expected.v } : "waits"
              )
            }
            answers.push({ what: `${what} at t0+${now - t0}`, fiber, v: expected.v })
          })

        yield* call("first getOrCompute", c.v, c.ms)
        for (const step of c.steps) {
          const t = t0 + step.at
          if (t > now) {
            yield* TestClock.adjust(t - now)
            now = t
          }
          yield* pause
          if (step.r === "compute" || step.r === "evictCompute") {
            if (step.r === "evictCompute") {
              yield* l1s[i]!.remove([key])
              evictedAt = now
            }
            yield* call(step.r, step.lv, step.lms)
            continue
          }
          const j = step.j
          if (j !== i) yield* delivered(j)
          reads[j]!++
          const allowStale = step.r === "getStale"
          // Forked: a value found in L3 is promoted into L2, whose write may be slowed down.
          const fiber = yield* Effect.fork(caches[j]!.get(key, { allowStale }))
          // i's L1 holds the current value unless dropped since a flight last stored one.
          const refilled =
            evictedAt === undefined ||
            flights.some((f) => !f.superseded && f.land > evictedAt! && f.land < now)
          const visible =
            j === i && refilled ? [landed(now, "land")] : [landed(now, "land"), landed(now, "written")]
          const allowed = visible.map((e) =>
            now < (allowStale ? e.staleUntil : e.expiresAt) ? Option.some<unknown>(e.value) : Option.none()
          )
          if (allowStale && j !== i && now < old.staleUntil) allowed.push(Option.some(old.value))
          gets.push({ what: `${step.r} on instance ${j} at t0+${now - t0}`, fiber, allowed })
          yield* pause
        }
        // Every computation ends and every write lands (a promotion's too).
        const end = Math.max(now + c.writeDelay, ...flights.map((f) => f.written)) + 1
        if (end > now) yield* TestClock.adjust(end - now)
        now = end
        yield* pause
        for (const a of answers) {
          // Every caller answered by now (none waits for a computation the model does not know).
          yield* until(() => a.fiber.unsafePoll() !== null, `${a.what}: answered by the end`)
          check(c, a.what, yield* Fiber.join(a.fiber), a.v)
        }
        for (const r of gets) {
          yield* until(() => r.fiber.unsafePoll() !== null, `${r.what}: answered by the end`)
          const got = yield* Fiber.join(r.fiber)
          check(c, r.what, got, r.allowed.find((a) => Equal.equals(a, got)) ?? r.allowed)
        }
        yield* (l2 as ChaosTier.ChaosTier.Service).delay("set", 0)
        yield* settle
        check(c, "computations on i", computations[i]! - before, flights.length)
        const last = flights.filter((f) => !f.superseded).at(-1)
        if (last !== undefined) model.set(key, entryOfFlight(last))
        for (let j = 0; j < caches.length; j++) {
          reads[j]!++
          check(c, `get on instance ${j} afterwards`, yield* caches[j]!.get(key), expectedOf(c.k))
          reads[j]!++
          const m = usable(c.k)
          check(
            c,
            `get allowStale on instance ${j} afterwards`,
            yield* caches[j]!.get(key, { allowStale: true }),
            m === undefined ? Option.none() : Option.some(m.value)
          )
        }
      })

    /**
     * outage (see Outage). README, Semantics, "Changes made during an outage (auto-recovery)",
     * Bus, and Tier timeouts and circuit breaker: a change made during the outage succeeds (L1
     * took it), is kept, and is replayed once the connection reports ready, before the resync
     * clears L1; a replayed write or removal never replaces an entry created after it, and a
     * replayed pattern removes what it matches, entries written after it included.
     *
     * The model, during the outage: no instance hears another (no message gets through), and no
     * lower tier answers, so a read on instance j answers from j's L1 (or j's kept change) or
     * misses. `cand[j][k]` lists what j's L1 may hold for key k: at the start the model's entry
     * or nothing (the model does not know which instances read it); after j's own write exactly
     * that entry (or nothing, after j's invalidation); after j's computation exactly its value
     * (a computed value is not a change: it is not kept, and is gone with the resync). Each read
     * answers one of them (while fresh and not tag-invalidated; else a miss), and narrows them to
     * those that answer what it read. Both tags' times are read by every instance before the
     * outage (a tagged entry on a key outside the model), as a tag not met is a miss while no
     * lower tier answers. The model's map keeps following the changes, in time order.
     *
     * After the outage, every instance's read of every key answers the model's entry: the
     * changes applied to the lower tiers as they stood, in the order they were made. Instances
     * replay one after the other, each its own changes: a pattern of one instance replayed
     * before an earlier write of another's (made before the pattern, replayed after it) leaves
     * that write in place, which README does not say either way; where that order gives another
     * answer, that answer is allowed too (and all instances must then agree on one).
     */
    const outage = (c: Outage) =>
      Effect.gen(function* () {
        outages++
        const n = caches.length
        // Every change of the outage is later than every entry before it.
        yield* TestClock.adjust(1)
        now += 1
        for (let g = 0; g < 2; g++) {
          yield* caches[0]!.set(`p:tag${g}`, g, { ttl: "1 hour", tags: [tagOf(g)] })
        }
        yield* settle
        for (let j = 0; j < n; j++) {
          for (let g = 0; g < 2; g++) {
            reads[j]!++
            check(c, `tag ${g} read on instance ${j}`, yield* caches[j]!.get(`p:tag${g}`), Option.some(g))
          }
        }
        const chaos = (config.l3 ? [l2, l3] : [l2]) as Array<ChaosTier.ChaosTier.Service>
        const before = new Map(model)
        for (const tier of chaos) yield* tier.fail("all")
        for (const b of buses) yield* c.bus === "fail" ? b.failPublish(true) : b.drop(true)
        const cand: Array<Array<Array<ModelEntry | null>>> = caches.map(() =>
          Array.from({ length: KEYS }, (_, k) => {
            const m = model.get(keyOf(k))
            return m === undefined ? [null] : [m, null]
          })
        )
        /** The changes made, in time order: a key's write (entry) or removal (null), or a pattern. */
        const changes: Array<{
          readonly i: number
          readonly at: number
          readonly k?: number
          readonly entry?: ModelEntry | null
          readonly covers?: (k: number) => boolean
        }> = []
        const answerOf = (k: number, e: ModelEntry | null): Option.Option<unknown> =>
          e !== null && e.createdAt > tagTimes[k % 2]! && now < e.expiresAt
            ? Option.some(e.value)
            : Option.none()
        const allowedOf = (j: number, k: number) => {
          const allowed: Array<Option.Option<unknown>> = []
          for (const e of cand[j]![k]!) {
            const a = answerOf(k, e)
            if (!allowed.some((b) => Equal.equals(a, b))) allowed.push(a)
          }
          return allowed
        }
        /** Checks a read of key k on j and keeps what may have answered it. */
        const observe = (
          step: OutageStep,
          what: string,
          j: number,
          k: number,
          got: Option.Option<unknown>
        ) => {
          const allowed = allowedOf(j, k)
          check(
            c,
            `${what} of ${keyOf(k)} on instance ${j} during the outage (step ${show(step)})`,
            got,
            allowed.find((a) => Equal.equals(a, got)) ?? allowed
          )
          cand[j]![k] = cand[j]![k]!.filter((e) => Equal.equals(answerOf(k, e), got))
        }
        /** The keys each instance changed (kept until it replays). */
        const kept = caches.map(() => new Set<number>())
        const removed = (step: OutageStep, ks: ReadonlyArray<number>) => {
          for (const k of ks) {
            kept[step.i]!.add(k)
            model.delete(keyOf(k))
            cand[step.i]![k] = [null]
            changes.push({ i: step.i, at: now, k, entry: null })
          }
        }
        for (const step of c.steps) {
          yield* TestClock.adjust(step.s === "advance" ? step.ms : 1)
          now += step.s === "advance" ? step.ms : 1
          const cache = caches[step.i]!
          const key = keyOf(step.k)
          switch (step.s) {
            case "advance":
              break
            case "get":
              reads[step.i]!++
              observe(step, "get", step.i, step.k, yield* cache.get(key))
              break
            case "getMany": {
              reads[step.i]! += step.ks.length
              const got = yield* cache.getMany(step.ks.map(keyOf))
              for (let n = 0; n < step.ks.length; n++) observe(step, "getMany", step.i, step.ks[n]!, got[n]!)
              break
            }
            case "set":
            case "update": {
              // Succeeds: L1 took it.
              yield* cache[step.s](key, step.v, recordWrite(step.k, step.v, step.ttl, 0))
              const e = model.get(key)!
              cand[step.i]![step.k] = [e]
              kept[step.i]!.add(step.k)
              changes.push({ i: step.i, at: now, k: step.k, entry: e })
              break
            }
            case "compute": {
              reads[step.i]!++
              const was = computations[step.i]!
              const got = yield* cache.getOrCompute(
                key,
                computeOn(step.i, step.v),
                optionsOf(step.k, step.ttl, 0)
              )
              // Its lower-tier write fails (or is skipped) before the outage ends.
              yield* settle
              const computed = computations[step.i]! - was
              // What L1 holds, when it answers; else a miss, and a computation.
              const allowed = allowedOf(step.i, step.k).map((a) =>
                Option.isSome(a) ? [a.value, 0] : [step.v, 1]
              )
              const pair = [got, computed]
              check(
                c,
                `getOrCompute of ${key} on instance ${step.i} during the outage (step ${show(step)}): value, computations`,
                pair,
                allowed.find((a) => Equal.equals(Data.array(a), Data.array(pair))) ?? allowed
              )
              if (computed === 1) cand[step.i]![step.k] = [entryOf(step.v, step.ttl, 0)]
              else
                cand[step.i]![step.k] = cand[step.i]![step.k]!.filter((e) =>
                  Equal.equals(answerOf(step.k, e), Option.some(got))
                )
              break
            }
            case "invalidate":
              yield* cache.invalidate(key)
              removed(step, [step.k])
              break
            case "invalidateMany":
              yield* cache.invalidateMany(step.ks.map(keyOf))
              removed(step, [...new Set(step.ks)])
              break
            case "invalidatePattern": {
              const { covers, glob } = GLOBS[step.p]!
              yield* cache.invalidatePattern(glob)
              for (let k = 0; k < KEYS; k++) {
                if (!covers(k)) continue
                model.delete(keyOf(k))
                cand[step.i]![k] = [null]
                kept[step.i]!.add(k)
              }
              changes.push({ i: step.i, at: now, covers })
              break
            }
          }
        }
        // Redis is back: the tiers and the buses heal, then each bus reports its reconnection.
        for (const tier of chaos) yield* tier.heal
        for (const b of buses) yield* b.heal
        // Before that, the tiers answer with their data of before the outage (unless a breaker
        // the outage opened still skips them): a key instance j changed answers j's change
        // exactly ("this instance's reads of the lower tiers see it first: an invalidated key is
        // a miss, an updated key answers its new value, whatever an L2 that comes back with
        // older data holds"); another key answers j's L1, the tiers' older entry, or a miss.
        for (const { i: j, k } of c.healed) {
          reads[j]!++
          const got = yield* caches[j]!.get(keyOf(k))
          const allowed = allowedOf(j, k)
          if (!kept[j]!.has(k)) {
            for (const a of [answerOf(k, before.get(keyOf(k)) ?? null), Option.none()]) {
              if (!allowed.some((b) => Equal.equals(a, b))) allowed.push(a)
            }
          }
          check(
            c,
            `get of ${keyOf(k)} on instance ${j} once the tiers answer, before the replay`,
            got,
            allowed.find((a) => Equal.equals(a, got)) ?? allowed
          )
        }
        const reconnect = (j: number) =>
          Effect.gen(function* () {
            const resyncs = (yield* caches[j]!.invalidationStats).resyncs
            yield* buses[j]!.disconnect
            for (let round = 0; round < 1000; round++) {
              const s = yield* caches[j]!.stats
              if (s.pendingChanges === 0 && (yield* caches[j]!.invalidationStats).resyncs > resyncs)
                return true
              yield* pause
            }
            return false
          })
        for (let j = 0; j < n; j++) {
          // The replay is done at the first reconnection, breakers the outage opened included
          // (the first call probes each: probeFirst.ts, recoveryBreakers.test.ts).
          const replayed = yield* reconnect(j)
          if (!replayed) check(c, `instance ${j}: replayed and resynced after the outage`, false, true)
          yield* settle
        }
        /** The lower tiers once `order` was replayed over them (as ifNewer.ts's fallback does). */
        const replayed = (order: typeof changes) => {
          const tiers = new Map(before)
          const gone = (e: ModelEntry | undefined) => e === undefined || now >= e.staleUntil
          for (const ch of order) {
            if (ch.covers !== undefined) {
              for (let k = 0; k < KEYS; k++) if (ch.covers(k)) tiers.delete(keyOf(k))
              continue
            }
            const key = keyOf(ch.k!)
            const held = tiers.get(key)
            if (!gone(held) && held!.createdAt > ch.at) continue
            if (ch.entry !== null && !gone(ch.entry)) tiers.set(key, ch.entry!)
            else tiers.delete(key)
          }
          return tiers
        }
        const inTimeOrder = replayed(changes)
        const byInstance = replayed([...changes].sort((a, b) => a.i - b.i))
        for (let k = 0; k < KEYS; k++) {
          const key = keyOf(k)
          const options = [inTimeOrder.get(key) ?? null, byInstance.get(key) ?? null]
          reads[0]!++
          const got = yield* caches[0]!.get(key)
          const allowed: Array<Option.Option<unknown>> = []
          for (const a of options.map((e) => answerOf(k, e))) {
            if (!allowed.some((b) => Equal.equals(a, b))) allowed.push(a)
          }
          if (allowed.length > 1) ambiguous++
          check(
            c,
            `get of ${key} on instance 0 after the outage`,
            got,
            allowed.find((a) => Equal.equals(a, got)) ?? allowed
          )
          const e = options.find((e) => Equal.equals(answerOf(k, e), got)) ?? null
          if (e === null) model.delete(key)
          else model.set(key, e)
          for (let j = 1; j < n; j++) {
            reads[j]!++
            check(
              c,
              `get of ${key} on instance ${j} after the outage`,
              yield* caches[j]!.get(key),
              expectedOf(k)
            )
          }
        }
      })

    for (const c of cmds) {
      if (c.op === "outage") {
        yield* outage(c)
        continue
      }
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
        case "getManyTyped": {
          // Decoded with Even: each key answers its fresh value when it decodes, else a miss
          // (README, Typed reads; Semantics, What a read accepts: MISS when it does not decode).
          reads[c.i]! += c.ks.length
          const got = yield* cache.getMany(c.ks.map(keyOf), Even)
          check(c, "getMany with Even", got, c.ks.map(expectedEvenOf))
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
      if (c.op === "graceRace") {
        yield* graceRace(c)
        continue
      }
      const key = keyOf(c.k)
      const expected = fresh(c.k)
      // Stale and in its grace window: getOrCompute answers it at once and refreshes it.
      const stale = servedStale(c.k)
      switch (c.op) {
        case "get": {
          reads[c.i]!++
          const got = yield* cache.get(key)
          check(c, "get", got, expectedOf(c.k))
          break
        }
        case "getTyped": {
          // Decoded with Even: the fresh value when it decodes, else a miss (README, Typed reads).
          reads[c.i]!++
          check(c, "getTyped with Even", yield* cache.getTyped(key, Even), expectedEvenOf(c.k))
          break
        }
        case "getStale": {
          // Fresh or stale (inside its grace window), never past it nor invalidated.
          reads[c.i]!++
          const got = c.typed
            ? yield* cache.getTyped(key, Schema.Number, { allowStale: true })
            : yield* cache.get(key, { allowStale: true })
          const m = usable(c.k)
          check(c, "get allowStale", got, m === undefined ? Option.none() : Option.some(m.value))
          break
        }
        case "set":
          yield* cache.set(key, c.v, recordWrite(c.k, c.v, c.ttl, c.grace))
          yield* settle
          break
        case "update":
          // Writes every tier and broadcasts the value: the other instances' L1 hold it (for the
          // same TTL, the message arriving at once) instead of dropping their copy. The model is
          // the same as set's.
          yield* cache.update(key, c.v, recordWrite(c.k, c.v, c.ttl, c.grace))
          yield* settle
          break
        case "compute":
        case "computeTyped": {
          // getOrComputeTyped (Even): README, Typed reads: a value that does not decode is a
          // miss, and getOrComputeTyped recomputes and overwrites it; Semantics, What a read
          // accepts: a STALE entry is answered under stale-while-revalidate only once it decodes
          // (an odd one is a MISS).
          const typed = c.op === "computeTyped"
          const decodes = (value: number) => !typed || value % 2 === 0
          reads[c.i]!++
          const before = computations[c.i]!
          const options = optionsOf(c.k, c.ttl, c.grace)
          const got = typed
            ? yield* cache.getOrComputeTyped(key, Even, computeOn(c.i, c.v), options)
            : yield* cache.getOrCompute(key, computeOn(c.i, c.v), options)
          if (expected !== undefined && decodes(expected.value)) {
            check(c, "value, computations", [got, computations[c.i]! - before], [expected.value, 0])
          } else if (expected === undefined && stale !== undefined && decodes(stale.value)) {
            // The stale value at once; the refresh runs in the background, once.
            check(c, "stale value", got, stale.value)
            yield* settle
            check(c, "refreshes", computations[c.i]! - before, 1)
            model.set(key, entryOf(c.v, c.ttl, c.grace))
          } else {
            check(c, "value, computations", [got, computations[c.i]! - before], [c.v, 1])
            model.set(key, entryOf(c.v, c.ttl, c.grace))
          }
          yield* settle
          break
        }
        case "computeFail": {
          // README, Single flight: "Errors reach every waiter and are not cached". A fresh value
          // answers every caller without a computation; otherwise one computation (1 ms) runs for
          // all of them, each gets its error, and nothing changes: the model keeps its entry.
          reads[c.i]! += c.n
          const before = computations[c.i]!
          const failing = computeOn(c.i, 0).pipe(
            Effect.delay("1 millis"),
            Effect.zipRight(Effect.fail(new SourceDown({ k: c.k })))
          )
          const got = yield* atOnceOverOneMs(
            Array.from({ length: c.n }, () =>
              Effect.either(cache.getOrCompute(key, failing, optionsOf(c.k, STAMPEDE_TTL, 0)))
            )
          )
          now += 1
          const answers = got.map((e) => (e._tag === "Right" ? { value: e.right } : { error: e.left }))
          check(
            c,
            "answers, computations",
            [answers, computations[c.i]! - before],
            expected !== undefined
              ? [got.map(() => ({ value: expected.value })), 0]
              : [got.map(() => ({ error: new SourceDown({ k: c.k }) })), 1]
          )
          yield* settle
          break
        }
        case "stampede": {
          reads[c.i]! += c.n
          const before = computations[c.i]!
          const options = optionsOf(c.k, STAMPEDE_TTL, c.grace)
          const got = yield* atOnceOverOneMs(
            Array.from({ length: c.n }, (_, j): Effect.Effect<unknown, unknown> => {
              const computation = computeOn(c.i, c.v).pipe(Effect.delay("1 millis"))
              return c.mixed && j % 2 === 1
                ? cache.getOrComputeTyped(key, Schema.Number, computation, options)
                : cache.getOrCompute(key, computation, options)
            })
          )
          now += 1
          if (expected === undefined && stale === undefined) {
            // Missing: exactly one computation (stored 1 ms later) for all the callers.
            check(c, "values, computations", [got, computations[c.i]! - before], [got.map(() => c.v), 1])
            model.set(key, entryOf(c.v, STAMPEDE_TTL, c.grace, now - 1))
          } else if (expected === undefined) {
            // Stale: every caller gets the stale value at once; one refresh (stored 1 ms later).
            check(
              c,
              "stale values",
              got,
              got.map(() => stale!.value)
            )
            yield* settle
            check(c, "refreshes", computations[c.i]! - before, 1)
            model.set(key, entryOf(c.v, STAMPEDE_TTL, c.grace, now - 1))
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
          // anew". So: the caller that started the computation gets the computed value (or,
          // with grace, the stale value at once, the computation being its refresh); from the
          // write on, the model holds the write's value (none for an invalidation), so no later
          // read on any instance may answer the computed value; a getOrCompute on i after the
          // write answers the written value, or (after an invalidation) runs a computation of
          // its own rather than wait for the detached one. Afterwards every instance agrees
          // with the model.
          reads[c.i]!++
          const before = computations[c.i]!
          const started = yield* Deferred.make<void>()
          let began = false
          const slow = Deferred.succeed(started, undefined).pipe(
            Effect.tap(() => {
              began = true
            }),
            Effect.zipRight(Effect.sleep(c.ms)),
            Effect.zipRight(computeOn(c.i, c.v))
          )
          const options = optionsOf(c.k, c.ttl, c.grace)
          const first = yield* Effect.fork(cache.getOrCompute(key, slow, options))
          // A fresh value answers the first caller at once; only a miss computes (and waits); a
          // stale value answers at once and its refresh computes.
          const computing = expected === undefined
          if (stale !== undefined) {
            // Both at once, without the clock moving.
            yield* until(() => first.unsafePoll() !== null && began, "stale value answered, refresh started")
          } else {
            const startedFirst = yield* Effect.raceFirst(
              Effect.as(Deferred.await(started), true),
              Effect.as(Fiber.await(first), false)
            )
            check(c, "first caller computing", startedFirst, computing)
          }
          const writer = caches[c.w]!
          if (c.write === "invalidate") {
            yield* writer.invalidate(key)
            model.delete(key)
          } else {
            yield* writer[c.write](key, c.wv, recordWrite(c.k, c.wv, c.ttl, c.grace))
          }
          if (c.w !== c.i) yield* delivered(c.i)
          let computedLater = 0
          if (c.later && computing) {
            reads[c.i]!++
            const after = fresh(c.k)
            const got = yield* cache.getOrCompute(key, computeOn(c.i, c.lv), options)
            if (after !== undefined) {
              check(c, "later caller", got, after.value)
            } else {
              check(c, "later caller", got, c.lv)
              model.set(key, entryOf(c.lv, c.ttl, c.grace))
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
            [computing ? (stale?.value ?? c.v) : expected!.value, (computing ? 1 : 0) + computedLater]
          )
          yield* settle
          for (let j = 0; j < caches.length; j++) {
            reads[j]!++
            const after = yield* caches[j]!.get(key)
            check(c, `get on instance ${j} afterwards`, after, expectedOf(c.k))
          }
          break
        }
        case "crossedWrites": {
          // i's write is made first; its L2 write waits at i's gate (L1 written, the write under
          // way) while j's write, made 1 ms later, lands and tells the others; then i's lands,
          // last, and tells them. L2 holds i's value: every instance must answer it (or, once
          // it expired, nothing), whatever the dates say.
          const open = yield* Deferred.make<void>()
          const hold = { key, open, reached: 0 }
          held[c.i] = hold
          const options = optionsOf(c.k, c.ttl, c.grace)
          const writeOn = (n: number, w: "set" | "update", v: number) =>
            w === "set" ? caches[n]!.set(key, v, options) : caches[n]!.update(key, v, options)
          const first = yield* Effect.fork(writeOn(c.i, c.w1, c.v1))
          const created = now
          yield* pause
          // Held at every lower tier, before the clock moved.
          check(c, "writes held", hold.reached, config.l3 ? 2 : 1)
          yield* TestClock.adjust(1)
          now += 1
          yield* writeOn(c.j, c.w2, c.v2)
          yield* Deferred.succeed(open, undefined)
          yield* Fiber.join(first)
          held[c.i] = undefined
          // i's entry, made (and its lifetime counted) before the clock moved.
          model.set(key, {
            value: c.v1,
            expiresAt: created + c.ttl,
            staleUntil: created + c.ttl + c.grace,
            createdAt: created
          })
          yield* settle
          for (let n = 0; n < caches.length; n++) {
            reads[n]!++
            check(c, `get on instance ${n}`, yield* caches[n]!.get(key), expectedOf(c.k))
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
          // the value before the invalidation (fresh, or with allowStale inside its grace
          // window) or nothing; afterwards every read agrees with the model (no tier kept the
          // old value).
          reads[c.i]!++
          const read: Effect.Effect<Option.Option<unknown>, unknown> = c.r === 0
            ? cache.get(key)
            : c.r === 1
              ? Effect.map(cache.getMany([key]), (found) => found[0]!)
              : c.r === 2
                ? cache.getTyped(key, Schema.Number)
                : cache.get(key, { allowStale: true })
          const before = c.r === 3 ? usable(c.k) : expected
          const [got] = yield* Effect.all([read, cache.invalidate(key)], { concurrency: "unbounded" })
          const allowed = [Option.none(), ...(before === undefined ? [] : [Option.some(before.value)])]
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
 * and an L3 with an L1 of 3 entries for 10 keys, three over an L2 and an L3, three over an L2
 * and buses on one ordered stream (the one-step write), and three over an
 * L2 whose last instance hears the bus 200 ms late; then the grace groups (longer sequences,
 * fewer runs).
 */
const CONFIGS: ReadonlyArray<Config> = [
  { instances: 2, l3: false, l1Entries: 10_000, lateMs: 0, runs: 100, outage: true },
  { instances: 3, l3: false, l1Entries: 10_000, lateMs: 0, runs: 100, outage: true },
  { instances: 2, l3: true, l1Entries: 3, lateMs: 0, runs: 100 },
  { instances: 3, l3: true, l1Entries: 10_000, lateMs: 0, runs: 100, outage: true },
  // An L2 and buses on one ordered stream, writing at once: sets and updates in one step.
  { instances: 3, l3: false, l1Entries: 10_000, lateMs: 0, runs: 60, outage: true, ordered: true },
  // Every change moves the clock 200 ms here (the late delivery): slower, so fewer runs.
  { instances: 3, l3: false, l1Entries: 10_000, lateMs: 200, runs: 60 },
  // Grace windows, L1 copies kept half their lifetime, stale-while-revalidate (the default).
  { instances: 2, l3: false, l1Entries: 10_000, lateMs: 0, runs: 25, grace: { l1TtlScale: 0.5, swr: true } },
  // The same over an L2 and an L3, an L1 of 3 entries, L1 copies kept 0.3 of their lifetime.
  { instances: 3, l3: true, l1Entries: 3, lateMs: 0, runs: 15, grace: { l1TtlScale: 0.3, swr: true } },
  // Grace without stale-while-revalidate: only get's allowStale takes stale values.
  { instances: 2, l3: false, l1Entries: 10_000, lateMs: 0, runs: 8, grace: { l1TtlScale: 1, swr: false } }
]

const SEED = Number(process.env.TIERCACHE_MODEL_SEED ?? 20_261_202)

/** Outages run, reconnections that needed a probe read, and keys where either order was allowed. */
let outages = 0
let ambiguous = 0

/**
 * The files that run the check: model.N.test.ts runs the groups whose index in CONFIGS leaves N
 * modulo MODEL_PARTS, one test each, so that the files run beside one another (a group's runs
 * wait on the TestClock's real timers about as long as they compute). Every group is in one file.
 */
export const MODEL_PARTS = 3

/** Registers the model check of the groups of part `part` (see MODEL_PARTS). */
export const modelCheck = (part: number) =>
  describe("model check", () => {
    const only = process.env.TIERCACHE_MODEL_CONFIG
    for (const [index, config] of CONFIGS.entries()) {
      if (index % MODEL_PARTS !== part) continue
      it.skipIf(only !== undefined && Number(only) !== index)(
        `group ${index}: random operations on ${config.instances} instances agree with a map of the last write`,
        async () => {
          await fc.assert(
            fc.asyncProperty(
              // Longer sequences with grace (fewer runs): a key's window spans several commands.
              fc.array(cmd(config), { minLength: 1, maxLength: 60, size: config.grace ? "medium" : "small" }),
              (cmds) =>
                Effect.runPromise(
                  run(config, cmds).pipe(Effect.scoped, Effect.provide(TestContext.TestContext))
                )
            ),
            { numRuns: config.runs, seed: SEED }
          )
          // Shrinking a failure takes longer than a passing run (about 30 s).
        },
        600_000
      )
    }
    afterAll(() => {
      if (process.env.TIERCACHE_MODEL_DEBUG !== undefined) {
        // biome-ignore lint/suspicious/noConsole: asked for with TIERCACHE_MODEL_DEBUG
        console.log(`outages ${outages}, keys either order ${ambiguous}`)
      }
    })
  })
