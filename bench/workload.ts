/**
 * The L2 read workloads that bench/l2.ts and bench/peers.ts both measure, so that their figures
 * stay comparable: one caller reading keys one after another (each read timed), and 256
 * callers at once, each reading keys one after another. `next` hands out the key to read.
 * Also what several benchmarks share: the values written, the raw client, the bus floor.
 */
import type { RedisServer } from "@tiercache/testing"
import { Effect, type Scope } from "effect"
import { Command, Redis } from "ioredis"

/** Keys written before measuring (read round robin). */
export const KEYS = 4096
/** Concurrent callers. */
export const CONCURRENCY = 256
/** Reads per caller per round with 256 callers (8192 reads a round). */
export const PER_CALLER = 32
/** Reads per round with one caller. */
export const SEQUENTIAL = 100

/** The value stored under key number `i`. */
export const payload = (i: number) => ({
  id: i,
  name: `user ${i}`,
  roles: ["reader", "writer"],
  score: i * 1.5
})

/**
 * About 200 bytes of JSON: the value heap.ts fills the caches with (and `profile.mjs fill`).
 */
export const entryValue = (i: number) => ({
  id: i,
  name: `user ${i}`,
  email: `user${i}@example.com`,
  roles: ["reader", "writer"],
  score: i * 1.5,
  active: true,
  createdAt: "2026-01-01T00:00:00.000Z",
  bio: "x".repeat(30)
})

type Next = () => string

/** SEQUENTIAL reads one after another, each timed (ns). */
export const timedReads = async (
  next: Next,
  read: (key: string) => Promise<unknown>,
  record: (ns: number) => void
): Promise<void> => {
  for (let i = 0; i < SEQUENTIAL; i++) {
    const start = performance.now()
    await read(next())
    record((performance.now() - start) * 1e6)
  }
}

/** SEQUENTIAL reads one after another in one fiber, each timed (ns). */
export const timedFiberReads = (
  next: Next,
  read: (key: string) => Effect.Effect<unknown, unknown>,
  record: (ns: number) => void
): Promise<void> =>
  Effect.runPromise(
    Effect.gen(function* () {
      for (let i = 0; i < SEQUENTIAL; i++) {
        const start = performance.now()
        yield* read(next())
        record((performance.now() - start) * 1e6)
      }
    })
  )

/** CONCURRENCY async functions at once, each making PER_CALLER reads one after another. */
export const asyncCallers = (next: Next, read: (key: string) => Promise<unknown>): Promise<unknown> =>
  Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = 0; i < PER_CALLER; i++) await read(next())
    })
  )

/** CONCURRENCY fibers at once, each making PER_CALLER reads one after another. */
export const fiberCallers = (
  next: Next,
  read: (key: string) => Effect.Effect<unknown, unknown>
): Promise<void> =>
  Effect.runPromise(
    Effect.forEach(
      Array.from({ length: CONCURRENCY }),
      () =>
        Effect.gen(function* () {
          for (let i = 0; i < PER_CALLER; i++) yield* read(next())
        }),
      { concurrency: "unbounded", discard: true }
    )
  )

/** A raw ioredis client on the bench's server (auto-pipelining), connected for the scope. */
export const rawClient = (
  server: RedisServer.RedisServer.Service
): Effect.Effect<Redis, never, Scope.Scope> =>
  Effect.gen(function* () {
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
    return raw
  })

/** The channel of the bus floor's messages. */
const FLOOR_CHANNEL = "raw:invalidate"

/**
 * A publisher of the bus floor's messages: answers a PUBLISH of a `Remove` of `key` on `raw`
 * (auto-pipelined). A subscriber in this process receives and parses each message, as every
 * instance on a bus does; it closes with the scope.
 */
export const floorPublisher = (
  server: RedisServer.RedisServer.Service,
  raw: Redis,
  channel = FLOOR_CHANNEL
): Effect.Effect<(key: string) => Promise<unknown>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const subscriber = new Redis({ host: server.host, port: server.port, lazyConnect: true })
    yield* Effect.acquireRelease(
      Effect.promise(async () => {
        await subscriber.connect()
        await subscriber.subscribe(channel)
        subscriber.on("message", (_channel: string, message: string) => JSON.parse(message))
      }),
      () => Effect.promise(() => subscriber.quit())
    )
    return (key) => raw.publish(channel, JSON.stringify({ type: "Remove", key, origin: "raw" }))
  })

