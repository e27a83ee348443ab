/**
 * The hit paths of two builds of tiercache in one process: this checkout's and an earlier
 * commit's (compare.mjs bundles both from their sources and runs this). Between processes this
 * host's speed drifts by more than a change of a few percent; here both builds run against
 * the same redis-server in alternating rounds, each ratio paired with the raw baseline of its
 * round, and this checkout runs twice under two names, so the gap between its two figures
 * shows how far apart one build's own figures fall.
 * Rows: L1 hit (against lru-cache get; in one fiber and runPromise per call) and L2 hit (against
 * ioredis GET + JSON.parse; one caller, and 256 caller fibers).
 * Run: pnpm --filter @tiercache/bench bench:compare <rev>
 */
import type * as Core from "@tiercache/core"
import type * as Redis from "@tiercache/redis"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, type Option } from "effect"
import { LRUCache } from "lru-cache"
import { type Case, count, interleave, interleaveLatency, type LatencyCase, type Paired } from "./harness.js"
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

/** One build of tiercache: the public modules of its core and redis packages that a cache needs. */
export interface Build {
  readonly name: string
  readonly core: Pick<typeof Core, "MemoryTier" | "TieredCache">
  readonly redis: Pick<typeof Redis, "RedisConnection" | "RedisTier">
}

/** Rounds: a multiple of 2, 4, 5 and 10, so that the orders of harness.ts come out balanced. */
const ROUNDS = count(40, 10)
/** L1 gets per round and case. */
const L1_CALLS = 2000
const keys = Array.from({ length: KEYS }, (_, i) => `bench:${i}`)

type Get = (key: string) => Effect.Effect<Option.Option<unknown>, unknown>

/** A cache of `build` as the README sets one up, its memory tier of `l1Entries`. */
const cacheOf = (build: Build, server: RedisServer.RedisServer.Service, l1Entries: number, prefix: string) =>
  Effect.gen(function* () {
    const { MemoryTier, TieredCache } = build.core
    const { RedisConnection, RedisTier } = build.redis
    const context = yield* Layer.build(
      TieredCache.layer({ metricsInterval: "1 hour" }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: l1Entries })),
        Layer.provide(RedisTier.layer({ prefix })),
        Layer.provide(RedisConnection.layer({ url: server.url }))
      )
    )
    const cache = Context.get(context, TieredCache.TieredCache)
    for (const key of keys) yield* cache.set(key, payload(0), { ttl: "1 hour" })
    const get: Get = (key) => cache.get(key)
    return { cache, get }
  })

const print = (title: string, rows: ReadonlyArray<Paired>) => {
  console.log(`\n${title} (median time per call; ratio to the first row's, paired per round)`)
  for (const r of rows) {
    const time = r.nsPerOp >= 1000 ? `${(r.nsPerOp / 1000).toFixed(2)} us` : `${r.nsPerOp.toFixed(0)} ns`
    console.log(`  ${r.name.padEnd(44)} ${time.padStart(10)}  ${r.ratio.toFixed(3)}x`)
  }
}

/** Runs the rows for `base` and `head` (this checkout). */
export const run = (base: Build, head: Build): Promise<void> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const raw = yield* rawClient(server)
        const builds = [
          { label: base.name, build: base },
          { label: head.name, build: head },
          { label: `${head.name}, again`, build: head }
        ]
        const l1 = yield* Effect.forEach(builds, ({ build }, i) =>
          cacheOf(build, server, KEYS, `cmp:l1:${i}:`)
        )
        const l2 = yield* Effect.forEach(builds, ({ build }, i) => cacheOf(build, server, 1, `cmp:l2:${i}:`))

        const lru = new LRUCache<string, object>({ max: KEYS })
        for (const key of keys) lru.set(key, payload(0))
        let n = 0
        const next = () => keys[n++ % KEYS]!
        const l1Cases: ReadonlyArray<Case> = [
          {
            name: "raw lru-cache get",
            ops: L1_CALLS,
            run: async () => {
              for (let i = 0; i < L1_CALLS; i++) lru.get(next())
            }
          },
          ...builds.flatMap(({ label }, b) => [
            {
              name: `${label}: get, in one fiber`,
              ops: L1_CALLS,
              run: () =>
                Effect.runPromise(
                  Effect.gen(function* () {
                    for (let i = 0; i < L1_CALLS; i++) yield* l1[b]!.get(next())
                  })
                )
            },
            {
              name: `${label}: get, runPromise per call`,
              ops: L1_CALLS,
              run: async () => {
                for (let i = 0; i < L1_CALLS; i++) await Effect.runPromise(l1[b]!.get(next()))
              }
            }
          ])
        ]
        print("L1 hit", yield* Effect.promise(() => interleave(l1Cases, { rounds: ROUNDS, warmup: 2 })))

        const rawGet = async (key: string) => {
          const s = await raw.get(`cmp:l2:0:${key}`)
          return s === null ? undefined : JSON.parse(s)
        }
        const one: ReadonlyArray<LatencyCase> = [
          { name: "raw ioredis GET + JSON.parse", run: (record) => timedReads(next, rawGet, record) },
          ...builds.map(({ label }, b) => ({
            name: `${label}: get, in one fiber`,
            run: (record: (ns: number) => void) => timedFiberReads(next, l2[b]!.get, record)
          }))
        ]
        print(
          "L2 hit, one caller",
          yield* Effect.promise(() => interleaveLatency(one, { rounds: ROUNDS, warmup: 2 }))
        )
        const total = CONCURRENCY * PER_CALLER
        const many: ReadonlyArray<Case> = [
          { name: `raw ioredis, ${CONCURRENCY} callers`, ops: total, run: () => asyncCallers(next, rawGet) },
          ...builds.map(({ label }, b) => ({
            name: `${label}: get, ${CONCURRENCY} fibers`,
            ops: total,
            run: () => fiberCallers(next, l2[b]!.get)
          }))
        ]
        print(
          `L2 hit, ${CONCURRENCY} callers`,
          yield* Effect.promise(() => interleave(many, { rounds: ROUNDS, warmup: 2 }))
        )

        // Every read above must have been the hit it stands for.
        for (const [i, { cache }] of l1.entries()) {
          const stats = yield* cache.stats
          if (stats.l2Hits !== 0 || stats.misses !== 0) throw new Error(`L1 case ${i} left the L1 hit path`)
        }
        for (const [i, { cache }] of l2.entries()) {
          const stats = yield* cache.stats
          if (stats.misses !== 0 || stats.l2Hits === 0) throw new Error(`L2 case ${i} left the L2 hit path`)
        }
      })
    ).pipe(Effect.provide(RedisServer.layer()))
  )
