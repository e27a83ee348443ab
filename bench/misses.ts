/**
 * Misses, mixed traffic and a stampede, against the hand-written limits and the peer caches
 * (see contenders.ts), on a redis-server the bench starts:
 * - cold misses: 64 callers, every key new, a 1 ms computation; throughput, p50, p99;
 * - mixed: 64 callers, Zipf (s = 1) keys over 10,000, 90% getOrCompute / 10% set, 1 ms
 *   computation, memory tiers of 1,000 entries;
 * - both beside plain Effect's floor (floors.ts), and that floor doing what tiercache does on
 *   top: each Redis read takes the remaining lifetime with the value, each write tells the other
 *   instances (a PUBLISH with the SET, a subscriber in this process), as README's setup does;
 * - stampede: 1,000 callers at once on one cold key, a 20 ms computation; computations and the
 *   time to the last answer, beside plain Effect's floor (1,000 fibers awaiting one Deferred),
 *   and that floor with the computation forked by the first of the fibers, as a cache's first
 *   caller starts it (the first floor starts it before the fibers), and the same for 1,000
 *   `Effect.runPromise` callers (the floor of tiercache's runPromise row); both of these also
 *   with a Redis read before the computation, as a cache's flight reads its lower tier first.
 * The limit is lru-cache + ioredis GET/SET + a map of one promise per key being computed.
 * tiercache's callers are fibers, and in a second row async functions with `Effect.runPromise`
 * per call; the peers' callers are async functions. Cases alternate in rounds, ratios paired.
 * Run: pnpm bench (or pnpm --filter @tiercache/bench bench:misses)
 */

import type { TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Deferred, Effect } from "effect"
import type { Redis } from "ioredis"
import { LRUCache } from "lru-cache"
import { type Contenders, contenders, tiercacheOf } from "./contenders.js"
import { effectFloorCache } from "./floors.js"
import { count, median, printMachineSpeed } from "./harness.js"
import { callers, interleaveLoad, interleaveRounds, type Load, type LoadCase, pairedRatio } from "./load.js"
import { rate, recordRows, type SummaryRow, time, verdict, x } from "./results.js"
import { payload, rawClient, scriptedBusWrite } from "./workload.js"
import { zipfSequence } from "./zipf.js"

const TTL_MS = 3_600_000
const CALLERS = 64
const COLD_PER_CALLER = count(16, 4)
const MIXED_PER_CALLER = count(32, 16)
const MIXED_KEYS = 10_000
const MIXED_L1 = 1_000
const STAMPEDE = 1_000
const ROUNDS = count(6, 2)
const WARMUP = count(2, 1)

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The hand-written limit: lru-cache, then GET, then one computation per key at a time, then SET. */
const limitCache = (raw: Redis, max: number) => {
  const lru = new LRUCache<string, object>({ max })
  const inflight = new Map<string, Promise<object>>()
  const getOrCompute = (key: string, compute: () => Promise<object>): Promise<object> | object => {
    const hit = lru.get(key)
    if (hit !== undefined) return hit
    const pending = inflight.get(key)
    if (pending !== undefined) return pending
    const flight = (async () => {
      const stored = await raw.get(key)
      if (stored !== null) {
        const value = JSON.parse(stored) as object
        lru.set(key, value)
        inflight.delete(key)
        return value
      }
      const value = await compute()
      // Answered once the memory tier holds it; the key stays in flight until Redis has it.
      lru.set(key, value)
      raw.set(key, JSON.stringify(value), "PX", TTL_MS).finally(() => inflight.delete(key))
      return value
    })()
    inflight.set(key, flight)
    return flight
  }
  const set = (key: string, value: object) => {
    lru.set(key, value)
    return raw.set(key, JSON.stringify(value), "PX", TTL_MS)
  }
  return { getOrCompute, set }
}

