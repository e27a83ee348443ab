/**
 * Effect steps and bytes allocated per operation on each of tiercache's paths, with the README's
 * setup (MemoryTier + RedisTier + RedisInvalidationBus on a redis-server it starts). A step is
 * one turn of Effect's fiber run loop (one primitive: a flatMap continuation, a sync, an async,
 * a runtime-flags change...), counted by wrapping the run loop's handlers on the FiberRuntime
 * prototype, every fiber of the process included (the bus subscriber's, a flight's). The
 * measuring loop's own cost, in every row, is the first row's.
 * Unlike wall or CPU time, the step count does not drift with the machine: it is the figure to
 * compare before and after a change of a path (see PROFILE.md).
 *
 *   node --expose-gc --max-semi-space-size=512 --min-semi-space-size=512 dist/steps.mjs [--show "<path>"]
 *
 * `--show` lists the steps of one path by handler and by the continuation or thunk they run
 * (the first characters of its source), most frequent first.
 * Run: pnpm --filter @tiercache/bench bench:steps
 */
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { effectFloorCache } from "./floors.js"
import { payload, rawClient } from "./workload.js"

const args = process.argv.slice(2)
const showAt = args.indexOf("--show")
const show = showAt === -1 ? undefined : args[showAt + 1]
const OPS = 2000

// ---- the counter ---------------------------------------------------------------------------

/** The run loop's handlers, one per primitive (FiberRuntime dispatches on `_op`). */
const HANDLERS = [
  "Tag",
  "Sync",
  "Success",
  "Failure",
  "WithRuntime",
  "UpdateRuntimeFlags",
  "OnSuccess",
  "OnFailure",
  "OnSuccessAndFailure",
  "Async",
  "Yield",
  "While",
  "Iterator",
  "Commit"
] as const

type Primitive = {
  readonly commit?: unknown
  readonly effect_instruction_i0?: unknown
  readonly effect_instruction_i1?: unknown
}

let steps = 0
let listing: Map<string, number> | undefined

/** What a step runs, for `--show`: the source of its thunk or continuation, else its handler. */
const describe = (handler: string, op: Primitive): string => {
  const f =
    handler === "Commit"
      ? op.commit
      : handler === "Sync"
        ? op.effect_instruction_i0
        : (op.effect_instruction_i1 ?? op.effect_instruction_i0)
  const source = typeof f === "function" ? f.toString().replace(/\s+/g, " ").slice(0, 110) : ""
  return `${handler.padEnd(20)} ${source}`
}

/** Wraps each handler of the prototype of Effect's fibers (reached through a fiber, not a deep import). */
const installCounter = () => {
  const proto = Object.getPrototypeOf(Effect.runFork(Effect.void)) as Record<
    string,
    (this: unknown, op: Primitive) => unknown
  >
  for (const handler of HANDLERS) {
    const original = proto[handler]
    if (typeof original !== "function") throw new Error(`no run-loop handler ${handler} in this Effect`)
    proto[handler] = function (this: unknown, op: Primitive) {
      steps++
      if (listing !== undefined) {
        const what = describe(handler, op)
        listing.set(what, (listing.get(what) ?? 0) + 1)
      }
      return original.call(this, op)
    }
  }
}

const heapNow = () => {
  const gc = (globalThis as { gc?: () => void }).gc
  if (gc === undefined) throw new Error("run with node --expose-gc")
  gc()
  return process.memoryUsage().heapUsed
}

// ---- the paths -----------------------------------------------------------------------------

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  /** A cache of the README's setup, on its own key prefix and bus channel. */
  const cacheWith = (maxEntries: number, name: string) =>
    Effect.map(
      Layer.build(
        TieredCache.layer({ metricsInterval: "1 hour" }).pipe(
          Layer.provide(MemoryTier.layer({ maxEntries })),
          Layer.provide(
            Layer.merge(
              RedisTier.layer({ prefix: `steps:${name}:` }),
              RedisInvalidationBus.layer({ channel: `steps:${name}:invalidate` })
            )
          ),
          Layer.provide(RedisConnection.layer({ url: server.url }))
        )
      ),
      (context) => Context.get(context, TieredCache.TieredCache)
    )
  const raw = yield* rawClient(server)
  // The same operations on the plain-Effect floor of a cache (floors.ts): what Effect itself
  // costs for them (ioredis's auto-pipeline instead of tiercache's own sends, no bus).
  const floorBig = effectFloorCache(raw, 100_000)
  const floorSmall = effectFloorCache(raw, 1)
  const big = yield* cacheWith(100_000, "big")
  // An L1 of one entry: keys read round robin always miss it and hit Redis.
  const small = yield* cacheWith(1, "small")
  for (let i = 0; i < 64; i++) {
    yield* small.set(`k${i}`, payload(i), { ttl: "1 hour" })
    yield* floorSmall.set(`floor:k${i}`, payload(i))
  }
  yield* big.set("hot", payload(0), { ttl: "1 hour" })
  let fresh = 0
  const paths: ReadonlyArray<readonly [string, (i: number) => Effect.Effect<unknown, unknown>]> = [
    // What the measuring loop costs by itself, in every row below.
    ["the loop alone (Effect.void)", () => Effect.void],
    ["L1 hit, get", () => big.get("hot")],
    ["L2 hit, get", (i) => small.get(`k${i % 64}`)],
    ["L2 hit, getOrCompute", (i) => small.getOrCompute(`k${i % 64}`, Effect.succeed(payload(i)))],
    ["set", (i) => big.set(`set:${i % 512}`, payload(i), { ttl: "1 hour" })],
    [
      "cold miss, getOrCompute",
      (i) => big.getOrCompute(`cold:${fresh++}`, Effect.succeed(payload(i)), { ttl: "1 hour" })
    ],
    [
      "floor: L2 hit, getOrCompute",
      (i) => floorSmall.getOrCompute(`floor:k${i % 64}`, Effect.succeed(payload(i)))
    ],
    ["floor: set", (i) => floorBig.set(`floor:set:${i % 512}`, payload(i))],
    ["floor: cold miss", (i) => floorBig.getOrCompute(`floor:cold:${fresh++}`, Effect.succeed(payload(i)))]
  ]
  installCounter()
  console.log(`Effect steps and bytes allocated per operation, one caller, ${OPS} operations after as many`)
  console.log(`${"path".padEnd(30)} ${"steps".padStart(7)} ${"bytes".padStart(8)}`)
  for (const [name, op] of paths) {
    for (let i = 0; i < OPS; i++) yield* op(i)
    const before = heapNow()
    steps = 0
    listing = name === show ? new Map() : undefined
    for (let i = 0; i < OPS; i++) yield* op(i)
    const counted = steps
    const bytes = process.memoryUsage().heapUsed - before
    const shown = listing
    listing = undefined
    console.log(
      `${name.padEnd(30)} ${(counted / OPS).toFixed(1).padStart(7)} ${(bytes / OPS).toFixed(0).padStart(8)}`
    )
    if (shown !== undefined) {
      for (const [what, n] of [...shown].sort((a, b) => b[1] - a[1])) {
        console.log(`  ${(n / OPS).toFixed(2).padStart(6)}  ${what}`)
      }
    }
  }
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer())))
