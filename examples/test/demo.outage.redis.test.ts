/**
 * The demo with `REDIS_URL` on a password-protected redis-server that goes down and comes back.
 * README (Observability, Traces and Metrics): the cache's counters reach Prometheus exactly as
 * `stats` has them, a failed tier call shows in `tiercache_tier_errors_total` and its breaker in
 * `tiercache_breaker_open`, cache keys stay out of spans and logs unless `keysInSpans`, and
 * secrets (the Redis password) stay `Redacted`: never printed, in a span, a log line or an
 * error's cause. Reads keep answering while Redis is down: L2 reads are misses, the catalogue
 * answers.
 */
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Scope } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { call, type Demo, settled, startDemo } from "./demoProcess.js"
import { parsePrometheus, sampleValue } from "./prometheus.js"

const PASSWORD = "Pa55-w0rd-of-the-demo"
let scope: Scope.CloseableScope
let server: RedisServer.RedisServer.Service
let demo: Demo

/** The counters of `/metrics`, each by the `stats` field (and label) it comes from. */
const metricsOf = (text: string, stats: Json) => {
  const exposition = parsePrometheus(text)
  const sample = (name: string, labels: Record<string, string>) =>
    sampleValue(exposition, name, { cache: "products", ...labels }) ?? 0
  const cache = stats.cache
  const bus = stats.bus
  const pairs: Record<string, readonly [number, number]> = {
    l1_hit: [sample("tiercache_requests_total", { outcome: "l1_hit" }), cache.l1Hits],
    l2_hit: [sample("tiercache_requests_total", { outcome: "l2_hit" }), cache.l2Hits],
    coalesced: [sample("tiercache_requests_total", { outcome: "coalesced" }), cache.coalesced],
    miss: [sample("tiercache_requests_total", { outcome: "miss" }), cache.misses]
  }
  const events: Record<string, string> = {
    promotion: "promotions",
    computation: "computations",
    compute_error: "computeErrors",
    decode_error: "decodeErrors",
    write_failure: "writeFailures",
    discarded_write: "discardedWrites",
    stale_served: "staleServed",
    fail_safe: "failSafeHits",
    timeout: "timeouts",
    breaker_rejection: "breakerRejections"
  }
  for (const [kind, field] of Object.entries(events)) {
    pairs[kind] = [sample("tiercache_events_total", { kind }), cache[field]]
  }
  const messages: Record<string, string> = {
    sent: "messagesSent",
    publish_failure: "publishFailures",
    publish_skipped: "publishesSkipped",
    received: "messagesReceived",
    own: "ownMessagesIgnored",
    malformed: "malformedMessages",
    applied: "messagesApplied",
    resync: "resyncs"
  }
  for (const [kind, field] of Object.entries(messages)) {
    pairs[`bus ${kind}`] = [sample("tiercache_bus_messages_total", { kind }), bus[field]]
  }
  pairs["tier errors redis"] = [
    sample("tiercache_tier_errors_total", { tier: "redis" }),
    cache.tierErrors.redis ?? 0
  ]
  pairs["breaker redis"] = [
    sample("tiercache_breaker_open", { tier: "redis" }),
    cache.breakers.redis === "closed" ? 0 : 1
  ]
  pairs["in flight"] = [sample("tiercache_in_flight", {}), cache.inFlight]
  return pairs
}
// biome-ignore lint/suspicious/noExplicitAny: the stats' JSON, read field by field
type Json = any

/**
 * `/metrics` and `/stats` read at one moment: a scrape, the stats, a scrape again, until the two
 * scrapes agree (background work, such as a breaker's state, may change between requests).
 */
const scrapeWithStats = async (url: string) => {
  for (let attempt = 0; ; attempt++) {
    const before = await (await fetch(`${url}/metrics`)).text()
    const stats = (await call(`${url}/stats`)).body
    const after = await (await fetch(`${url}/metrics`)).text()
    const lines = (text: string) => text.split("\n").filter((line) => line.startsWith("tiercache_"))
    if (JSON.stringify(lines(before)) === JSON.stringify(lines(after)) || attempt === 10) {
      return { stats, metrics: metricsOf(after, stats) }
    }
  }
}

