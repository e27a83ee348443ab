/**
 * L2 hit path (L1 empty): TieredCache.get served by RedisTier against raw ioredis GET +
 * JSON.parse, on the same redis-server (started by the bench on a free port), one caller at a
 * time and with 256 concurrent callers (both clients with auto-pipelining). Concurrent callers are
 * modelled alike for both: 256 promises in flight at once (for tiercache, one Effect.runPromise
 * each); the same reads as 256 fibers of one Effect.all are shown too, for reference.
 * Run: pnpm bench (or pnpm --filter @tiercache/bench bench:l2)
 */
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisTier } from "@tiercache/redis"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { bench, report } from "./harness.js"

const KEYS = 4096
const CONCURRENCY = 256
const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`)
const payload = (i: number) => ({ id: i, name: `user ${i}`, roles: ["reader", "writer"], score: i * 1.5 })

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const raw = new Redis({
    host: server.host,
    port: server.port,
    enableAutoPipelining: true,
    lazyConnect: true
  })
  yield* Effect.acquireRelease(
    Effect.promise(() => raw.connect()),
    () => Effect.promise(() => raw.quit())
  )
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
  const rawGet = async (key: string) => {
    const s = await raw.get(key)
    return s === null ? undefined : JSON.parse(s)
  }
  const cacheGet = (key: string) => cache.get(key)

  const results = yield* Effect.promise(async () => {
    const LOOP = 200
    const rawOne = await bench(
      "raw ioredis GET + JSON.parse, one at a time",
      async () => {
        for (let i = 0; i < LOOP; i++) await rawGet(next())
      },
      LOOP
    )
    const cacheOne = await bench(
      "TieredCache.get (L2 hit), one at a time, in one fiber",
      () =>
        Effect.runPromise(
          Effect.gen(function* () {
            for (let i = 0; i < LOOP; i++) yield* cacheGet(next())
          })
        ),
      LOOP
    )
    const floorOne = await bench(
      "floor: raw read wrapped in Effect.promise, in one fiber",
      () =>
        Effect.runPromise(
          Effect.gen(function* () {
            for (let i = 0; i < LOOP; i++) yield* Effect.promise(() => rawGet(next()))
          })
        ),
      LOOP
    )
    const cacheOnePerCall = await bench("TieredCache.get (L2 hit), one at a time, runPromise per call", () =>
      Effect.runPromise(cacheGet(next()))
    )
    const rawMany = await bench(
      `raw ioredis GET + JSON.parse, ${CONCURRENCY} concurrent`,
      () => Promise.all(Array.from({ length: CONCURRENCY }, () => rawGet(next()))),
      CONCURRENCY
    )
    const cacheMany = await bench(
      `TieredCache.get (L2 hit), ${CONCURRENCY} concurrent callers, runPromise`,
      () => Promise.all(Array.from({ length: CONCURRENCY }, () => Effect.runPromise(cacheGet(next())))),
      CONCURRENCY
    )
    const floorMany = await bench(
      `floor: raw read in Effect.runPromise(Effect.promise), ${CONCURRENCY} concurrent`,
      () =>
        Promise.all(
          Array.from({ length: CONCURRENCY }, () => Effect.runPromise(Effect.promise(() => rawGet(next()))))
        ),
      CONCURRENCY
    )
    const cacheFibers = await bench(
      `TieredCache.get (L2 hit), ${CONCURRENCY} fibers of one Effect.all`,
      () =>
        Effect.runPromise(
          Effect.all(
            Array.from({ length: CONCURRENCY }, () => cacheGet(next())),
            { concurrency: "unbounded", discard: true }
          )
        ),
      CONCURRENCY
    )
    return { rawOne, cacheOne, floorOne, cacheOnePerCall, rawMany, cacheMany, floorMany, cacheFibers }
  })
  const { rawOne, cacheOne, floorOne, cacheOnePerCall, rawMany, cacheMany, floorMany, cacheFibers } = results
  report("L2 hit, one caller at a time (ratio: time against raw)", rawOne, [
    { ...cacheOne, target: "<= 1.15x raw", ok: cacheOne.nsPerOp <= 1.15 * rawOne.nsPerOp },
    // Informational: what running the raw read as an Effect costs by itself, and a fresh
    // Effect.runPromise for every read.
    floorOne,
    cacheOnePerCall
  ])
  const throughput = rawMany.nsPerOp / cacheMany.nsPerOp
  report(`L2 hit, ${CONCURRENCY} concurrent callers (ratio: time per op against raw)`, rawMany, [
    {
      ...cacheMany,
      target: `>= 0.8x raw throughput (${throughput.toFixed(2)}x)`,
      ok: throughput >= 0.8
    },
    // Informational: the raw read run as an Effect per caller (the floor of any Effect-based
    // cache), and the same reads as fibers forked by Effect.all, which adds a fork per caller.
    floorMany,
    cacheFibers
  ])
  const stats = yield* cache.stats
  if (stats.misses !== 0 || stats.l2Hits === 0) throw new Error("benchmark left the L2 hit path")
  console.log(`\n(${stats.l2Hits} L2 hits, ${stats.l1Hits} L1 hits, ${stats.misses} misses)`)
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer()))).catch((error) => {
  console.error(error)
  process.exit(1)
})
