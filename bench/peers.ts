/**
 * tiercache against peer caches for Node, each set up as a two-tier cache (memory in front of
 * the same redis-server, started by the bench), each read through its own API with the same
 * payloads: BentoCache (memory driver + Redis driver on ioredis with auto-pipelining),
 * cache-manager 7 (Keyv over CacheableMemory + @keyv/redis) and cacheable (Keyv over
 * CacheableMemory as primary, KeyvRedis as secondary). The first row of each table is
 * tiercache; the ratios are the others' time against it (above 1.00x: slower than tiercache).
 * The raw baselines (lru-cache get, ioredis GET) come last and feed the summary table; the
 * L2 reads have a floor after them too: GET and PTTL in one write, the value with its remaining
 * lifetime, which tiercache reads (RedisTier: a lifetime from Redis's countdown), and that floor
 * awaited by fibers (`Effect.promise`; one fiber for one caller, 256 for 256 callers), what
 * Effect itself adds to a read that tiercache's fibers make (as the set row's floor in one
 * fiber, writes.ts).
 *
 * L1 hit: one call after another (`Effect.runPromise` per call for tiercache, since the peers'
 * reads return promises; a loop in one fiber is shown too). L2 hit: a memory tier of one entry
 * in front, keys read round robin; one caller, and 256 concurrent callers (fibers for
 * tiercache, async functions for the peers).
 * Run: pnpm --filter @tiercache/bench bench:peers
 */
import { RedisServer } from "@tiercache/testing"
import { Effect } from "effect"
import { LRUCache } from "lru-cache"
import { checkAnswers, contenders } from "./contenders.js"
import {
  bench,
  type Case,
  count,
  interleave,
  interleaveLatency,
  type LatencyCase,
  printMachineSpeed,
  report
} from "./harness.js"
import { recordRows, type SummaryRow, time, verdict, x } from "./results.js"
import {
  asyncCallers,
  CONCURRENCY,
  fiberCallers,
  KEYS,
  PER_CALLER,
  payload,
  rawClient,
  timedFiberReads,
  timedReads
} from "./workload.js"

const ROUNDS = count(20, 3)

