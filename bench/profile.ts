/**
 * A driver for profiling tiercache's write and compute paths (see PROFILE.md), on a
 * redis-server it starts, with the README's setup (MemoryTier + RedisTier + RedisInvalidationBus;
 * `--no-bus` leaves the bus out; `--memory` puts TestTier, an in-memory tier, in Redis's place, with
 * no bus and no breaker: what the cache's own code costs, without a socket; TestTier encodes each
 * entry as RedisTier does):
 *   node dist/profile.mjs <set|set64|invalidate|get|floor-get|cold|mixed|stampede|getMany|fill|raw-set|bus-floor-set|script-floor-set|idle> [--no-bus] [--no-breaker] [--memory] [--floor] [--floor-bus] [--ops N]
 * (`mixed` is misses.ts's mixed row: 64 callers, Zipf keys over 10,000, 90% getOrCompute / 10% set,
 * an L1 of 1,000; `fill` is heap.ts's: distinct keys of ~200-byte values, 64 `runPromise` sets at a
 * time, and it also prints what the heap grew by per entry, by kind of object, from two heap
 * snapshots taken around the measured operations, see heapDiff.ts: run it with --expose-gc;
 * `--floor` runs cold and mixed on misses.ts's plain-Effect floor instead of tiercache, `--floor-bus`
 * on that floor with tiercache's lifetimes and bus)
 * prints the operations per second, the CPU time per operation (user + system, this process
 * only: on a shared machine it varies far less than the wall time) and the bytes allocated per
 * operation, measured as the heap
 * growth over the measured operations with a young generation large enough that no collection
 * runs meanwhile (run with --expose-gc --max-semi-space-size=512; the collections that ran anyway
 * are counted and printed). Under `node --cpu-prof` or `--heap-prof` it profiles the same run;
 *   node dist/profile.mjs analyze <file.cpuprofile|file.heapprofile> [top]
 * prints the functions with the most self time (or the most bytes allocated) with their share;
 * `--inclusive` counts a function's callees too (its share of the samples whose stack holds it).
 */
import { readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { PerformanceObserver } from "node:perf_hooks"
import { writeHeapSnapshot } from "node:v8"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
import { RedisServer, TestTier } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { effectFloorCache } from "./floors.js"
import { diffSnapshots } from "./heapDiff.js"
import { busFloor, entryValue, payload, scriptBusFloor, scriptedBusWrite } from "./workload.js"
import { zipfSequence } from "./zipf.js"

const args = process.argv.slice(2)
const mode = args[0] ?? "set"
const flag = (name: string) => args.includes(name)
const option = (name: string, fallback: number) => {
  const at = args.indexOf(name)
  return at === -1 ? fallback : Number(args[at + 1])
}

// ---- analysis of a profile written by node --cpu-prof / --heap-prof -----------------------

interface CpuNode {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
  readonly hitCount?: number
}

interface HeapNode {
  readonly callFrame: CpuNode["callFrame"]
  readonly selfSize: number
  readonly children: ReadonlyArray<HeapNode>
}

const where = (f: CpuNode["callFrame"]) =>
  `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${f.lineNumber + 1}`

const printTop = (totals: Map<string, number>, unit: string, top: number, whole?: number) => {
  const all = whole ?? [...totals.values()].reduce((a, b) => a + b, 0)
  const sorted = [...totals.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)
  for (const [name, v] of sorted) {
    console.log(`${((100 * v) / all).toFixed(1).padStart(5)}%  ${v.toFixed(0).padStart(10)} ${unit}  ${name}`)
  }
}

const analyze = (file: string, top: number, inclusive: boolean) => {
  const profile = JSON.parse(readFileSync(file, "utf8"))
  const totals = new Map<string, number>()
  if (file.endsWith(".cpuprofile")) {
    const nodes: ReadonlyArray<CpuNode> = profile.nodes
    const byId = new Map(nodes.map((n) => [n.id, n]))
    const parent = new Map<number, number>()
    for (const n of profile.nodes as ReadonlyArray<CpuNode & { children?: ReadonlyArray<number> }>)
      for (const c of n.children ?? []) parent.set(c, n.id)
    const samples: ReadonlyArray<number> = profile.samples
    const deltas: ReadonlyArray<number> = profile.timeDeltas
    samples.forEach((id, i) => {
      const ms = (deltas[i] ?? 0) / 1000
      if (!inclusive) {
        const name = where(byId.get(id)!.callFrame)
        totals.set(name, (totals.get(name) ?? 0) + ms)
        return
      }
      // Inclusive: every function on the sample's stack, once.
      const seen = new Set<string>()
      for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
        const name = where(byId.get(at)!.callFrame)
        if (seen.has(name)) continue
        seen.add(name)
        totals.set(name, (totals.get(name) ?? 0) + ms)
      }
    })
    printTop(totals, "ms", top, deltas.reduce((a, b) => a + b, 0) / 1000)
  } else {
    const walk = (node: HeapNode) => {
      const name = where(node.callFrame)
      totals.set(name, (totals.get(name) ?? 0) + node.selfSize)
      for (const child of node.children) walk(child)
    }
    walk(profile.head)
    printTop(totals, "B", top)
  }
}

