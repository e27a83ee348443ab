import { performance } from "node:perf_hooks"
import { describe, expect, layer } from "@effect/vitest"
import { type CacheStats, Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { ChaosTier, MultiInstance, RedisServer } from "@tiercache/testing"
import { Context, Duration, Effect, Exit, Fiber, Layer, Logger, LogLevel, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

// Resilience of TieredCache over a real redis-server (issue 4): Redis killed under load, Redis
// made slow, the Pub/Sub connection killed. Everything runs on the live clock and measures wall
// time with performance.now().

/** The bound on every Redis command and every guarded tier call, in these tests. */
const TIMEOUT_MS = 200
/**
 * Scheduling and bookkeeping allowed on top of a timeout on a loaded 2-core host (CI's). Each
 * test's slow Redis stays slow for longer than the timeout plus this, so a call that waited for
 * it still fails the bound.
 */
const SLACK_MS = 600

const breaker = { timeout: Duration.millis(TIMEOUT_MS), failureThreshold: 5, openFor: "500 millis" } as const

interface InstanceOptions {
  readonly id: string
  /** Key prefix in Redis: each test has its own. */
  readonly prefix: string
  /** Bus channel: each test has its own. */
  readonly channel: string
  readonly cache?: Omit<TieredCache.Options, "instanceId"> | undefined
  /** Wraps the RedisTier before the cache gets it (to inject chaos). */
  readonly wrapL2?: ((tier: Tier.Tier.Service) => Effect.Effect<Tier.Tier.Service>) | undefined
}

/**
 * One cache instance as on its own machine: its own connections (command timeout
 * {@link TIMEOUT_MS}), a RedisTier L2, the Redis bus and a MemoryTier L1 (returned, to look at
 * it). The connections live in the test's scope (`Layer.build`), not just for `make`.
 */
const instance = (options: InstanceOptions) =>
  Effect.gen(function* () {
    const connection = yield* Layer.build(connectionLayer({ commandTimeout: Duration.millis(TIMEOUT_MS) }))
    const redis = yield* RedisTier.make({ prefix: options.prefix }).pipe(Effect.provide(connection))
    const l2 = options.wrapL2 === undefined ? redis : yield* options.wrapL2(redis)
    const bus = yield* RedisInvalidationBus.make({ channel: options.channel }).pipe(
      Effect.provide(connection)
    )
    const l1 = yield* MemoryTier.make({ maxEntries: 10_000 })
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId: options.id, breaker, ...options.cache }).pipe(
        Layer.provide(
          Layer.mergeAll(
            Layer.succeed(Tier.L1, l1),
            Layer.succeed(Tier.L2, l2),
            Layer.succeed(InvalidationBus.InvalidationBus, bus)
          )
        )
      )
    )
    return { cache: Context.get(context, TieredCache.TieredCache), l1 }
  })

type Instance = Effect.Effect.Success<ReturnType<typeof instance>>

/** Runs an effect and answers its exit with its wall time (performance.now) and start time. */
const clocked = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function* () {
    const start = performance.now()
    const exit = yield* Effect.exit(effect)
    return { start, ms: performance.now() - start, exit }
  })