/** The peer caches without a bus (reads only), each holding `KEYS` keys it answers correctly. */
const caches = (server: RedisServer.RedisServer.Service, l1Entries: number, namespace: string) =>
  Effect.gen(function* () {
    const c = yield* contenders(server, l1Entries, namespace, { bus: false })
    const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)
    for (let i = 0; i < KEYS; i++) {
      yield* c.tiercache.set(keys[i]!, payload(i), { ttl: "1 hour" })
      yield* Effect.promise(() => c.bento.set({ key: keys[i]!, value: payload(i), ttl: "1h" }))
      yield* Effect.promise(() => c.manager.set(keys[i]!, payload(i), 3_600_000))
      yield* Effect.promise(() => c.cacheable.set(keys[i]!, payload(i), 3_600_000))
    }
    // Each cache answers with what was written, so every row below reads real values.
    yield* checkAnswers(c, keys[7]!, payload(7))
    return { ...c, keys }
  })

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer

  // ---- L1 hit ----------------------------------------------------------------------------
  {
    const { tiercache, bento, manager, cacheable, keys } = yield* caches(server, 10_000, "l1")
    const lru = new LRUCache<string, object>({ max: 10_000 })
    for (let i = 0; i < KEYS; i++) lru.set(keys[i]!, payload(i))
    let n = 0
    const next = () => keys[n++ % 1024]!
    const LOOP = 1000
    const inFiber = Effect.gen(function* () {
      for (let i = 0; i < LOOP; i++) yield* tiercache.get(next())
    })
    const rows = yield* Effect.promise(async () => [
      await bench("tiercache get, Effect.runPromise per call", () =>
        Effect.runPromise(tiercache.get(next()))
      ),
      await bench("BentoCache get", () => bento.get({ key: next() })),
      await bench("cache-manager get", () => manager.get(next())),
      await bench("cacheable get", () => cacheable.get(next())),
      await bench("tiercache get, in one fiber", () => Effect.runSync(inFiber), LOOP),
      await bench("raw lru-cache get", () => lru.get(next()))
    ])
    report("L1 hit, one call at a time (ratio: time against tiercache)", rows[0]!, rows.slice(1))
    const [perCall, bentoL1, managerL1, cacheableL1, fiberL1, rawL1] = rows
    const cell = (r: typeof perCall) => `${time(r!.nsPerOp)} (${x(r!.nsPerOp / rawL1!.nsPerOp)})`
    recordRows([
      {
        row: "L1 hit, one call at a time (median time per call)",
        limit: `raw lru-cache get: ${time(rawL1!.nsPerOp)}`,
        tiercache: `runPromise per call ${cell(perCall)}; in one fiber ${cell(fiberL1)}`,
        BentoCache: cell(bentoL1),
        "cache-manager": cell(managerL1),
        cacheable: cell(cacheableL1),
        target: verdict(
          "runPromise per call ahead of every peer",
          perCall!.nsPerOp < Math.min(bentoL1!.nsPerOp, managerL1!.nsPerOp, cacheableL1!.nsPerOp)
        )
      }
    ])
  }

  // ---- L2 hit ----------------------------------------------------------------------------
  const { tiercache, bento, manager, cacheable, keys } = yield* caches(server, 1, "l2")
  const raw = yield* rawClient(server)
  for (let i = 0; i < KEYS; i++)
    yield* Effect.promise(() => raw.set(`raw:${keys[i]!}`, JSON.stringify(payload(i))))
  const rawGet = async (key: string) => {
    const stored = await raw.get(`raw:${key}`)
    return stored === null ? undefined : JSON.parse(stored)
  }
  // The floor of a read that also learns the value's remaining lifetime, as tiercache does (a
  // lifetime from Redis's countdown, whatever the clocks of the machines): GET and PTTL sent
  // together (auto-pipelined into one write).
  for (let i = 0; i < KEYS; i++) yield* Effect.promise(() => raw.pexpire(`raw:${keys[i]!}`, 3_600_000))
  const floorGet = async (key: string) => {
    const [stored] = await Promise.all([raw.get(`raw:${key}`), raw.pttl(`raw:${key}`)])
    return stored === null ? undefined : JSON.parse(stored)
  }
  let n = 0
  const next = () => keys[n++ % KEYS]!
  const tiercacheGet = (key: string) => tiercache.get(key)
  const runPromise = (key: string) => Effect.runPromise(tiercache.get(key))
  const bentoGet = (key: string) => bento.get({ key })
  const managerGet = (key: string) => manager.get(key)
  const cacheableGet = (key: string) => cacheable.get(key)
  const one: ReadonlyArray<LatencyCase> = [
    { name: "tiercache get, in one fiber", run: (record) => timedFiberReads(next, tiercacheGet, record) },
    { name: "tiercache get, runPromise per read", run: (record) => timedReads(next, runPromise, record) },
    { name: "BentoCache get", run: (record) => timedReads(next, bentoGet, record) },
    { name: "cache-manager get", run: (record) => timedReads(next, managerGet, record) },
    { name: "cacheable get", run: (record) => timedReads(next, cacheableGet, record) },
    { name: "raw ioredis GET + JSON.parse", run: (record) => timedReads(next, rawGet, record) },
    { name: "floor: GET and PTTL + JSON.parse", run: (record) => timedReads(next, floorGet, record) },
    {
      name: "floor, awaited in one fiber",
      run: (record) => timedFiberReads(next, (key) => Effect.promise(() => floorGet(key)), record)
    }
  ]
  const total = CONCURRENCY * PER_CALLER
  const many: ReadonlyArray<Case> = [
    {
      name: `tiercache get, ${CONCURRENCY} caller fibers`,
      ops: total,
      run: () => fiberCallers(next, tiercacheGet)
    },
    {
      name: `tiercache get, ${CONCURRENCY} callers, runPromise per read`,
      ops: total,
      run: () => asyncCallers(next, runPromise)
    },
    { name: `BentoCache get, ${CONCURRENCY} callers`, ops: total, run: () => asyncCallers(next, bentoGet) },
    {
      name: `cache-manager get, ${CONCURRENCY} callers`,
      ops: total,
      run: () => asyncCallers(next, managerGet)
    },
    {
      name: `cacheable get, ${CONCURRENCY} callers`,
      ops: total,
      run: () => asyncCallers(next, cacheableGet)
    },
    {
      name: `raw ioredis GET + JSON.parse, ${CONCURRENCY} callers`,
      ops: total,
      run: () => asyncCallers(next, rawGet)
    },
    {
      name: `floor: GET and PTTL + JSON.parse, ${CONCURRENCY} callers`,
      ops: total,
      run: () => asyncCallers(next, floorGet)
    },
    {
      name: `floor, ${CONCURRENCY} fibers`,
      ops: total,
      run: () => fiberCallers(next, (key) => Effect.promise(() => floorGet(key)))
    }
  ]
  const oneRows = yield* Effect.promise(() => interleaveLatency(one, { rounds: ROUNDS, warmup: 2 }))
  const manyRows = yield* Effect.promise(() => interleave(many, { rounds: ROUNDS, warmup: 2 }))
  report(
    "L2 hit, one caller (per op: median latency; ratio: against tiercache)",
    oneRows[0]!,
    oneRows.slice(1)
  )
  report(
    `L2 hit, ${CONCURRENCY} concurrent callers (ratio: time per read against tiercache)`,
    manyRows[0]!,
    manyRows.slice(1)
  )
  // Summary rows: ratios against raw ioredis (the sixth case), from the medians.
  const l2Row = (
    row: string,
    limit: string,
    rs: ReadonlyArray<{ readonly nsPerOp: number }>,
    fibers: string
  ): SummaryRow => {
    const [fiber, perCall, b, m, c, r, floor, fiberFloor] = rs
    const cell = (v: { readonly nsPerOp: number } | undefined) =>
      `${time(v!.nsPerOp)} (${x(v!.nsPerOp / r!.nsPerOp)})`
    return {
      row,
      limit: `${limit}: ${time(r!.nsPerOp)}${
        floor === undefined
          ? ""
          : `; floor, the value with its remaining lifetime (GET and PTTL in one write + JSON.parse): ${cell(floor)}`
      }${fiberFloor === undefined ? "" : `; that floor awaited in ${fibers}: ${cell(fiberFloor)}`}`,
      tiercache: `in fibers ${cell(fiber)}; runPromise per read ${cell(perCall)}`,
      BentoCache: cell(b),
      "cache-manager": cell(m),
      cacheable: cell(c),
      target: verdict(
        "fibers ahead of every peer",
        fiber!.nsPerOp < Math.min(b!.nsPerOp, m!.nsPerOp, c!.nsPerOp)
      )
    }
  }
  recordRows([
    l2Row("L2 hit, one caller (median latency)", "raw ioredis GET + JSON.parse", oneRows, "one fiber"),
    l2Row(
      `L2 hit, ${CONCURRENCY} concurrent callers (time per read)`,
      "raw ioredis, auto-pipelining",
      manyRows,
      `${CONCURRENCY} fibers`
    )
  ])
  printMachineSpeed()
  const stats = yield* tiercache.stats
  if (stats.misses !== 0 || stats.l2Hits === 0) throw new Error("benchmark left the L2 hit path")
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer())))
  .then(() => process.exit(0))
  .catch((error) => {
    console.error(error)
    process.exit(1)
  })