// ---- the driver ------------------------------------------------------------------------

const heap = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc !== undefined) for (let i = 0; i < 3; i++) gc()
  return process.memoryUsage().heapUsed
}

let collections = 0
new PerformanceObserver((list) => {
  collections += list.getEntries().length
}).observe({ entryTypes: ["gc"] })

const drive = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const memory = flag("--memory")
  const lower = memory
    ? Layer.effect(Tier.L2, TestTier.make())
    : flag("--no-bus")
      ? RedisTier.layer({ prefix: "profile:" })
      : Layer.merge(RedisTier.layer({ prefix: "profile:" }), RedisInvalidationBus.layer())
  // fill keeps every entry it writes; mixed has the bench's small L1.
  const maxEntries =
    mode === "get" ? 1 : mode === "mixed" ? 1_000 : mode === "fill" ? option("--ops", 2000) + 2_000 : 100_000
  const l1Context = yield* Layer.build(MemoryTier.layer({ maxEntries }))
  const l1 = Context.get(l1Context, Tier.L1)
  const context = yield* Layer.build(
    TieredCache.layer({
      metricsInterval: "1 hour",
      ...(flag("--no-breaker") || memory ? { breaker: false } : {})
    }).pipe(
      Layer.provide(Layer.succeedContext(l1Context)),
      Layer.provide(lower),
      Layer.provide(RedisConnection.layer({ url: server.url }))
    )
  )
  const cache = Context.get(context, TieredCache.TieredCache)
  const raw = new Redis({ host: server.host, port: server.port, enableAutoPipelining: true })
  yield* Effect.addFinalizer(() => Effect.promise(() => raw.quit()))
  const floorWrite = mode === "bus-floor-set" ? yield* busFloor(server, raw) : undefined
  const scriptWrite = mode === "script-floor-set" ? yield* scriptBusFloor(server) : undefined
  // --floor: misses.ts's plain-Effect floor in tiercache's place (cold and mixed); --floor-bus:
  // that floor with tiercache's lifetimes and bus.
  const floor = flag("--floor")
    ? effectFloorCache(raw, maxEntries)
    : flag("--floor-bus")
      ? effectFloorCache(raw, maxEntries, yield* scriptedBusWrite(server, raw))
      : undefined
  const getOrCompute = (key: string, computation: Effect.Effect<object>): Effect.Effect<unknown, unknown> =>
    floor !== undefined
      ? floor.getOrCompute(`floor:${key}`, computation)
      : cache.getOrCompute(key, computation, { ttl: "1 hour" })
  let generation = 0
  let filled = 0
  const compute = (ms: number) => Effect.as(Effect.sleep(ms), payload(1))
  /** One batch of `n` operations of the mode; answers how many operations it made. */
  const batch = (n: number): Effect.Effect<number, unknown> => {
    switch (mode) {
      case "set":
        return Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* cache.set(`set:${i % 4096}`, payload(i), { ttl: "1 hour" })
          return n
        })
      case "invalidate":
        // writes.ts's invalidate row: removals one after another (of keys set before, or gone).
        return Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* cache.invalidate(`set:${i % 4096}`)
          return n
        })
      case "get":
        // l2.ts's one caller: L2 hits one after another (an L1 of one entry, keys round robin).
        return Effect.gen(function* () {
          if (generation++ === 0) {
            for (let i = 0; i < 1024; i++) yield* cache.set(`get:${i}`, payload(i), { ttl: "1 hour" })
          }
          for (let i = 0; i < n; i++) yield* cache.get(`get:${i % 1024}`)
          return n
        })
      case "floor-get":
        // peers.ts's floor of that read: GET and PTTL auto-pipelined into one write, JSON.parse.
        return Effect.promise(async () => {
          if (generation++ === 0) {
            for (let i = 0; i < 1024; i++)
              await raw.set(`raw:get:${i}`, JSON.stringify(payload(i)), "PX", 3_600_000)
          }
          for (let i = 0; i < n; i++) {
            const [stored] = await Promise.all([
              raw.get(`raw:get:${i % 1024}`),
              raw.pttl(`raw:get:${i % 1024}`)
            ])
            if (stored !== null) JSON.parse(stored)
          }
          return n
        })
      case "idle":
        // The allocation of the process doing nothing for n ms (the bus subscriber, timers...).
        return Effect.as(Effect.sleep(n), n)
      case "raw-set":
        return Effect.promise(async () => {
          for (let i = 0; i < n; i++) {
            await raw.set(`raw:set:${i % 4096}`, JSON.stringify(payload(i)), "PX", 3_600_000)
          }
          return n
        })
      case "bus-floor-set":
        // writes.ts's bus floor (see busFloor in workload.ts).
        return Effect.promise(async () => {
          for (let i = 0; i < n; i++) await floorWrite!(`raw:set:${i % 4096}`, payload(i))
          return n
        })
      case "script-floor-set":
        // writes.ts's script floor: SET PX and PUBLISH in one script call, corked, awaited in one fiber.
        return Effect.gen(function* () {
          for (let i = 0; i < n; i++) yield* scriptWrite!(`raw:script:${i % 4096}`, payload(i))
          return n
        })
      case "set64":
        return Effect.as(
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            (i) => cache.set(`set:${i % 4096}`, payload(i), { ttl: "1 hour" }),
            { concurrency: 64, discard: true }
          ),
          n
        )
      case "cold":
        return Effect.as(
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            () => getOrCompute(`cold:${generation++}`, compute(1)),
            { concurrency: 64, discard: true }
          ),
          n
        )
      case "mixed": {
        const keys = zipfSequence(n, 10_000, 1, ++generation)
        return Effect.as(
          Effect.forEach(
            Array.from({ length: n }, (_, i) => i),
            (i): Effect.Effect<void, unknown> =>
              i % 10 === 9
                ? floor !== undefined
                  ? floor.set(`floor:mixed:${keys[i]}`, payload(i))
                  : cache.set(`mixed:${keys[i]}`, payload(i), { ttl: "1 hour" })
                : Effect.asVoid(getOrCompute(`mixed:${keys[i]}`, compute(1))),
            { concurrency: 64, discard: true }
          ),
          n
        )
      }
      case "stampede": {
        const key = `stampede:${generation++}`
        return Effect.as(
          Effect.forEach(Array.from({ length: 1000 }), () => cache.getOrCompute(key, compute(20)), {
            concurrency: "unbounded",
            discard: true
          }),
          1000
        )
      }
      case "fill": {
        // Distinct keys, 64 writes at a time, each through its own runPromise: heap.ts's fill.
        const from = filled
        filled += n
        return Effect.promise(async () => {
          for (let i = from; i < from + n; i += 64) {
            const chunk: Array<Promise<void>> = []
            for (let j = i; j < Math.min(from + n, i + 64); j++)
              chunk.push(Effect.runPromise(cache.set(`fill:${j}`, entryValue(j), { ttl: "1 hour" })))
            await Promise.all(chunk)
          }
          return n
        })
      }
      case "getMany": {
        // getMany of 100 keys found only in Redis (L1 emptied before each call); an op is one key.
        const keys = Array.from({ length: 100 }, (_, i) => `many:${i}`)
        return Effect.gen(function* () {
          if (generation++ === 0) {
            for (const key of keys) yield* cache.set(key, payload(1), { ttl: "1 hour" })
          }
          for (let i = 0; i < n / 100; i++) {
            yield* l1.clear
            yield* cache.getMany(keys)
          }
          return n
        })
      }
      default:
        return Effect.dieMessage(`unknown mode ${mode}`)
    }
  }
  const ops = option("--ops", mode === "stampede" ? 1000 : 2000)
  yield* batch(Math.min(ops, 1000))
  const before = heap()
  const snapshots = mode === "fill" ? [join(tmpdir(), "fill-before.heapsnapshot")] : []
  if (snapshots.length > 0) writeHeapSnapshot(snapshots[0])
  collections = 0
  const cpu = process.cpuUsage()
  const start = performance.now()
  let done = 0
  while (done < ops) done += yield* batch(Math.min(1000, ops - done))
  const seconds = (performance.now() - start) / 1000
  const used = process.cpuUsage(cpu)
  const cpuUs = (used.user + used.system) / done
  const grown = process.memoryUsage().heapUsed - before
  if (snapshots.length > 0) {
    heap()
    snapshots.push(join(tmpdir(), "fill-after.heapsnapshot"))
    writeHeapSnapshot(snapshots[1])
    diffSnapshots(snapshots[0]!, snapshots[1]!, done)
    for (const file of snapshots) rmSync(file, { force: true })
  }
  const stats = yield* cache.stats
  const bus = yield* cache.invalidationStats
  console.log(
    `${mode}${floor !== undefined ? (flag("--floor-bus") ? " (plain-Effect floor with lifetimes and a bus)" : " (plain-Effect floor)") : memory ? " (in memory)" : flag("--no-bus") ? " (no bus)" : ""}: ${done} ops in ${seconds.toFixed(2)} s, ` +
      `${(done / seconds).toFixed(0)} ops/s; ${cpuUs.toFixed(0)} us CPU per op; ` +
      `${(grown / done).toFixed(0)} B allocated per op ` +
      `(${collections} collections during the run${collections > 0 ? ": a lower bound" : ""})`
  )
  console.log(
    `  computations ${stats.computations}, misses ${stats.misses}, coalesced ${stats.coalesced}, ` +
      `bus sent ${bus.messagesSent}, publish failures ${bus.publishFailures}`
  )
})

if (mode === "analyze") analyze(args[1]!, option("--top", 30), flag("--inclusive"))
else
  Effect.runPromise(Effect.scoped(drive).pipe(Effect.provide(RedisServer.layer())))
    .then(() => process.exit(0))
    .catch((error) => {
      console.error(error)
      process.exit(1)
    })