const percentile = (values: ReadonlyArray<number>, p: number): number => {
  const sorted = [...values].sort((x, y) => x - y)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

const totalErrors = (s: CacheStats.CacheStats) => Object.values(s.tierErrors).reduce((x, y) => x + y, 0)

/** Waits (up to about 2 s) until no instance is still writing and each received every message sent. */
const settle = (...instances: ReadonlyArray<Instance>) =>
  MultiInstance.settle(
    instances.map((i) => i.cache),
    { pause: Effect.sleep("1 millis"), rounds: 2000 }
  )

/**
 * Runs a test body with only errors logged (tier and publish warnings come by the thousand in
 * an outage), then logs the measurements it answers.
 */
const quietly = <E, R>(body: Effect.Effect<string, E, R>) =>
  Effect.flatMap(Logger.withMinimumLogLevel(body, LogLevel.Error), (summary) => Effect.log(summary))

describe("TieredCache on Redis: resilience", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "45 seconds" })((it) => {
    it.scoped(
      "Redis killed mid-load: no call fails, p99 stays within the L2 timeout (and its slack), the breaker opens then closes, L2 hits come back",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const shared = {
            prefix: "kill:",
            channel: "kill:bus",
            cache: { defaultGrace: "10 seconds" }
          } as const
          const a = yield* instance({ id: "a", ...shared })
          const b = yield* instance({ id: "b", ...shared })
          const instances = [a, b]

          const KEYS = 200
          const FIBERS = 50
          // Short TTLs keep L2 busy (expired L1 copies are refreshed, the other instance drops its
          // copy on the bus and reads Redis); the grace window gives stale values to answer with.
          const ttl = "300 millis"
          let computed = 0
          const compute = (key: string) => Effect.sync(() => ({ key, n: ++computed }))

          interface Call {
            readonly start: number
            readonly ms: number
          }
          const calls: Array<Call> = []
          const failures: Array<unknown> = []
          let wrongAnswers = 0
          let running = true
          const worker = (w: number) =>
            Effect.gen(function* () {
              const cache = instances[w % 2]!.cache
              // Each fiber walks all the keys (7919 is prime to KEYS), from its own offset.
              let i = w * 31
              while (running) {
                const key = `k${(i++ * 7919) % KEYS}`
                const { start, ms, exit } = yield* clocked(cache.getOrCompute(key, compute(key), { ttl }))
                calls.push({ start, ms })
                if (Exit.isFailure(exit)) failures.push(exit.cause)
                else if (exit.value.key !== key) wrongAnswers++
                yield* Effect.sleep(Duration.millis(20 + ((w * 13 + i) % 20)))
              }
            })
          const workers = yield* Effect.forEach(
            Array.from({ length: FIBERS }, (_, w) => w),
            (w) => Effect.fork(worker(w))
          )

          // Before: at least a second of load, until Redis serves both instances (L2 hits; a
          // first burst on a busy machine may trip a breaker for a moment).
          yield* Effect.sleep("1 second")
          yield* eventually(
            Effect.gen(function* () {
              for (const i of instances) {
                const s = yield* i.cache.stats
                if (s.l2Hits === 0 || s.breakers.redis !== "closed") return yield* Effect.fail("not yet")
              }
            }),
            "3 seconds"
          )
          const before = yield* Effect.forEach(instances, (i) => i.cache.stats)

          // The outage, sampled every 10 ms.
          const seen = instances.map(() => new Set<string>())
          let sampling = true
          const sampler = yield* Effect.fork(
            Effect.gen(function* () {
              while (sampling) {
                for (let i = 0; i < instances.length; i++) {
                  const s = yield* instances[i]!.cache.stats
                  seen[i]!.add(s.breakers.redis!)
                }
                yield* Effect.sleep("10 millis")
              }
            })
          )
          const outageStart = performance.now()
          yield* server.stop
          yield* Effect.sleep("2 seconds")
          const duringStats = yield* Effect.forEach(instances, (i) => i.cache.stats)
          yield* server.start
          const outageEnd = performance.now()
          sampling = false
          yield* Fiber.join(sampler)

          // Recovery, without rebuilding anything: the breakers close (the load probes them) and
          // each bus says it reconnected.
          yield* eventually(
            Effect.gen(function* () {
              for (const i of instances) {
                const s = yield* i.cache.stats
                const bus = yield* i.cache.invalidationStats
                if (s.breakers.redis !== "closed" || bus.resyncs < 1) return yield* Effect.fail("not yet")
              }
            }),
            "5 seconds"
          )
          const recovered = yield* Effect.forEach(instances, (i) => i.cache.stats)
          yield* Effect.sleep("1 second")
          const after = yield* Effect.forEach(instances, (i) => i.cache.stats)
          running = false
          yield* Fiber.joinAll(workers)

          // Every call answered (from L1, a stale value or the computation), with its key's value.
          expect(failures).toEqual([])
          expect(wrongAnswers).toBe(0)
          expect(calls.length).toBeGreaterThan(2_000)
          // Nothing waited on the dead Redis: p99 of the calls started during the outage.
          const outage = calls.filter((c) => c.start >= outageStart && c.start <= outageEnd).map((c) => c.ms)
          expect(outage.length).toBeGreaterThan(500)
          const p99 = percentile(outage, 99)
          expect(p99).toBeLessThan(TIMEOUT_MS + SLACK_MS)
          // The breakers opened during the outage; tier errors and refusals were counted, and
          // the grace window answered.
          for (let i = 0; i < instances.length; i++) {
            expect(seen[i]!.has("open")).toBe(true)
            expect(duringStats[i]!.breakerRejections).toBeGreaterThan(before[i]!.breakerRejections)
            expect(totalErrors(duringStats[i]!)).toBeGreaterThan(totalErrors(before[i]!))
            expect(duringStats[i]!.staleServed).toBeGreaterThan(before[i]!.staleServed)
          }
          // After recovery: breakers closed, and the load is served by L2 again.
          for (let i = 0; i < instances.length; i++) {
            expect(after[i]!.breakers).toEqual({ redis: "closed" })
            expect(after[i]!.l2Hits).toBeGreaterThan(recovered[i]!.l2Hits)
          }
          // A fresh round: keys written by a after recovery are L2 hits on b.
          const fresh = Array.from({ length: 50 }, (_, j) => `fresh:${j}`)
          for (const key of fresh) yield* a.cache.set(key, key, { ttl: "1 minute" })
          const beforeRound = yield* b.cache.stats
          const values = yield* Effect.forEach(fresh, (key) => b.cache.get(key))
          const afterRound = yield* b.cache.stats
          expect(values).toEqual(fresh.map((key) => Option.some(key)))
          expect(afterRound.l2Hits - beforeRound.l2Hits).toBe(fresh.length)
          expect(totalErrors(afterRound)).toBe(totalErrors(beforeRound))
          const rate = (to: CacheStats.CacheStats, from?: CacheStats.CacheStats) =>
            ((to.l2Hits - (from?.l2Hits ?? 0)) / Math.max(1, to.requests - (from?.requests ?? 0))).toFixed(3)
          const rates = instances.map(
            (_, i) =>
              `${rate(before[i]!)} / ${rate(duringStats[i]!, before[i])} / ${rate(after[i]!, recovered[i])}`
          )
          return `Redis killed: ${calls.length} calls, ${outage.length} started during the outage: p99 ${p99.toFixed(1)} ms, max ${Math.max(...outage).toFixed(1)} ms; L2 hit rate before / during / after the outage: a ${rates[0]}, b ${rates[1]}`
        }).pipe(quietly)
    )

    it.scoped(
      "Redis slow through ChaosTier (get and set delayed past the breaker timeout): calls end within the timeout and answer from the computation",
      () =>
        Effect.gen(function* () {
          let chaos: ChaosTier.ChaosTier.Service | undefined
          const shared = { prefix: "chaos:", channel: "chaos:bus" }
          const a = yield* instance({
            id: "a",
            ...shared,
            wrapL2: (tier) => Effect.tap(ChaosTier.wrap(tier), (c) => (chaos = c))
          })
          const slow = chaos!
          // In Redis (written through the wrapped tier, so not in a's L1): what a slow Redis hides.
          const keys = Array.from({ length: 12 }, (_, j) => `slow:${j}`)
          const now = Date.now()
          for (const key of keys) {
            yield* slow.wrapped.set(key, Entry.make({ value: "in redis", now, ttlMs: 60_000 }))
          }
          yield* slow.delay(["get", "set"], "1 second")

          // One caller at a time: every call is cut at the breaker timeout and computed.
          const results = yield* Effect.forEach(keys, (key) =>
            clocked(a.cache.getOrCompute(key, Effect.succeed(`computed ${key}`)))
          )
          const ms = results.map((r) => r.ms)
          expect(results.map((r) => r.exit)).toEqual(keys.map((key) => Exit.succeed(`computed ${key}`)))
          for (const t of ms) expect(t).toBeLessThan(TIMEOUT_MS + SLACK_MS)
          // The first calls waited for the tier (cut at the timeout), then the breaker opened.
          expect(ms[0]).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
          const s = yield* a.cache.stats
          expect(s.tierErrors.redis).toBeGreaterThanOrEqual(breaker.failureThreshold)
          expect(s.breakers).toEqual({ redis: "open" })
          expect(s.breakerRejections).toBeGreaterThan(0)
          expect(s.computations).toBe(keys.length)
          expect((yield* slow.calls).get).toBeGreaterThan(0)
          // The computed values are in L1: answered at once, whatever Redis does.
          expect(yield* a.cache.get(keys[0]!)).toEqual(Option.some(`computed ${keys[0]}`))
          return `ChaosTier delay: getOrCompute took ${ms.map((t) => t.toFixed(0)).join(", ")} ms`
        }).pipe(quietly)
    )

    it.scoped(
      "Redis slow for real (DEBUG SLEEP 3 on another connection): get and getOrCompute end within the timeout; errors are counted",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const a = yield* instance({ id: "a", prefix: "sleep:", channel: "sleep:bus" })
          // Warm the connections, then put a value in Redis that a's L1 does not have.
          yield* a.cache.set("warm", 1, { ttl: "1 minute" })
          yield* Effect.promise(() =>
            look.set(
              "sleep:held",
              Entry.serialize(Entry.make({ value: "held", now: Date.now(), ttlMs: 60_000 })),
              "PX",
              60_000
            )
          )
          const before = yield* a.cache.stats

          const sleeping = yield* Effect.fork(Effect.promise(() => look.call("DEBUG", "SLEEP", "3")))
          yield* Effect.sleep("20 millis")
          const concurrent = yield* Effect.all(
            [
              ...Array.from({ length: 5 }, (_, j) =>
                clocked(a.cache.getOrCompute(`computed:${j}`, Effect.succeed(`computed ${j}`)))
              ),
              ...Array.from({ length: 5 }, (_, j) => clocked(a.cache.get(`missing:${j}`))),
              clocked(a.cache.get("held"))
            ],
            { concurrency: "unbounded" }
          )
          const sequential = [
            yield* clocked(a.cache.getOrCompute("computed:seq", Effect.succeed("computed seq"))),
            yield* clocked(a.cache.get("held"))
          ]
          // Every call was made (and returned) while the server slept.
          expect(sleeping.unsafePoll()).toBeNull()
          yield* Fiber.join(sleeping)
          const all = [...concurrent, ...sequential]
          expect(all.map((r) => r.exit)).toEqual([
            ...Array.from({ length: 5 }, (_, j) => Exit.succeed(`computed ${j}`)),
            ...Array.from({ length: 5 }, () => Exit.succeed(Option.none())),
            Exit.succeed(Option.none()),
            Exit.succeed("computed seq"),
            Exit.succeed(Option.none())
          ])
          for (const r of all) expect(r.ms).toBeLessThan(TIMEOUT_MS + SLACK_MS)
          // Each of the 11 concurrent reads reached the sleeping server, was cut and counted;
          // then the breaker opened and refused the later calls at once.
          const s = yield* a.cache.stats
          expect(s.tierErrors.redis! - (before.tierErrors.redis ?? 0)).toBeGreaterThanOrEqual(
            concurrent.length
          )
          expect(s.breakerRejections).toBeGreaterThan(before.breakerRejections)
          // Awake again: the breaker lets a probe through and closes; Redis answers.
          yield* eventually(
            Effect.flatMap(a.cache.get("held"), (v) =>
              Option.getOrUndefined(v) === "held" ? Effect.void : Effect.fail("not yet")
            ),
            "3 seconds"
          )
          expect((yield* a.cache.stats).breakers).toEqual({ redis: "closed" })
          return `DEBUG SLEEP: calls took ${all.map((r) => r.ms.toFixed(0)).join(", ")} ms; tierErrors ${JSON.stringify(s.tierErrors)}`
        }).pipe(quietly)
    )

    it.scoped(
      "Pub/Sub connections killed: the bus comes back, b resyncs and drops its L1, so a value changed meanwhile is re-read",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const shared = { prefix: "pubsub:", channel: "pubsub:bus" }
          const a = yield* instance({ id: "a", ...shared })
          const b = yield* instance({ id: "b", ...shared })
          yield* a.cache.set("held", "v1", { ttl: "1 minute" })
          yield* a.cache.set("other", "o1", { ttl: "1 minute" })
          yield* settle(a, b)
          expect(yield* b.cache.get("held")).toEqual(Option.some("v1"))
          expect(Option.isSome(yield* b.l1.get("held"))).toBe(true)
          const resyncs = (yield* b.cache.invalidationStats).resyncs

          // Both subscriber connections are killed and, in the same transaction (so before any
          // of them is back), "held" is changed in Redis behind the caches' back.
          const byHand = Entry.serialize(Entry.make({ value: "by hand", now: Date.now(), ttlMs: 60_000 }))
          const replies = yield* Effect.promise(() =>
            look.multi().client("KILL", "TYPE", "pubsub").set("pubsub:held", byHand, "PX", 60_000).exec()
          )
          expect(replies).toEqual([
            [null, 2],
            [null, "OK"]
          ])
          yield* eventually(
            Effect.flatMap(b.cache.invalidationStats, (s) =>
              s.resyncs === resyncs + 1 ? Effect.void : Effect.fail("not yet")
            ),
            "3 seconds"
          )
          // b cleared its L1 on the resync: the changed value is read from Redis, not served stale.
          expect(yield* b.l1.get("held")).toEqual(Option.none())
          const beforeRead = yield* b.cache.stats
          expect(yield* b.cache.get("held")).toEqual(Option.some("by hand"))
          expect((yield* b.cache.stats).l2Hits - beforeRead.l2Hits).toBe(1)

          // The bus works again: a later invalidate from a reaches b's L1.
          expect(yield* b.cache.get("other")).toEqual(Option.some("o1"))
          expect(Option.isSome(yield* b.l1.get("other"))).toBe(true)
          yield* a.cache.invalidate("other")
          yield* eventually(
            Effect.flatMap(b.l1.get("other"), (e) =>
              Option.isNone(e) ? Effect.void : Effect.fail("not yet")
            ),
            "1 second"
          )
          expect(yield* b.cache.get("other")).toEqual(Option.none())
          expect((yield* b.cache.invalidationStats).resyncs).toBe(resyncs + 1)
          return "Pub/Sub killed: b resynced once, re-read the changed value, and received the next invalidate"
        }).pipe(quietly)
    )

    it.scoped(
      "model: with Pub/Sub killed mid-stream, no read on b lags the last completed write on a by more than the recovery window",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const shared = { prefix: "model:", channel: "model:bus" }
          const a = yield* instance({ id: "a", ...shared })
          const b = yield* instance({ id: "b", ...shared })
          const key = "counter"
          yield* a.cache.set(key, 0, { ttl: "1 minute" })
          yield* settle(a, b)

          // completed[v]: when a's set of v returned. reads: when each read on b started, and what it saw.
          const completed: Array<number> = [performance.now()]
          const reads: Array<{ readonly start: number; readonly value: Option.Option<unknown> }> = []
          let running = true
          const writer = yield* Effect.fork(
            Effect.gen(function* () {
              for (let v = 1; running; v++) {
                yield* a.cache.set(key, v, { ttl: "1 minute" })
                completed[v] = performance.now()
              }
            })
          )
          const reader = yield* Effect.fork(
            Effect.gen(function* () {
              while (running) {
                const start = performance.now()
                reads.push({ start, value: yield* b.cache.get(key) })
                yield* Effect.sleep("1 millis")
              }
            })
          )
          yield* Effect.sleep("500 millis")

          const resyncs = (yield* b.cache.invalidationStats).resyncs
          const killedAt = performance.now()
          yield* Effect.promise(() => look.client("KILL", "TYPE", "pubsub"))
          // When b is seen to have resynced (polled every millisecond).
          while ((yield* b.cache.invalidationStats).resyncs === resyncs) {
            if (performance.now() - killedAt > 3_000)
              return yield* Effect.fail(new Error("no resync within 3 s"))
            yield* Effect.sleep("1 millis")
          }
          const resyncedAt = performance.now()
          // Long enough after the resync that a b left on a superseded value lags past BUS_MS.
          yield* Effect.sleep("2 seconds")
          running = false
          yield* Fiber.join(writer)
          yield* Fiber.join(reader)
          // (Messages were lost, so `settle` cannot tell when b is done: b ends on the last value.)
          const last = completed.length - 1
          yield* eventually(
            Effect.flatMap(b.cache.get(key), (v) =>
              Option.getOrUndefined(v) === last ? Effect.void : Effect.fail("not yet")
            ),
            "1 second"
          )

          // The bound: a read returning v lags by (its start - the completion of v + 1) when
          // v + 1 had completed before it started, else 0. Normally a's Remove reaches b within
          // BUS_MS; while b's subscription is down, messages are lost and b's L1 may keep a
          // superseded value until the resync clears it. Only writes completed after the kill
          // lose their message (Redis answers PUBLISH once the message is in b's socket), so no
          // read lags by more than the recovery window (kill -> resync seen) plus BUS_MS.
          // A bus message's delivery, with room for a loaded host.
          const BUS_MS = 300
          const window = resyncedAt - killedAt
          const lagOf = (r: (typeof reads)[number]) => {
            const v = Option.getOrThrow(r.value) as number
            const next = completed[v + 1]
            return next !== undefined && next < r.start ? r.start - next : 0
          }
          expect(reads.every((r) => Option.isSome(r.value) && typeof r.value.value === "number")).toBe(true)
          const lags = reads.map(lagOf)
          const maxLag = Math.max(...lags)
          expect(maxLag).toBeLessThanOrEqual(window + BUS_MS)
          // Not vacuous: the kill left b serving superseded values inside the window...
          const inWindow = reads.filter((r) => r.start >= killedAt && r.start <= resyncedAt)
          expect(inWindow.length).toBeGreaterThan(0)
          expect(inWindow.some((r) => lagOf(r) > 0)).toBe(true)
          // ...and once resynced, b is as current as the bus allows again.
          const afterResync = reads.filter((r) => r.start > resyncedAt).map(lagOf)
          expect(afterResync.length).toBeGreaterThan(100)
          expect(Math.max(...afterResync)).toBeLessThanOrEqual(BUS_MS)
          return `model: ${last} writes, ${reads.length} reads; recovery window ${window.toFixed(1)} ms; max lag ${maxLag.toFixed(1)} ms (inside the window), ${Math.max(...afterResync).toFixed(1)} ms after the resync`
        }).pipe(quietly)
    )
  })
})