/** `count` fibers at once, each running `perCaller` timed operations. */
const fiberCallers = (
  n: number,
  perCaller: number,
  op: (caller: number, i: number) => Effect.Effect<unknown, unknown>,
  record: (ns: number) => void
): Promise<number> =>
  Effect.runPromise(
    Effect.forEach(
      Array.from({ length: n }, (_, c) => c),
      (c) =>
        Effect.gen(function* () {
          for (let i = 0; i < perCaller; i++) {
            const start = performance.now()
            yield* op(c, i)
            record((performance.now() - start) * 1e6)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
  ).then(() => n * perCaller)

/** One operation of a workload, written once per cache in its own style. */
interface Ops {
  readonly limit: (key: string, i: number) => Promise<unknown> | unknown
  readonly tiercache: (key: string, i: number) => Effect.Effect<unknown, unknown>
  /** tiercache for the runPromise case, when it needs an instance of its own (a warm L1 would favour it). */
  readonly tiercachePerCall?: (key: string, i: number) => Effect.Effect<unknown, unknown>
  /** The plain-Effect floor (see effectFloorCache), run by fibers. */
  readonly floor: (key: string, i: number) => Effect.Effect<unknown, unknown>
  /** That floor with tiercache's lifetimes and bus (effectFloorCache's `busWrite`), run by fibers. */
  readonly floorBus: (key: string, i: number) => Effect.Effect<unknown, unknown>
  readonly bento: (key: string, i: number) => Promise<unknown>
  readonly manager: (key: string, i: number) => Promise<unknown>
  readonly cacheable: (key: string, i: number) => Promise<unknown>
}

/** The eight cases of a load row: `op(caller, i)` answers the key and payload index of each call. */
const loadCases = (perCaller: number, ops: Ops, pick: (caller: number, i: number) => [string, number]) => {
  const asyncCase = (name: string, run: (key: string, i: number) => unknown): LoadCase => ({
    name,
    run: (record) =>
      callers(
        CALLERS,
        perCaller,
        async (c, i) => {
          const [key, n] = pick(c, i)
          await run(key, n)
        },
        record
      )
  })
  const fiberCase = (
    name: string,
    run: (key: string, i: number) => Effect.Effect<unknown, unknown>
  ): LoadCase => ({
    name,
    run: (record) =>
      fiberCallers(
        CALLERS,
        perCaller,
        (c, i) => {
          const [key, n] = pick(c, i)
          return run(key, n)
        },
        record
      )
  })
  return [
    asyncCase("limit", ops.limit),
    fiberCase("tiercache, fibers", ops.tiercache),
    asyncCase("tiercache, runPromise per call", (key, n) =>
      Effect.runPromise((ops.tiercachePerCall ?? ops.tiercache)(key, n))
    ),
    asyncCase("BentoCache", ops.bento),
    asyncCase("cache-manager", ops.manager),
    asyncCase("cacheable", ops.cacheable),
    fiberCase("floor: plain Effect, fibers", ops.floor),
    fiberCase("floor with lifetimes and a bus", ops.floorBus)
  ] satisfies ReadonlyArray<LoadCase>
}

/** Prints a load row and answers its summary row. */
const loadRow = (row: string, limitName: string, results: ReadonlyArray<Load>): SummaryRow => {
  const [limit, fiber, perCall, bento, manager, cacheable, floor, floorBus] = results
  const cell = (r: Load | undefined) =>
    `${rate(r!.opsPerSec)} (${x(r!.ratio)}), p50 ${time(r!.p50)}, p99 ${time(r!.p99)}`
  console.log(`\n${row} (ratio: throughput against the limit's, paired per round)`)
  for (const r of results) console.log(`  ${r.name.padEnd(32)} ${cell(r)}`)
  const best = [bento!, manager!, cacheable!].reduce((a, b) => (b.ratio > a.ratio ? b : a))
  const ok = fiber!.ratio >= 1.2 * best.ratio && fiber!.p99 <= best.p99
  return {
    row,
    limit: `${limitName}: ${cell(limit)}; floor, the same in plain Effect run by fibers: ${cell(floor)}; that floor with tiercache's lifetimes and bus (GET with PTTL, SET with a PUBLISH in one script call, a subscriber in this process): ${cell(floorBus)}`,
    tiercache: `fibers ${cell(fiber)}, ${x(pairedRatio(fiber!.rates, floorBus!.rates))} the throughput of the floor with lifetimes and a bus; runPromise ${cell(perCall)}`,
    BentoCache: cell(bento),
    "cache-manager": cell(manager),
    cacheable: cell(cacheable),
    target: verdict(`>= 1.2x best peer's throughput (${best.name}), p99 <= its p99`, ok)
  }
}

const coldMisses = (
  raw: Redis,
  c: Contenders,
  busWrite: (key: string, value: object) => Promise<unknown>
) => {
  let generation = 0
  const limit = limitCache(raw, 10_000)
  const floor = effectFloorCache(raw, 10_000)
  const floorBus = effectFloorCache(raw, 10_000, busWrite)
  const compute = (i: number) => () => sleep(1).then(() => payload(i))
  const ops: Ops = {
    limit: (key, i) => limit.getOrCompute(`raw:${key}`, compute(i)),
    floor: (key, i) => floor.getOrCompute(`floor:${key}`, Effect.as(Effect.sleep(1), payload(i))),
    floorBus: (key, i) => floorBus.getOrCompute(`floorbus:${key}`, Effect.as(Effect.sleep(1), payload(i))),
    tiercache: (key, i) =>
      c.tiercache.getOrCompute(key, Effect.as(Effect.sleep(1), payload(i)), { ttl: "1 hour" }),
    bento: (key, i) => c.bento.getOrSet({ key, factory: compute(i), ttl: "1h" }),
    manager: (key, i) => c.manager.wrap(key, compute(i), TTL_MS),
    cacheable: (key, i) => c.cacheable.getOrSet(key, compute(i), { ttl: TTL_MS })
  }
  return loadCases(COLD_PER_CALLER, ops, () => {
    const n = generation++
    return [`cold:${n}`, n]
  })
}

const mixed = (
  raw: Redis,
  c: Contenders,
  perCall: TieredCache.TieredCache.Service,
  busWrite: (key: string, value: object) => Promise<unknown>
) => {
  const perRound = CALLERS * MIXED_PER_CALLER
  const sequences = Array.from({ length: ROUNDS + WARMUP }, (_, r) =>
    zipfSequence(perRound, MIXED_KEYS, 1, r + 1)
  )
  const limit = limitCache(raw, MIXED_L1)
  const floor = effectFloorCache(raw, MIXED_L1)
  const floorBus = effectFloorCache(raw, MIXED_L1, busWrite)
  const compute = (i: number) => () => sleep(1).then(() => payload(i))
  const isSet = (i: number) => i % 10 === 9
  const tiercacheOp = (cache: TieredCache.TieredCache.Service) => (key: string, i: number) =>
    isSet(i)
      ? cache.set(key, payload(i), { ttl: "1 hour" })
      : cache.getOrCompute(key, Effect.as(Effect.sleep(1), payload(i)), { ttl: "1 hour" })
  const ops: Ops = {
    limit: (key, i) =>
      isSet(i) ? limit.set(`raw:${key}`, payload(i)) : limit.getOrCompute(`raw:${key}`, compute(i)),
    floor: (key, i) =>
      isSet(i)
        ? floor.set(`floor:${key}`, payload(i))
        : floor.getOrCompute(`floor:${key}`, Effect.as(Effect.sleep(1), payload(i))),
    floorBus: (key, i) =>
      isSet(i)
        ? floorBus.set(`floorbus:${key}`, payload(i))
        : floorBus.getOrCompute(`floorbus:${key}`, Effect.as(Effect.sleep(1), payload(i))),
    tiercache: tiercacheOp(c.tiercache),
    tiercachePerCall: tiercacheOp(perCall),
    bento: (key, i) =>
      isSet(i)
        ? c.bento.set({ key, value: payload(i), ttl: "1h" })
        : c.bento.getOrSet({ key, factory: compute(i), ttl: "1h" }),
    manager: (key, i) =>
      isSet(i) ? c.manager.set(key, payload(i), TTL_MS) : c.manager.wrap(key, compute(i), TTL_MS),
    cacheable: (key, i) =>
      isSet(i)
        ? c.cacheable.set(key, payload(i), TTL_MS)
        : c.cacheable.getOrSet(key, compute(i), { ttl: TTL_MS })
  }
  let seq = sequences[0]!
  const cases = loadCases(MIXED_PER_CALLER, ops, (caller, i) => {
    // Caller c takes its own stretch of the round's sequence; the position decides get or set.
    const at = caller * MIXED_PER_CALLER + i
    return [`mixed:${seq[at]!}`, at]
  })
  // Every case reads the same sequence in a round: the case's own round counter picks it.
  return cases.map((base): LoadCase => {
    let round = 0
    return {
      name: base.name,
      run: (record) => {
        seq = sequences[round++ % sequences.length]!
        return base.run(record)
      }
    }
  })
}

interface Stampede {
  readonly ms: number
  readonly computations: number
}

const stampede = (raw: Redis, c: Contenders) => {
  let generation = 0
  let computations = 0
  const limit = limitCache(raw, 10_000)
  const compute = () => {
    computations++
    return sleep(20).then(() => payload(1))
  }
  const effectCompute = Effect.suspend(() => {
    computations++
    return Effect.as(Effect.sleep(20), payload(1))
  })
  const measure = (answerAll: (key: string) => Promise<unknown>) => async (): Promise<Stampede> => {
    computations = 0
    const key = `stampede:${generation++}`
    const start = performance.now()
    await answerAll(key)
    return { ms: performance.now() - start, computations }
  }
  const all = <A>(f: (_: unknown, i: number) => Promise<A> | A) =>
    Promise.all(Array.from({ length: STAMPEDE }, f))
  const everyCaller = { concurrency: "unbounded", discard: true } as const
  const fibers = (f: (_: unknown, i: number) => Effect.Effect<unknown, unknown>) =>
    Effect.runPromise(Effect.forEach(Array.from({ length: STAMPEDE }), f, everyCaller))
  /**
   * The plain-Effect floors' one Deferred: `computed` computes and fills it, `awaited` waits for
   * it; `caller(_, i)` awaits it, caller 0 forking `computed` first, as a cache's first caller
   * starts the computation.
   */
  const oneDeferred = (before: Effect.Effect<unknown> = Effect.void) => {
    const deferred = Effect.runSync(Deferred.make<unknown>())
    const computed = Effect.flatMap(Effect.zipRight(before, effectCompute), (v) =>
      Deferred.succeed(deferred, v)
    )
    const awaited = Deferred.await(deferred)
    const caller = (_: unknown, i: number) =>
      i === 0 ? Effect.zipRight(Effect.fork(computed), awaited) : awaited
    return { computed, awaited, caller }
  }
  return [
    {
      name: "limit: promise map",
      run: measure((key) => all(() => limit.getOrCompute(`raw:${key}`, compute)))
    },
    {
      name: "floor: 1,000 fibers awaiting one Deferred",
      run: measure(() => {
        const { computed, awaited } = oneDeferred()
        return Effect.runPromise(
          Effect.zipRight(
            Effect.fork(computed),
            Effect.forEach(Array.from({ length: STAMPEDE }), () => awaited, everyCaller)
          )
        )
      })
    },
    {
      name: "tiercache, fibers",
      run: measure((key) => fibers(() => c.tiercache.getOrCompute(key, effectCompute, { ttl: "1 hour" })))
    },
    {
      name: "tiercache, runPromise per call",
      run: measure((key) =>
        all(() => Effect.runPromise(c.tiercache.getOrCompute(key, effectCompute, { ttl: "1 hour" })))
      )
    },
    {
      name: "BentoCache",
      run: measure((key) => all(() => c.bento.getOrSet({ key, factory: compute, ttl: "1h" })))
    },
    { name: "cache-manager", run: measure((key) => all(() => c.manager.wrap(key, compute, TTL_MS))) },
    {
      name: "cacheable",
      run: measure((key) => all(() => c.cacheable.getOrSet(key, compute, { ttl: TTL_MS })))
    },
    {
      // The floor above forks the computation before the 1,000 fibers start; a cache cannot: its
      // first caller starts it, after looking the key up, while the other fibers are starting.
      name: "floor: the first fiber forks it (a leader)",
      run: measure(() => fibers(oneDeferred().caller))
    },
    {
      // The leader floor with the computation preceded by a read of the key in Redis (a miss),
      // as a cache's flight reads its lower tier first.
      name: "floor: the first fiber forks it, reading Redis first",
      run: measure((key) => fibers(oneDeferred(Effect.promise(() => raw.get(`floor:${key}`))).caller))
    },
    {
      // The floor of runPromise callers: each call a root fiber awaiting one Deferred, the first
      // forking the computation, as a cache's first caller does.
      name: "floor: 1,000 runPromise awaiting one Deferred",
      run: measure(() => {
        const { caller } = oneDeferred()
        return all((_, i) => Effect.runPromise(caller(_, i)))
      })
    },
    {
      // The same, the computation preceded by a read of the key in Redis (a miss), as a cache's
      // flight reads its lower tier first: the computation then starts once the reply is read,
      // after whatever the event loop does first (a scavenge of the 1,000 callers' fibers).
      name: "floor: that, reading Redis before computing",
      run: measure((key) => {
        const { caller } = oneDeferred(Effect.promise(() => raw.get(`floor:${key}`)))
        return all((_, i) => Effect.runPromise(caller(_, i)))
      })
    }
  ]
}

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const raw = yield* rawClient(server)
  const rows: Array<SummaryRow> = []
  const options = { rounds: ROUNDS, warmup: WARMUP }

  // The floor with a bus publishes on a channel of its own, with a subscriber in this process.
  const busWrite = yield* scriptedBusWrite(server, raw)
  const cold = yield* contenders(server, 10_000, "cold")
  const coldResults = yield* Effect.promise(() => interleaveLoad(coldMisses(raw, cold, busWrite), options))
  rows.push(
    loadRow(`cold misses, ${CALLERS} callers, 1 ms computation`, "lru + GET/SET + promise map", coldResults)
  )
  const coldStats = yield* cold.tiercache.stats
  if (coldStats.computations !== coldStats.misses)
    throw new Error("cold-miss rows found keys they had not written")

  const mix = yield* contenders(server, MIXED_L1, "mixed")
  // The runPromise case gets an instance of its own: the fibers case of the same round reads the
  // same keys first, and would leave them in a shared L1.
  const mixPerCall = yield* tiercacheOf(server, MIXED_L1, "mixed-per-call")
  const mixResults = yield* Effect.promise(() =>
    interleaveLoad(mixed(raw, mix, mixPerCall, busWrite), options)
  )
  rows.push(
    loadRow(
      `mixed: ${CALLERS} callers, Zipf s=1 over ${MIXED_KEYS.toLocaleString("en")} keys, 90% getOrCompute / 10% set, L1 of ${MIXED_L1.toLocaleString("en")}`,
      "lru + GET/SET + promise map",
      mixResults
    )
  )

  const st = yield* contenders(server, 10_000, "stampede")
  const cases = stampede(raw, st)
  const figures = yield* Effect.promise(() => interleaveRounds(cases, options))
  const ms = figures.map((f) => f.map((m) => m.ms))
  const most = figures.map((f) => Math.max(...f.map((m) => m.computations)))
  const cell = (i: number, base = 0, label = "limit") =>
    `${time(median(ms[i]!) * 1e6)} (${x(pairedRatio(ms[i]!, ms[base]!))} ${label}), ${most[i]} computation${most[i] === 1 ? "" : "s"}`
  console.log(`\nstampede: ${STAMPEDE} callers, one cold key, 20 ms computation (time to the last answer)`)
  for (let i = 0; i < cases.length; i++) console.log(`  ${cases[i]!.name.padEnd(42)} ${cell(i)}`)
  const fiberToFloor = pairedRatio(ms[2]!, ms[1]!)
  const perCallToLimit = pairedRatio(ms[3]!, ms[0]!)
  rows.push({
    row: `stampede: ${STAMPEDE.toLocaleString("en")} callers, one cold key, 20 ms computation (time to the last answer)`,
    limit: `promise map: ${cell(0)}; Effect floor (fibers awaiting one Deferred): ${cell(1)}; that floor with the computation forked by the first fiber, as a cache's first caller does: ${cell(7, 1, "floor")}; that with a Redis read (a miss) before the computation, as a cache's flight reads its lower tier: ${cell(8, 1, "floor")}; runPromise callers awaiting one Deferred, the first forking the computation: ${cell(9)}; that floor with a Redis read before the computation: ${cell(10)}`,
    tiercache: `fibers ${cell(2, 1, "floor")}, ${x(pairedRatio(ms[2]!, ms[7]!))} the first-fiber floor, ${x(pairedRatio(ms[2]!, ms[8]!))} that floor with its Redis read; runPromise ${cell(3)}, ${x(pairedRatio(ms[3]!, ms[9]!))} the runPromise floor, ${x(pairedRatio(ms[3]!, ms[10]!))} that floor with its Redis read`,
    BentoCache: cell(4),
    "cache-manager": cell(5),
    cacheable: cell(6),
    target: verdict(
      "runPromise <= 1.3x limit, fibers <= 1.2x floor, one computation",
      perCallToLimit <= 1.3 && fiberToFloor <= 1.2 && most[2] === 1 && most[3] === 1
    )
  })
  recordRows(rows)
  printMachineSpeed()
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer())))
  .then(() => process.exit(0))
  .catch((error) => {
    console.error(error)
    process.exit(1)
  })