/**
 * The script tiercache sends a write and its bus message in (RedisTier's SET PX, then the bus's
 * PUBLISH, each run with `redis.pcall`): KEYS[1] the key, ARGV the value, the PX, the channel and
 * the message.
 */
const SET_PUBLISH =
  "return {redis.pcall('SET',KEYS[1],ARGV[1],'PX',ARGV[2]),redis.pcall('PUBLISH',ARGV[3],ARGV[4])}"

/** UNLINK of KEYS[1] and a PUBLISH, as tiercache sends a removal and its message: ARGV the channel and the message. */
const UNLINK_PUBLISH = "return {redis.pcall('UNLINK',KEYS[1]),redis.pcall('PUBLISH',ARGV[1],ARGV[2])}"

/**
 * The floor of a removal that tells other instances, as tiercache sends it (writes.ts's
 * invalidate row): UNLINK and a PUBLISH of a `Remove` of the key in one script call on `raw`
 * (auto-pipelined), with floorPublisher's subscriber on a channel of its own.
 */
export const scriptedBusRemove = (
  server: RedisServer.RedisServer.Service,
  raw: Redis
): Effect.Effect<(key: string) => Promise<unknown>, never, Scope.Scope> => {
  const channel = `${FLOOR_CHANNEL}:removals`
  return Effect.as(floorPublisher(server, raw, channel), (key: string) =>
    raw.eval(UNLINK_PUBLISH, 1, key, channel, JSON.stringify({ type: "Remove", key, origin: "raw" }))
  )
}

/**
 * The write of the floors with a bus (misses.ts's cold and mixed rows, profile.mjs
 * `--floor-bus`), sent as tiercache sends it: SET PX and a PUBLISH of a `Remove` of the key in one
 * script call on `raw` (auto-pipelined), with floorPublisher's subscriber on a channel of its own.
 */
export const scriptedBusWrite = (
  server: RedisServer.RedisServer.Service,
  raw: Redis
): Effect.Effect<(key: string, value: object) => Promise<unknown>, never, Scope.Scope> => {
  const channel = `${FLOOR_CHANNEL}:scripted`
  return Effect.as(floorPublisher(server, raw, channel), (key: string, value: object) =>
    raw.eval(
      SET_PUBLISH,
      1,
      key,
      JSON.stringify(value),
      "3600000",
      channel,
      JSON.stringify({ type: "Remove", key, origin: "raw" })
    )
  )
}

/**
 * The same floor written as tiercache sends a write: SET PX and PUBLISH in one script call
 * (EVAL, both run with `redis.pcall`, both replies answered), written at once into the socket,
 * corked until the tick's work is done, on a connection of its own without auto-pipelining,
 * awaited in one Effect.async step. A subscriber in this process parses each message (a channel
 * of its own). Closed with the scope.
 */
export const scriptBusFloor = (
  server: RedisServer.RedisServer.Service
): Effect.Effect<(key: string, value: object) => Effect.Effect<void>, never, Scope.Scope> =>
  Effect.gen(function* () {
    const client = new Redis({ host: server.host, port: server.port, lazyConnect: true })
    yield* Effect.acquireRelease(
      Effect.promise(() => client.connect()),
      () => Effect.promise(() => client.quit())
    )
    const channel = `${FLOOR_CHANNEL}:script`
    yield* floorPublisher(server, client, channel)
    return (key, value) =>
      Effect.async<void>((resume) => {
        const stream = client.stream
        stream.cork()
        const write = new Command("eval", [
          SET_PUBLISH,
          "1",
          key,
          JSON.stringify(value),
          "3600000",
          channel,
          JSON.stringify({ type: "Remove", key, origin: "raw" })
        ])
        client.sendCommand(write)
        process.nextTick(() => stream.uncork())
        write.promise.then(() => resume(Effect.void))
      })
  })

/**
 * The floor of a write that tells other instances (writes.ts's set row, profile.mjs
 * `bus-floor-set`, setTrace.mjs): answers a write of `value` under `key` that sends a SET PX and
 * a PUBLISH of a `Remove` of the key together (one socket write, auto-pipelined on `raw`), with
 * floorPublisher's subscriber.
 */
export const busFloor = (
  server: RedisServer.RedisServer.Service,
  raw: Redis
): Effect.Effect<(key: string, value: object) => Promise<unknown>, never, Scope.Scope> =>
  Effect.map(
    floorPublisher(server, raw),
    (publish) => (key, value) =>
      Promise.all([raw.set(key, JSON.stringify(value), "PX", 3_600_000), publish(key)])
  )
