/**
 * README (Observability, Statistics): the counters of `stats` and `invalidationStats` reach the
 * Effect Metrics when `stats` is read. Only a few series were checked (l1_hit, miss,
 * computation, one tier's errors); here every outcome, event and bus kind is made to happen on
 * two instances sharing an L2, an L3 and a bus, and each series must equal its figure.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheMetrics, Entry, InvalidationBus, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Clock, Effect, Fiber, Metric, Schema, TestClock } from "effect"

const series = (metric: Metric.Metric.Counter<number>, tags: Record<string, string>) =>
  Effect.map(
    Metric.value(Object.entries(tags).reduce((m, [k, v]) => m.pipe(Metric.tagged(k, v)), metric)),
    (state) => state.count
  )
const gauge = (metric: Metric.Metric.Gauge<number>, tags: Record<string, string>) =>
  Effect.map(
    Metric.value(Object.entries(tags).reduce((m, [k, v]) => m.pipe(Metric.tagged(k, v)), metric)),
    (state) => state.value
  )

/** Every series of `cache` (named `name`) beside the figure of `stats` it must equal. */
const compare = (cache: TieredCache.TieredCache.Service, name: string) =>
  Effect.gen(function* () {
    const s = yield* cache.stats
    const b = yield* cache.invalidationStats
    const req = (outcome: string) => series(CacheMetrics.requests, { cache: name, outcome })
    const ev = (kind: string) => series(CacheMetrics.events, { cache: name, kind })
    const bus = (kind: string) => series(CacheMetrics.busMessages, { cache: name, kind })
    const rows: Array<[string, number, number]> = [
      ["l1_hit", yield* req("l1_hit"), s.l1Hits],
      ["l2_hit", yield* req("l2_hit"), s.tierHits[0]!],
      ["l3_hit", yield* req("l3_hit"), s.tierHits[1]!],
      ["coalesced", yield* req("coalesced"), s.coalesced],
      ["miss", yield* req("miss"), s.misses],
      ["promotion", yield* ev("promotion"), s.promotions],
      ["computation", yield* ev("computation"), s.computations],
      ["compute_error", yield* ev("compute_error"), s.computeErrors],
      ["decode_error", yield* ev("decode_error"), s.decodeErrors],
      ["write_failure", yield* ev("write_failure"), s.writeFailures],
      ["discarded_write", yield* ev("discarded_write"), s.discardedWrites],
      ["stale_served", yield* ev("stale_served"), s.staleServed],
      ["fail_safe", yield* ev("fail_safe"), s.failSafeHits],
      ["timeout", yield* ev("timeout"), s.timeouts],
      ["breaker_rejection", yield* ev("breaker_rejection"), s.breakerRejections],
      ["sent", yield* bus("sent"), b.messagesSent],
      ["publish_failure", yield* bus("publish_failure"), b.publishFailures],
      ["publish_skipped", yield* bus("publish_skipped"), b.publishesSkipped],
      ["received", yield* bus("received"), b.messagesReceived],
      ["own", yield* bus("own"), b.ownMessagesIgnored],
      ["malformed", yield* bus("malformed"), b.malformedMessages],
      ["applied", yield* bus("applied"), b.messagesApplied],
      ["resync", yield* bus("resync"), b.resyncs],
      ["in_flight", yield* gauge(CacheMetrics.inFlight, { cache: name }), s.inFlight]
    ]
    for (const [tier, n] of Object.entries(s.tierErrors)) {
      rows.push([`tier_errors ${tier}`, yield* series(CacheMetrics.tierErrors, { cache: name, tier }), n])
    }
    for (const [tier, state] of Object.entries(s.breakers)) {
      rows.push([
        `breaker ${tier}`,
        yield* gauge(CacheMetrics.breakerOpen, { cache: name, tier }),
        state === "closed" ? 0 : 1
      ])
    }
    return { rows, s, b }
  })

