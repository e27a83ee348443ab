/**
 * Writes and batched reads against the hand-written limits and the peer caches (see
 * contenders.ts), on a redis-server the bench starts:
 * - set, one caller (L1 + Redis): median latency against `lru.set` + `SET PX`, beside the floor of
 *   a write that tells other instances (SET and PUBLISH in one write), awaited as a promise and
 *   in one fiber, and written as tiercache sends it (one script call, corked at once) in one fiber
 *   and through `Effect.runPromise` per call;
 * - invalidate, one caller (L1 + Redis): median latency against `lru.delete` + `UNLINK`, beside the
 *   floor of a removal that tells other instances once it has landed (UNLINK, then PUBLISH), and
 *   that floor as tiercache sends it (UNLINK and PUBLISH in one script call);
 * - getMany of 100 keys found only in Redis (memory tiers of one entry): median latency against
 *   one `MGET` + `JSON.parse` of each value.
 * tiercache runs in one fiber (a loop of calls) and with `Effect.runPromise` per call; the peers
 * are awaited call after call. Cases alternate in rounds; medians are over every call.
 * Run: pnpm bench (or pnpm --filter @tiercache/bench bench:writes)
 */
import { RedisServer } from "@tiercache/testing"
import { Effect } from "effect"
import { LRUCache } from "lru-cache"
import { checkAnswers, contenders } from "./contenders.js"
import { count, interleaveLatency, type LatencyCase, printMachineSpeed } from "./harness.js"
import { recordRows, time, verdict, x } from "./results.js"
import {
  busFloor,
  floorPublisher,
  KEYS,
  payload,
  rawClient,
  scriptBusFloor,
  scriptedBusRemove
} from "./workload.js"

const ROUNDS = count(12, 3)
const TTL_MS = 3_600_000
/** Keys per getMany. */
const BATCH = 100
/** Calls per round and case. */
const CALLS = count(100, 30)
const BATCH_CALLS = count(20, 10)
/**
 * Unmeasured rounds of the set row: 3,000 calls per case first. tiercache's write path runs
 * about twice as long until V8 has optimized it (2,000-2,600 sets into a process, measured
 * with sets of one key as with sets of many); the row measures a service that has been up for
 * a while, every case alike.
 */
const SET_WARMUP = count(30, 2)

/** `calls` timed calls one after another. */
const timed = async (calls: number, op: () => Promise<unknown>, record: (ns: number) => void) => {
  for (let i = 0; i < calls; i++) {
    const start = performance.now()
    await op()
    record((performance.now() - start) * 1e6)
  }
}

/** `calls` timed calls one after another in one fiber. */
const timedFiber = (calls: number, op: () => Effect.Effect<unknown, unknown>, record: (ns: number) => void) =>
  Effect.runPromise(
    Effect.gen(function* () {
      for (let i = 0; i < calls; i++) {
        const start = performance.now()
        yield* op()
        record((performance.now() - start) * 1e6)
      }
    })
  )

