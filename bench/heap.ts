/**
 * Heap per L1 entry: 100,000 entries of a ~200-byte object (JSON), written through each
 * cache's own `set` (memory tier in front of the bench's redis-server, so only the memory tier
 * stays on the heap), against raw lru-cache and the keys and values alone. Each case runs in a
 * fresh `node --expose-gc` process: the heap after a full collection, before and after the
 * writes, divided by the number of entries. Keys and values are built during the writes, so
 * they count (they are what a cache holds).
 * Run: pnpm bench (or pnpm --filter @tiercache/bench bench:heap)
 */
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { RedisServer } from "@tiercache/testing"
import { Effect } from "effect"
import { LRUCache } from "lru-cache"
import { contenders } from "./contenders.js"
import { count } from "./harness.js"
import { recordRows, verdict, x } from "./results.js"
import { entryValue } from "./workload.js"

const ENTRIES = count(100_000, 2_000)
const CHUNK = 64
const CASES = ["keys and values alone", "lru-cache", "tiercache", "BentoCache", "cache-manager", "cacheable"]

const key = (i: number) => `user:${i}`

const heapAfterGc = (): number => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with node --expose-gc")
  for (let i = 0; i < 4; i++) gc()
  return process.memoryUsage().heapUsed
}

/** Writes ENTRIES entries `CHUNK` at a time; answers the heap growth per entry. */
const perEntry = async (write: (i: number) => unknown, keep: unknown = undefined): Promise<number> => {
  const before = heapAfterGc()
  for (let i = 0; i < ENTRIES; i += CHUNK) {
    const pending: Array<unknown> = []
    for (let j = i; j < Math.min(ENTRIES, i + CHUNK); j++) pending.push(write(j))
    await Promise.all(pending)
  }
  const after = heapAfterGc()
  if (keep === -1) console.log(keep)
  return (after - before) / ENTRIES
}

const child = (name: string) =>
  Effect.gen(function* () {
    if (name === "keys and values alone") {
      const held: Array<unknown> = []
      return yield* Effect.promise(() => perEntry((i) => held.push(key(i), entryValue(i)), held))
    }
    if (name === "lru-cache") {
      const lru = new LRUCache<string, object>({ max: ENTRIES + 1000 })
      return yield* Effect.promise(() => perEntry((i) => lru.set(key(i), entryValue(i)), lru))
    }
    const server = yield* RedisServer.RedisServer
    const c = yield* contenders(server, ENTRIES + 1000, "heap")
    const write: Record<string, (i: number) => unknown> = {
      tiercache: (i) => Effect.runPromise(c.tiercache.set(key(i), entryValue(i), { ttl: "1 hour" })),
      BentoCache: (i) => c.bento.set({ key: key(i), value: entryValue(i), ttl: "1h" }),
      "cache-manager": (i) => c.manager.set(key(i), entryValue(i), 3_600_000),
      cacheable: (i) => c.cacheable.set(key(i), entryValue(i), 3_600_000)
    }
    const bytes = yield* Effect.promise(() => perEntry(write[name]!))
    if (name === "tiercache") {
      yield* c.tiercache.get(key(0))
      if ((yield* c.tiercache.stats).l1Hits !== 1) throw new Error("tiercache's L1 lost entries")
    }
    return bytes
  }).pipe(Effect.scoped, Effect.provide(RedisServer.layer()))

const parent = () => {
  const bytes = CASES.map((name) => {
    const out = execFileSync(process.execPath, ["--expose-gc", fileURLToPath(import.meta.url), name], {
      env: process.env,
      encoding: "utf8"
    })
    return Number(out.trim().split("\n").at(-1))
  })
  console.log(`\nheap per L1 entry, ${ENTRIES.toLocaleString("en")} entries of a ~200-byte object`)
  CASES.forEach((name, i) => {
    console.log(`  ${name.padEnd(24)} ${bytes[i]!.toFixed(0).padStart(6)} B`)
  })
  const [alone, lru, tiercache, bento, manager, cacheable] = bytes as [
    number,
    number,
    number,
    number,
    number,
    number
  ]
  const cell = (b: number) => `${b.toFixed(0)} B (${x(b / lru)})`
  recordRows([
    {
      row: `heap per L1 entry, ${ENTRIES.toLocaleString("en")} entries of a ~200-byte object`,
      limit: `lru-cache: ${lru.toFixed(0)} B; the keys and values alone: ${alone.toFixed(0)} B`,
      tiercache: cell(tiercache),
      BentoCache: cell(bento),
      "cache-manager": cell(manager),
      cacheable: cell(cacheable),
      target: `${verdict("<= 400 B", tiercache <= 400)}; ${verdict(
        "below every peer",
        tiercache < Math.min(bento, manager, cacheable)
      )}`
    }
  ])
}

const name = process.argv[2]
if (name === undefined) parent()
else
  Effect.runPromise(child(name))
    .then((bytes) => {
      console.log(bytes)
      process.exit(0)
    })
    .catch((error) => {
      console.error(error)
      process.exit(1)
    })
