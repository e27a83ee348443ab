/**
 * Where a one-caller `set` spends its time on the socket, beside writes.ts's bus floors (SET and
 * PUBLISH in one write, a subscriber in this process parsing each message; auto-pipelined and
 * awaited as a promise, and as one script call corked at once and awaited in one fiber): the medians, from
 * the call, of when the socket write starts and returns, when the first and the last data event
 * of the write's replies arrive (the subscriber's message, then the command connection's
 * replies), and when the call answers. README setup (MemoryTier + RedisTier + the bus), one
 * fiber; rounds alternate, 3,000 unmeasured sets first (writes.ts says why).
 *   node build.mjs && node dist/setTrace.mjs
 */
import * as net from "node:net"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisInvalidationBus, RedisTier } from "@tiercache/redis"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { Redis } from "ioredis"
import { median } from "./harness.js"
import { busFloor, payload, scriptBusFloor } from "./workload.js"

const SETS = 3_000
const ROUNDS = 3

// Every socket write and data event of the process, timed (the hooks cost both cases alike).
let writeStarts: Array<number> = []
let writeEnds: Array<number> = []
let dataAt: Array<number> = []
const socket = net.Socket.prototype as unknown as Record<string, (...args: Array<unknown>) => unknown>
for (const method of ["_writev", "_write"]) {
  const original = socket[method]!
  socket[method] = function (this: unknown, ...args: Array<unknown>) {
    writeStarts.push(performance.now())
    const result = original.apply(this, args)
    writeEnds.push(performance.now())
    return result
  }
}
const emit = socket.emit!
socket.emit = function (this: unknown, event: unknown, ...args: Array<unknown>) {
  if (event === "data") dataAt.push(performance.now())
  return emit.call(this, event, ...args)
}

/** One set's times from its call (us): write start, write end, first data, last data, answer. */
type Row = readonly [number, number, number, number, number]

const timeOne = (start: number, end: number): Row | undefined =>
  writeStarts.length === 0 || dataAt.length === 0
    ? undefined
    : ([writeStarts[0]!, writeEnds[0]!, dataAt[0]!, dataAt[dataAt.length - 1]!, end].map(
        (t) => (t - start) * 1000
      ) as unknown as Row)

const reset = () => {
  writeStarts = []
  writeEnds = []
  dataAt = []
}

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const context = yield* Layer.build(
    TieredCache.layer({ metricsInterval: "1 hour" }).pipe(
      Layer.provide(MemoryTier.layer({ maxEntries: 10_000 })),
      Layer.provide(Layer.merge(RedisTier.layer({ prefix: "trace:" }), RedisInvalidationBus.layer())),
      Layer.provide(RedisConnection.layer({ url: server.url }))
    )
  )
  const cache = Context.get(context, TieredCache.TieredCache)
  const raw = new Redis({ host: server.host, port: server.port, enableAutoPipelining: true })
  yield* Effect.addFinalizer(() => Effect.promise(() => raw.quit()))
  const floorWrite = yield* busFloor(server, raw)
  const scriptWrite = yield* scriptBusFloor(server)

  const tiercache = (rows: Array<Row>) =>
    Effect.gen(function* () {
      for (let i = 0; i < SETS; i++) {
        reset()
        const start = performance.now()
        yield* cache.set(`k${i % 4096}`, payload(i), { ttl: "1 hour" })
        const row = timeOne(start, performance.now())
        if (row !== undefined) rows.push(row)
      }
    })
  const floor = (rows: Array<Row>) =>
    Effect.promise(async () => {
      for (let i = 0; i < SETS; i++) {
        reset()
        const start = performance.now()
        await floorWrite(`raw:${i % 4096}`, payload(i))
        const row = timeOne(start, performance.now())
        if (row !== undefined) rows.push(row)
      }
    })
  const script = (rows: Array<Row>) =>
    Effect.gen(function* () {
      for (let i = 0; i < SETS; i++) {
        reset()
        const start = performance.now()
        yield* scriptWrite(`raw:script:${i % 4096}`, payload(i))
        const row = timeOne(start, performance.now())
        if (row !== undefined) rows.push(row)
      }
    })
  yield* tiercache([])
  yield* floor([])
  yield* script([])
  console.log("median us from the call: write starts, write returns, first data, last data, answered")
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, run] of [
      ["tiercache, fiber", tiercache],
      ["floor: SET + PUBLISH", floor],
      ["floor, one script, fiber", script]
    ] as const) {
      const rows: Array<Row> = []
      yield* run(rows)
      const cells = [0, 1, 2, 3, 4].map((j) =>
        median(rows.map((r) => r[j]!))
          .toFixed(0)
          .padStart(6)
      )
      console.log(`  ${name.padEnd(22)} ${cells.join(" ")}`)
    }
  }
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer())))
  .then(() => process.exit(0))
  .catch((error) => {
    console.error(error)
    process.exit(1)
  })