/** Each pair's metric value and stats value, for `toEqual` on both sides. */
const sides = (pairs: Record<string, readonly [number, number]>) => ({
  metrics: Object.fromEntries(Object.entries(pairs).map(([k, [m]]) => [k, m])),
  stats: Object.fromEntries(Object.entries(pairs).map(([k, [, s]]) => [k, s]))
})

describe("demo on a password-protected Redis that goes down", () => {
  beforeAll(async () => {
    scope = Effect.runSync(Scope.make())
    server = await Effect.runPromise(RedisServer.make({ password: PASSWORD }).pipe(Scope.extend(scope)))
    demo = await startDemo({
      REDIS_URL: `redis://:${PASSWORD}@${server.host}:${server.port}`,
      DEMO_CONSOLE_SPANS: "true"
    })
  })
  afterAll(async () => {
    if (demo !== undefined && demo.child.exitCode === null) await demo.stop("SIGKILL")
    if (scope !== undefined) await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  it("keeps answering while Redis is down; /metrics equals /stats before, during and after", async () => {
    const url = demo.url
    expect((await call(`${url}/products/5`)).headers.get("x-cache")).toBe("computed")
    expect((await call(`${url}/products/5`)).headers.get("x-cache")).toBe("L1")
    await settled(url)
    const up = await scrapeWithStats(url)
    expect(sides(up.metrics).metrics).toEqual(sides(up.metrics).stats)
    expect(up.stats.cache.tierErrors).toEqual({})

    await Effect.runPromise(server.stop)
    // Reads go on: what L1 holds from L1, the rest from the catalogue (L2 reads are misses).
    for (let id = 10; id < 20; id++) {
      const answer = await call(`${url}/products/${id}`)
      expect([answer.status, answer.body.product?.id, answer.headers.get("x-cache")]).toEqual([
        200,
        id,
        "computed"
      ])
    }
    expect((await call(`${url}/products/5`)).headers.get("x-cache")).toBe("L1")
    await settled(url)
    const health = await call(`${url}/health`)
    expect(health.status).toBe(200)
    expect(health.body.status).toBe("degraded")
    expect(health.body.tiers.map((t: Json) => [t.name, t.healthy])).toEqual([
      ["memory", true],
      ["redis", false]
    ])
    const down = await scrapeWithStats(url)
    expect(sides(down.metrics).metrics).toEqual(sides(down.metrics).stats)
    expect(down.stats.cache.requests - up.stats.cache.requests).toBe(11)
    expect(down.stats.cache.misses - up.stats.cache.misses).toBe(10)
    expect(down.metrics["tier errors redis"]![0]).toBeGreaterThan(0)
    expect(down.metrics["breaker redis"]![0]).toBe(1)

    // Redis comes back: the cache uses it again.
    await Effect.runPromise(server.start)
    const deadline = Date.now() + 30_000
    while ((await call(`${url}/health`)).body.status !== "healthy" && Date.now() < deadline) {
      await call(`${url}/products/${20 + (Date.now() % 50)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    expect((await call(`${url}/health`)).body.status).toBe("healthy")
    await settled(url)
    const back = await scrapeWithStats(url)
    expect(sides(back.metrics).metrics).toEqual(sides(back.metrics).stats)
    expect(back.metrics["breaker redis"]![0]).toBe(0)

    expect((await demo.stop("SIGTERM")).code).toBe(0)
    const output = demo.output()
    // Spans were printed (the check below reads them), with their errors.
    expect(output).toContain("name: 'tiercache.tier.get'")
    expect(output).toContain("'error.type': 'TierError'")
    expect(output).not.toContain(PASSWORD)
    expect(output).not.toContain(encodeURIComponent(PASSWORD))
    expect(output).not.toContain(Buffer.from(PASSWORD).toString("base64"))
    // No cache key either (keysInSpans is off): the request's URL path is /products/5, the
    // cache's key product:5.
    expect(output).not.toMatch(/product:\d/)
  })
})
