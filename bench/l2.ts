/**
 * L2 hit path (L1 empty): TieredCache.get served by RedisTier against raw ioredis GET +
 * JSON.parse (auto-pipelining on), on a redis-server the bench starts on a free port.
 *
 * One caller: reads one after another. 256 concurrent callers: 256 callers that each read
 * one key after another, all at once — for raw ioredis 256 async functions, for tiercache 256
 * fibers (as an Effect service's request fibers call it). Informational rows show the raw read
 * run as an Effect (`floor`: what any Effect-based cache pays to suspend and resume its caller)
 * and a fresh `Effect.runPromise` per read (which adds the cost of starting a fiber per read).
 *
 * Cases are measured in alternating rounds, each ratio paired with the baseline of its round
 * (see harness.ts). Runs on the packages compiled to JavaScript (see build.mjs).
 * Run: pnpm bench (or pnpm --filter @tiercache/bench bench:l2)
 */
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisTier } from "@tiercache/redis"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import {
  type Case,
  count,
  interleave,
  interleaveLatency,
  type LatencyCase,
  printMachineSpeed,
  report
} from "./harness.js"
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

/** Short rounds, many of them: the finer the cases alternate, the less drift reaches a ratio. */
const ROUNDS = count(30, 3)
const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`)

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const raw = yield* rawClient(server)
  // L1 holds one entry: with keys read round robin, every read misses L1 and hits Redis.
  const context = yield* Layer.build(
    TieredCache.layer({ metricsInterval: "1 hour" }).pipe(
      Layer.provide(MemoryTier.layer({ maxEntries: 1 })),
      Layer.provide(RedisTier.layer()),
      Layer.provide(RedisConnection.layer({ url: server.url }))
    )
  )
  const cache = Context.get(context, TieredCache.TieredCache)
  for (let i = 0; i < KEYS; i++) yield* cache.set(keys[i]!, payload(i), { ttl: "1 hour" })

  let n = 0
  const next = () => keys[n++ % KEYS]!
  // RedisTier stores `<keyPrefix><key>` (default prefix "tiercache:"): the raw read reads the
  // same Redis keys, and must find them, or the baseline would time misses.
  const rawGet = async (key: string) => {
    const s = await raw.get(`tiercache:${key}`)
    return s === null ? undefined : JSON.parse(s)
  }
  for (const key of keys) {
    if ((yield* Effect.promise(() => rawGet(key))) === undefined) {
      return yield* Effect.dieMessage(`raw read of ${key} found nothing: the baseline would time misses`)
    }
  }
  const floorGet = (key: string) => Effect.promise(() => rawGet(key))
  const cacheGet = (key: string) => cache.get(key)

  const runPromise = (key: string) => Effect.runPromise(cacheGet(key))
  const one: ReadonlyArray<LatencyCase> = [
    {
      name: "raw ioredis GET + JSON.parse, one at a time",
      run: (record) => timedReads(next, rawGet, record)
    },
    {
      name: "TieredCache.get, one at a time, in one fiber",
      run: (record) => timedFiberReads(next, cacheGet, record)
    },
    {
      name: "floor: raw read as Effect.promise, in one fiber",
      run: (record) => timedFiberReads(next, floorGet, record)
    },
    {
      name: "TieredCache.get, one at a time, runPromise per read",
      run: (record) => timedReads(next, runPromise, record)
    }
  ]
  const total = CONCURRENCY * PER_CALLER
  const many: ReadonlyArray<Case> = [
    {
      name: `raw ioredis, ${CONCURRENCY} concurrent callers`,
      ops: total,
      run: () => asyncCallers(next, rawGet)
    },
    {
      name: `TieredCache.get, ${CONCURRENCY} caller fibers`,
      ops: total,
      run: () => fiberCallers(next, cacheGet)
    },
    {
      name: `floor: raw read as Effect.promise, ${CONCURRENCY} fibers`,
      ops: total,
      run: () => fiberCallers(next, floorGet)
    },
    {
      name: `TieredCache.get, ${CONCURRENCY} callers, runPromise per read`,
      ops: total,
      run: () => asyncCallers(next, runPromise)
    },
    {
      name: `floor: Effect.promise, ${CONCURRENCY} callers, runPromise per read`,
      ops: total,
      run: () => asyncCallers(next, (key) => Effect.runPromise(floorGet(key)))
    }
  ]

  const [rawOne, cacheOne, ...restOne] = yield* Effect.promise(() =>
    interleaveLatency(one, { rounds: ROUNDS, warmup: 2 })
  )
  const [rawMany, cacheMany, ...restMany] = yield* Effect.promise(() =>
    interleave(many, { rounds: ROUNDS, warmup: 2 })
  )
  report("L2 hit, one caller at a time (per op: median latency; ratio: of median latencies)", rawOne!, [
    { ...cacheOne!, target: "<= 1.15x raw", ok: cacheOne!.ratio <= 1.15 },
    ...restOne
  ])
  console.log("ratio of mean times (median of paired rounds; counts the slow round trips too):")
  for (const r of [cacheOne!, ...restOne]) console.log(`  ${r.name.padEnd(56)} ${r.meanRatio.toFixed(2)}x`)
  const throughput = 1 / cacheMany!.ratio
  report(`L2 hit, ${CONCURRENCY} concurrent callers (ratio: time per read against raw)`, rawMany!, [
    { ...cacheMany!, target: `>= 0.8x raw throughput (${throughput.toFixed(2)}x)`, ok: throughput >= 0.8 },
    ...restMany
  ])
  printMachineSpeed()
  const stats = yield* cache.stats
  if (stats.misses !== 0 || stats.l2Hits === 0) throw new Error("benchmark left the L2 hit path")
  console.log(`\n(${stats.l2Hits} L2 hits, ${stats.l1Hits} L1 hits, ${stats.misses} misses)`)
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer()))).catch((error) => {
  console.error(error)
  process.exit(1)
})