const main = Effect.gen(function* () {
  const server = yield* RedisServer.RedisServer
  const raw = yield* rawClient(server)
  const keys = Array.from({ length: KEYS }, (_, i) => `user:${i}`)

  // ---- set, one caller -------------------------------------------------------------------
  {
    const c = yield* contenders(server, 10_000, "set")
    const lru = new LRUCache<string, object>({ max: 10_000 })
    let n = 0
    const next = () => n++ % KEYS
    const limitSet = async (i: number) => {
      const value = payload(i)
      lru.set(keys[i]!, value)
      await raw.set(`raw:${keys[i]!}`, JSON.stringify(value), "PX", TTL_MS)
    }
    // The floor of a write that tells other instances (see busFloor).
    const floorWrite = yield* busFloor(server, raw)
    const floorSet = async (i: number) => {
      const value = payload(i)
      lru.set(keys[i]!, value)
      await floorWrite(`raw:${keys[i]!}`, value)
    }
    // That floor written as tiercache sends a write (one script call, corked at once, one
    // Effect.async step).
    const scriptWrite = yield* scriptBusFloor(server)
    const scriptSet = (i: number) =>
      Effect.suspend(() => {
        const value = payload(i)
        lru.set(keys[i]!, value)
        return scriptWrite(`raw:script:${keys[i]!}`, value)
      })
    const tcSet = (i: number) => c.tiercache.set(keys[i]!, payload(i), { ttl: "1 hour" })
    const cases: ReadonlyArray<LatencyCase> = [
      { name: "limit", run: (r) => timed(CALLS, () => limitSet(next()), r) },
      { name: "floor: + PUBLISH in the same write", run: (r) => timed(CALLS, () => floorSet(next()), r) },
      {
        // The same floor awaited by a fiber, as an Effect program's write is: what Effect itself
        // adds (the promise's resumption of the fiber), with none of a cache's work.
        name: "floor, in one fiber",
        run: (r) => timedFiber(CALLS, () => Effect.promise(() => floorSet(next())), r)
      },
      { name: "floor, one script, in one fiber", run: (r) => timedFiber(CALLS, () => scriptSet(next()), r) },
      {
        // The same, each call a root fiber run by Effect.runPromise: what a runPromise caller
        // pays Effect itself for a write of one step.
        name: "floor, one script, runPromise",
        run: (r) => timed(CALLS, () => Effect.runPromise(scriptSet(next())), r)
      },
      { name: "tiercache fiber", run: (r) => timedFiber(CALLS, () => tcSet(next()), r) },
      { name: "tiercache runPromise", run: (r) => timed(CALLS, () => Effect.runPromise(tcSet(next())), r) },
      {
        name: "BentoCache",
        run: (r) =>
          timed(
            CALLS,
            () => {
              const i = next()
              return c.bento.set({ key: keys[i]!, value: payload(i), ttl: "1h" })
            },
            r
          )
      },
      {
        name: "cache-manager",
        run: (r) =>
          timed(
            CALLS,
            () => {
              const i = next()
              return c.manager.set(keys[i]!, payload(i), TTL_MS)
            },
            r
          )
      },
      {
        name: "cacheable",
        run: (r) =>
          timed(
            CALLS,
            () => {
              const i = next()
              return c.cacheable.set(keys[i]!, payload(i), TTL_MS)
            },
            r
          )
      }
    ]
    // Each cache answers what it was given (the rounds write the same payload per key).
    for (const set of [
      () => Effect.runPromise(tcSet(7)),
      () => c.bento.set({ key: keys[7]!, value: payload(7), ttl: "1h" }),
      () => c.manager.set(keys[7]!, payload(7), TTL_MS),
      () => c.cacheable.set(keys[7]!, payload(7), TTL_MS)
    ])
      yield* Effect.promise(async () => {
        await set()
      })
    yield* checkAnswers(c, keys[7]!, payload(7))
    const results = yield* Effect.promise(() =>
      interleaveLatency(cases, { rounds: ROUNDS, warmup: SET_WARMUP })
    )
    const [
      limit,
      floor,
      fiberFloor,
      scriptFloor,
      scriptRunPromise,
      fiber,
      perCall,
      bento,
      manager,
      cacheable
    ] = results
    const cell = (r: typeof limit) => `${time(r!.nsPerOp)} (${x(r!.ratio)})`
    const bestPeer = Math.min(bento!.nsPerOp, manager!.nsPerOp, cacheable!.nsPerOp)
    console.log("\nset, L1 + Redis, one caller (median latency; ratio to the limit's)")
    for (const r of results) console.log(`  ${r.name.padEnd(24)} ${cell(r)}`)
    recordRows([
      {
        row: "set, L1 + Redis, one caller (median latency)",
        limit: `lru set + SET PX: ${time(limit!.nsPerOp)}; floor with a bus (SET and PUBLISH in one write, a subscriber in this process): ${cell(floor)}; that floor awaited in one fiber: ${cell(fiberFloor)}; that floor as tiercache sends it (SET and PUBLISH in one script call, corked at once, no auto-pipeline) in one fiber: ${cell(scriptFloor)}; that through Effect.runPromise per call: ${cell(scriptRunPromise)}`,
        tiercache: `fiber ${cell(fiber)}, ${x(fiber!.nsPerOp / scriptFloor!.nsPerOp)} the script floor; runPromise ${cell(perCall)}, ${x(perCall!.nsPerOp / scriptRunPromise!.nsPerOp)} that floor through runPromise`,
        BentoCache: cell(bento),
        "cache-manager": cell(manager),
        cacheable: cell(cacheable),
        target: `${verdict("<= 1.3x limit", fiber!.ratio <= 1.3)}; ${verdict(
          "ahead of every peer",
          fiber!.nsPerOp < bestPeer && perCall!.nsPerOp < bestPeer
        )}`
      }
    ])
  }

  // ---- invalidate, one caller ------------------------------------------------------------
  {
    const c = yield* contenders(server, 10_000, "invalidate")
    const lru = new LRUCache<string, object>({ max: 10_000 })
    let n = 0
    const next = () => n++ % KEYS
    // Each case removes keys it wrote before the round: a key present in L1 and in Redis.
    const limitRemove = async (i: number) => {
      lru.delete(keys[i]!)
      await raw.unlink(`raw:${keys[i]!}`)
    }
    // The floor of a removal that tells other instances, the message sent after the removal
    // without waiting for its reply: UNLINK, then the PUBLISH of a Remove once UNLINK's reply is
    // in; and the two in one script call, as tiercache sends them (subscribers in this process).
    const publish = yield* floorPublisher(server, raw)
    const floorRemove = async (i: number) => {
      lru.delete(keys[i]!)
      await raw.unlink(`raw:${keys[i]!}`)
      await publish(`raw:${keys[i]!}`)
    }
    const scriptRemove = yield* scriptedBusRemove(server, raw)
    const floorScriptRemove = async (i: number) => {
      lru.delete(keys[i]!)
      await scriptRemove(`raw:${keys[i]!}`)
    }
    const tcRemove = (i: number) => c.tiercache.invalidate(keys[i]!)
    const refill = (i: number) =>
      Promise.all([
        Effect.runPromise(c.tiercache.set(keys[i]!, payload(i), { ttl: "1 hour" })),
        c.bento.set({ key: keys[i]!, value: payload(i), ttl: "1h" }),
        c.manager.set(keys[i]!, payload(i), TTL_MS),
        c.cacheable.set(keys[i]!, payload(i), TTL_MS),
        raw
          .set(`raw:${keys[i]!}`, JSON.stringify(payload(i)), "PX", TTL_MS)
          .then(() => lru.set(keys[i]!, payload(i)))
      ])
    /** A case: refills the round's keys (untimed), then runs `run`, which removes them one by one. */
    const removing =
      (run: LatencyCase["run"]): LatencyCase["run"] =>
      async (record) => {
        const start = n
        for (let k = 0; k < CALLS; k++) await refill((start + k) % KEYS)
        n = start
        await run(record)
      }
    /** Removes the round's keys with `remove`, awaited call after call. */
    const awaited = (remove: (i: number) => Promise<unknown>) =>
      removing((record) => timed(CALLS, () => remove(next()), record))
    const cases: ReadonlyArray<LatencyCase> = [
      { name: "limit", run: awaited(limitRemove) },
      { name: "floor: UNLINK, then PUBLISH", run: awaited(floorRemove) },
      { name: "floor: the two in one script", run: awaited(floorScriptRemove) },
      {
        name: "tiercache fiber",
        run: removing((record) => timedFiber(CALLS, () => tcRemove(next()), record))
      },
      { name: "tiercache runPromise", run: awaited((i) => Effect.runPromise(tcRemove(i))) },
      { name: "BentoCache", run: awaited((i) => c.bento.delete({ key: keys[i]! })) },
      { name: "cache-manager", run: awaited((i) => c.manager.del(keys[i]!)) },
      { name: "cacheable", run: awaited((i) => c.cacheable.delete(keys[i]!)) }
    ]
    const [limit, floor, scriptFloor, fiber, perCall, bento, manager, cacheable] = yield* Effect.promise(() =>
      interleaveLatency(cases, { rounds: ROUNDS, warmup: SET_WARMUP })
    )
    // Each cache removed what it was asked to.
    yield* Effect.promise(() => refill(7))
    yield* c.tiercache.invalidate(keys[7]!)
    yield* Effect.promise(() =>
      Promise.all([c.bento.delete({ key: keys[7]! }), c.manager.del(keys[7]!), c.cacheable.delete(keys[7]!)])
    )
    const gone = [
      (yield* c.tiercache.get(keys[7]!))._tag === "None",
      (yield* Effect.promise(() => c.bento.get({ key: keys[7]! }))) === undefined,
      (yield* Effect.promise(() => c.manager.get(keys[7]!))) === undefined,
      (yield* Effect.promise(() => c.cacheable.get(keys[7]!))) === undefined
    ]
    if (gone.some((g) => !g)) throw new Error(`a cache still answers a key it removed: ${gone}`)
    const cell = (r: typeof limit) => `${time(r!.nsPerOp)} (${x(r!.ratio)})`
    const bestPeer = Math.min(bento!.nsPerOp, manager!.nsPerOp, cacheable!.nsPerOp)
    console.log("\ninvalidate, L1 + Redis, one caller (median latency; ratio to the limit's)")
    for (const r of [limit, floor, scriptFloor, fiber, perCall, bento, manager, cacheable])
      console.log(`  ${r!.name.padEnd(28)} ${cell(r)}`)
    recordRows([
      {
        row: "invalidate, L1 + Redis, one caller (median latency)",
        limit: `lru delete + UNLINK: ${time(limit!.nsPerOp)}; floor with a bus (UNLINK, then the PUBLISH of a Remove once it has landed; a subscriber in this process): ${cell(floor)}; that floor as tiercache sends it (UNLINK and PUBLISH in one script call): ${cell(scriptFloor)}`,
        tiercache: `fiber ${cell(fiber)}, ${x(fiber!.nsPerOp / scriptFloor!.nsPerOp)} the script floor; runPromise ${cell(perCall)}`,
        BentoCache: cell(bento),
        "cache-manager": cell(manager),
        cacheable: cell(cacheable),
        target: verdict("ahead of every peer", fiber!.nsPerOp < bestPeer && perCall!.nsPerOp < bestPeer)
      }
    ])
  }

  // ---- getMany of 100 keys only in Redis ---------------------------------------------------
  {
    // Memory tiers of one entry: each batch (100 keys not read since) is found in Redis only.
    const c = yield* contenders(server, 1, "many")
    for (let i = 0; i < KEYS; i += 64) {
      const chunk = keys.slice(i, i + 64)
      yield* Effect.forEach(chunk, (key, j) => c.tiercache.set(key, payload(i + j), { ttl: "1 hour" }), {
        concurrency: "unbounded",
        discard: true
      })
      yield* Effect.promise(() =>
        Promise.all(
          chunk.flatMap((key, j) => [
            c.bento.set({ key, value: payload(i + j), ttl: "1h" }),
            c.manager.set(key, payload(i + j), TTL_MS),
            c.cacheable.set(key, payload(i + j), TTL_MS),
            raw.set(`raw:${key}`, JSON.stringify(payload(i + j)), "PX", TTL_MS)
          ])
        )
      )
    }
    let n = 0
    const nextBatch = () => {
      const start = (n++ * BATCH) % (KEYS - BATCH)
      return keys.slice(start, start + BATCH)
    }
    const mget = async (batch: ReadonlyArray<string>) => {
      const found = await raw.mget(batch.map((k) => `raw:${k}`))
      return found.map((s) => (s === null ? undefined : JSON.parse(s)))
    }
    // What reading values with their remaining lifetimes costs (tiercache rebases each entry on
    // Redis's PTTL, so that instances whose clocks differ agree on when it expires).
    const mgetWithLifetimes = async (batch: ReadonlyArray<string>) => {
      const pipeline = raw.pipeline()
      const full = batch.map((k) => `raw:${k}`)
      pipeline.mget(full)
      for (const key of full) pipeline.pttl(key)
      const replies = (await pipeline.exec())!
      const values = replies[0]![1] as ReadonlyArray<string | null>
      return values.map((s, i) => (s === null ? undefined : [JSON.parse(s), replies[i + 1]![1]]))
    }
    const cases: ReadonlyArray<LatencyCase> = [
      { name: "MGET", run: (r) => timed(BATCH_CALLS, () => mget(nextBatch()), r) },
      {
        name: "tiercache fiber",
        run: (r) => timedFiber(BATCH_CALLS, () => c.tiercache.getMany(nextBatch()), r)
      },
      {
        name: "tiercache runPromise",
        run: (r) => timed(BATCH_CALLS, () => Effect.runPromise(c.tiercache.getMany(nextBatch())), r)
      },
      {
        name: "BentoCache (100 gets at once: no getMany)",
        run: (r) => timed(BATCH_CALLS, () => Promise.all(nextBatch().map((key) => c.bento.get({ key }))), r)
      },
      { name: "cache-manager mget", run: (r) => timed(BATCH_CALLS, () => c.manager.mget(nextBatch()), r) },
      {
        name: "cacheable getMany",
        run: (r) => timed(BATCH_CALLS, () => c.cacheable.getMany(nextBatch()), r)
      },
      {
        name: "floor: MGET + a PTTL per key, one pipeline",
        run: (r) => timed(BATCH_CALLS, () => mgetWithLifetimes(nextBatch()), r)
      }
    ]
    // Every cache answers the 100 values written (checked once before measuring).
    const probe = keys.slice(BATCH, 2 * BATCH)
    const want = JSON.stringify(probe.map((_, j) => payload(BATCH + j)))
    const answers = yield* Effect.promise(async () => [
      (await Effect.runPromise(c.tiercache.getMany(probe))).map((o) =>
        o._tag === "Some" ? o.value : undefined
      ),
      await Promise.all(probe.map((key) => c.bento.get({ key }))),
      await c.manager.mget(probe),
      await c.cacheable.getMany(probe),
      await mget(probe)
    ])
    for (const a of answers)
      if (JSON.stringify(a) !== want) throw new Error("a getMany answered other values")
    const [limit, fiber, perCall, bento, manager, cacheable, floor] = yield* Effect.promise(() =>
      interleaveLatency(cases, { rounds: ROUNDS, warmup: 2 })
    )
    const cell = (r: typeof limit) => `${time(r!.nsPerOp)} (${x(r!.ratio)})`
    const bestPeer = Math.min(bento!.nsPerOp, manager!.nsPerOp, cacheable!.nsPerOp)
    console.log(`\ngetMany of ${BATCH} keys only in Redis (median latency; ratio to one MGET's)`)
    for (const r of [limit, fiber, perCall, bento, manager, cacheable, floor])
      console.log(`  ${r!.name.padEnd(42)} ${cell(r)}`)
    const stats = yield* c.tiercache.stats
    if (stats.l1Hits > BATCH) throw new Error(`getMany rows hit L1 (${stats.l1Hits} L1 hits)`)
    recordRows([
      {
        row: `getMany of ${BATCH} keys only in Redis (median latency)`,
        limit: `one MGET: ${time(limit!.nsPerOp)}; floor, values with their remaining lifetimes (MGET + a PTTL per key in one pipeline): ${cell(floor)}`,
        tiercache: `fiber ${cell(fiber)}; runPromise ${cell(perCall)}`,
        BentoCache: `${cell(bento)}, 100 gets (no getMany)`,
        "cache-manager": cell(manager),
        cacheable: cell(cacheable),
        target: `${verdict("<= 1.5x MGET", fiber!.ratio <= 1.5)}; ${verdict("ahead of every peer", fiber!.nsPerOp < bestPeer)}`
      }
    ])
  }
  printMachineSpeed()
})

Effect.runPromise(Effect.scoped(main).pipe(Effect.provide(RedisServer.layer())))
  .then(() => process.exit(0))
  .catch((error) => {
    console.error(error)
    process.exit(1)
  })
