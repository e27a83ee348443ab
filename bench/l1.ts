/**
 * L1 hit path: raw lru-cache get against TieredCache.get / getOrCompute / getTyped on an L1 hit,
 * inside one Effect fiber (a loop of gets) and through Effect.runPromise per call. Runs on the
 * packages compiled to JavaScript (see build.mjs).
 * Run: pnpm bench (or pnpm --filter @tiercache/bench bench:l1)
 */
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Schema } from "effect"
import { LRUCache } from "lru-cache"
import { bench, printMachineSpeed, report } from "./harness.js"

const KEYS = 1024
const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)
const value = (i: number) => ({ id: i, name: `user ${i}`, tags: ["a", "b"] })
const User = Schema.Struct({ id: Schema.Number, name: Schema.String, tags: Schema.Array(Schema.String) })
const LOOP = 1000

const main = Effect.gen(function* () {
  const lru = new LRUCache<string, object>({ max: 10_000 })
  for (let i = 0; i < KEYS; i++) lru.set(keys[i]!, value(i))

  const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
  const l2 = yield* TestTier.make()
  const cache = yield* TieredCache.make().pipe(
    Effect.provideService(Tier.L1, l1),
    Effect.provideService(Tier.L2, l2)
  )
  for (let i = 0; i < KEYS; i++) yield* cache.set(keys[i]!, value(i), { ttl: "1 hour" })
  const never = Effect.die("not reached: every key is an L1 hit")

  const getLoop = Effect.gen(function* () {
    for (let i = 0; i < LOOP; i++) yield* cache.get(keys[i & (KEYS - 1)]!)
  })
  const computeLoop = Effect.gen(function* () {
    for (let i = 0; i < LOOP; i++) yield* cache.getOrCompute(keys[i & (KEYS - 1)]!, never)
  })
  const typedLoop = Effect.gen(function* () {
    for (let i = 0; i < LOOP; i++) yield* cache.getTyped(keys[i & (KEYS - 1)]!, User)
  })
  let n = 0
  const results = yield* Effect.promise(async () => {
    const raw = await bench("raw lru-cache get", () => lru.get(keys[n++ & (KEYS - 1)]!))
    const inFiber = await bench("TieredCache.get, L1 hit, in one fiber", () => Effect.runSync(getLoop), LOOP)
    const computeInFiber = await bench(
      "TieredCache.getOrCompute, L1 hit, in one fiber",
      () => Effect.runSync(computeLoop),
      LOOP
    )
    const typedInFiber = await bench(
      "TieredCache.getTyped, L1 hit, in one fiber",
      () => Effect.runSync(typedLoop),
      LOOP
    )
    const perCall = await bench("TieredCache.get, L1 hit, Effect.runPromise per call", () =>
      Effect.runPromise(cache.get(keys[n++ & (KEYS - 1)]!))
    )
    const computePerCall = await bench("TieredCache.getOrCompute, L1 hit, runPromise per call", () =>
      Effect.runPromise(cache.getOrCompute(keys[n++ & (KEYS - 1)]!, never))
    )
    return { raw, inFiber, computeInFiber, typedInFiber, perCall, computePerCall }
  })
  const { raw, inFiber, computeInFiber, typedInFiber, perCall, computePerCall } = results
  report("L1 hit (ratios against raw lru-cache get)", raw, [
    { ...inFiber, target: "<= 500 ns", ok: inFiber.nsPerOp <= 500 },
    { ...computeInFiber, target: "<= 500 ns", ok: computeInFiber.nsPerOp <= 500 },
    {
      ...typedInFiber,
      target: `<= 1.5x get (${(typedInFiber.nsPerOp / inFiber.nsPerOp).toFixed(2)}x)`,
      ok: typedInFiber.nsPerOp <= 1.5 * inFiber.nsPerOp
    },
    { ...perCall, target: "<= 3 us", ok: perCall.nsPerOp <= 3000 },
    { ...computePerCall, target: "<= 3 us", ok: computePerCall.nsPerOp <= 3000 }
  ])
  printMachineSpeed()
  const stats = yield* cache.stats
  if (stats.misses !== 0 || stats.computations !== 0) throw new Error("benchmark left the L1 hit path")
})

Effect.runPromise(Effect.scoped(main)).catch((error) => {
  console.error(error)
  process.exit(1)
})