describe("every series of the Effect Metrics equals its figure in stats", () => {
  it.scoped("on two instances sharing an L2, an L3 and a bus", () =>
    Effect.gen(function* () {
      const hub = yield* TestBus.makeHub
      const l2 = yield* TestTier.make({ name: "l2" })
      const l3 = yield* TestTier.make({ name: "l3" })
      const run = Math.random().toString(36).slice(2)
      const instance = (id: string) =>
        Effect.flatMap(MemoryTier.make({ maxEntries: 100 }), (l1) =>
          TieredCache.make({ instanceId: id, name: `match-${id}-${run}`, defaultGrace: "1 minute" }).pipe(
            Effect.provideService(Tier.L1, l1),
            Effect.provideService(Tier.L2, l2),
            Effect.provideService(Tier.Tiers, [l3]),
            Effect.provideService(InvalidationBus.InvalidationBus, TestBus.make(hub))
          )
        )
      const a = yield* instance("a")
      const b = yield* instance("b")
      yield* TestClock.adjust(1000)

      // Writes and their messages: sent by a, its own ignored, applied by b.
      yield* a.set("k", 1, { ttl: "1 hour" })
      yield* a.set("s", 1, { ttl: "1 second" })
      yield* MultiInstance.settle([a, b], { hub })
      // Hits of each tier, and promotions.
      yield* a.get("k")
      yield* b.get("k")
      const now = yield* Clock.currentTimeMillis
      yield* l3.plant("deep", Entry.make({ value: "d", now, ttlMs: 60_000 }))
      yield* a.get("deep")
      yield* l2.plant("middle", Entry.make({ value: "m", now, ttlMs: 60_000 }))
      yield* a.get("middle")
      yield* a.getMany(["k", "k", "deep", "none"])
      // A decode error, a computation with a coalesced caller, a failed computation.
      yield* a.getTyped("k", Schema.String)
      const slow = Effect.as(Effect.sleep("10 millis"), 2)
      const first = yield* Effect.fork(a.getOrCompute("c", slow))
      const second = yield* Effect.fork(a.getOrCompute("c", slow))
      yield* TestClock.adjust(10)
      yield* Fiber.join(first)
      yield* Fiber.join(second)
      yield* Effect.flip(a.getOrCompute("e", Effect.fail("boom")))
      // Stale values: served with allowStale, by the fail-safe; a hard timeout.
      yield* TestClock.adjust(2000)
      yield* a.get("s", { allowStale: true })
      yield* a.getOrCompute("s", Effect.fail("down"))
      const hung = yield* Effect.fork(
        Effect.flip(
          a.getOrCompute("t", Effect.as(Effect.sleep("2 seconds"), 3), { timeouts: { hard: "1 second" } })
        )
      )
      yield* TestClock.adjust(1000)
      yield* Fiber.join(hung)
      yield* TestClock.adjust(1000)
      // A failing L3: its errors, then its breaker open, refusing calls.
      yield* l3.failOn("all")
      for (let i = 0; i < 6; i++) yield* a.get(`gone${i}`)
      // A bus that fails to publish; a malformed message; a reconnection.
      yield* hub.setFailing(true)
      yield* a.invalidate("k")
      yield* hub.setFailing(false)
      yield* hub.publishRaw("not a message")
      yield* hub.reconnect
      yield* MultiInstance.settle([a, b], { hub })

      // Every read counted once: a's 20 (getMany's four listings each), b's one.
      expect([(yield* a.stats).requests, (yield* b.stats).requests]).toEqual([20, 1])
      const reached = new Set<string>()
      for (const [cache, id] of [
        [a, "a"],
        [b, "b"]
      ] as const) {
        const { rows } = yield* compare(cache, `match-${id}-${run}`)
        expect(rows.filter(([, metric, stat]) => metric !== stat)).toEqual([])
        for (const [name, , stat] of rows) if (stat > 0) reached.add(name)
      }
      // The workload reached the figures (so that their rows check something); not reached:
      // writes every tier failed, discarded writes, publishes the bus's breaker refused.
      const unreached = ["write_failure", "discarded_write", "publish_skipped", "in_flight", "breaker l2"]
      const { rows } = yield* compare(a, `match-a-${run}`)
      expect(
        rows.map(([name]) => name).filter((name) => !reached.has(name) && !unreached.includes(name))
      ).toEqual([])
    })
  )
})
