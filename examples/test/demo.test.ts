/**
 * The README's demo walkthrough, run against the demo as a child process with its L2 on the
 * file system: the same requests as the README's curl lines, and the answers it shows.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { call, type Demo, settled, startDemo } from "./demoProcess.js"
import { parsePrometheus, sampleValue } from "./prometheus.js"

const dataDir = mkdtempSync(join(tmpdir(), "tiercache-demo-test-"))
let demo: Demo

const scrape = async (url: string) => {
  const res = await fetch(`${url}/metrics`)
  expect(res.headers.get("content-type")).toContain("text/plain")
  return parsePrometheus(await res.text())
}
const requests = (exposition: ReturnType<typeof parsePrometheus>, outcome: string) =>
  sampleValue(exposition, "tiercache_requests_total", { cache: "products", outcome }) ?? 0

describe("demo walkthrough (file-system L2)", () => {
  beforeAll(async () => {
    demo = await startDemo({ DEMO_DATA_DIR: dataDir })
  })
  afterAll(async () => {
    if (demo !== undefined && demo.child.exitCode === null) await demo.stop("SIGKILL")
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("answers from the upstream, then L1; updates and invalidations show in the next read", async () => {
    const url = demo.url
    const first = await call(`${url}/products/7`)
    expect(first.status).toBe(200)
    expect(first.headers.get("x-cache")).toBe("computed")
    expect(first.headers.get("x-response-time")).toMatch(/^\d+\.\d\d ms$/)
    expect(first.headers.get("server-timing")).toMatch(/^cache;desc="computed";dur=\d+\.\d\d$/)
    expect(first.body).toMatchObject({
      source: "computed",
      product: { id: 7, name: "Product 7", category: "toys" }
    })

    const second = await call(`${url}/products/7`)
    expect(second.headers.get("x-cache")).toBe("L1")
    expect(second.body.product).toEqual(first.body.product)

    await settled(url)
    const updated = await call(`${url}/products/7`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ price: 9.5 })
    })
    expect(updated.status).toBe(200)
    expect(updated.body.product.price).toBe(9.5)
    const afterUpdate = await call(`${url}/products/7`)
    expect(afterUpdate.headers.get("x-cache")).toBe("L1")
    expect(afterUpdate.body.product.price).toBe(9.5)

    await settled(url)
    expect((await call(`${url}/cache/keys/product:7`, { method: "DELETE" })).body).toEqual({
      invalidated: { key: "product:7" }
    })
    const afterKey = await call(`${url}/products/7`)
    expect(afterKey.headers.get("x-cache")).toBe("computed")
    expect(afterKey.body.product.price).toBe(9.5)

    await settled(url)
    expect((await call(`${url}/cache/pattern?glob=product:*`, { method: "DELETE" })).status).toBe(200)
    expect((await call(`${url}/products/7`)).headers.get("x-cache")).toBe("computed")

    // product 8 is in "books", product 7 in "toys": a tag invalidation reaches only the first
    expect((await call(`${url}/products/8`)).headers.get("x-cache")).toBe("computed")
    expect((await call(`${url}/products/8`)).headers.get("x-cache")).toBe("L1")
    await settled(url)
    expect((await call(`${url}/cache/tags/category:books`, { method: "DELETE" })).status).toBe(200)
    expect((await call(`${url}/products/8`)).headers.get("x-cache")).toBe("computed")
    expect((await call(`${url}/products/7`)).headers.get("x-cache")).toBe("L1")

    expect((await call(`${url}/products/1000`)).status).toBe(400)
    expect((await call(`${url}/products/abc`)).status).toBe(400)
  })

  it("a stampede of 200 concurrent HTTP requests runs the upstream once", async () => {
    const url = demo.url
    const before = (await call(`${url}/stats`)).body
    const answers = await Promise.all(Array.from({ length: 200 }, () => call(`${url}/products/42`)))
    const after = (await call(`${url}/stats`)).body
    expect(answers.every((a) => a.status === 200 && a.body.product.id === 42)).toBe(true)
    expect(after.upstream.calls - before.upstream.calls).toBe(1)
    expect(after.cache.computations - before.cache.computations).toBe(1)
    const sources = answers.map((a) => a.headers.get("x-cache"))
    expect(sources.filter((s) => s === "computed")).toHaveLength(1)
    expect(sources.every((s) => s === "computed" || s === "coalesced" || s === "L1")).toBe(true)
    expect(after.cache.requests - before.cache.requests).toBe(200)

    // the page's button: N concurrent reads inside the service, after dropping the key
    await settled(url)
    const report = (await call(`${url}/stampede?id=42&n=200`, { method: "POST" })).body
    expect(report).toMatchObject({ requests: 200, upstreamCalls: 1, sources: { computed: 1 } })
    expect(report.sources.computed + report.sources.coalesced + report.sources.L1).toBe(200)
  })

  it("/stats, /health and /metrics: Prometheus text, current when scraped", async () => {
    const url = demo.url
    const health = await call(`${url}/health`)
    expect(health.status).toBe(200)
    expect(health.body.status).toBe("healthy")
    expect(health.body.tiers.map((t: { name: string }) => t.name)).toEqual(["memory", "file"])

    const stats = (await call(`${url}/stats`)).body
    expect(stats.instance.storage).toBe("file-system")
    expect(stats.instance.port).toBe(demo.port)
    expect(stats.bus.enabled).toBe(false)

    const scraped = await scrape(url)
    expect(scraped.types.tiercache_requests_total).toBe("counter")
    expect(requests(scraped, "l1_hit")).toBe(stats.cache.l1Hits)
    expect(requests(scraped, "miss")).toBe(stats.cache.misses)
    expect(requests(scraped, "coalesced")).toBe(stats.cache.coalesced)
    expect(sampleValue(scraped, "tiercache_events_total", { cache: "products", kind: "computation" })).toBe(
      stats.cache.computations
    )

    // one more L1 hit and one more miss, then scrape at once: the counters already show them
    await call(`${url}/products/7`)
    await call(`${url}/products/99`)
    const next = await scrape(url)
    expect(requests(next, "l1_hit")).toBe(requests(scraped, "l1_hit") + 1)
    expect(requests(next, "miss")).toBe(requests(scraped, "miss") + 1)
  })

  it("spans are off without OTEL_EXPORTER_OTLP_ENDPOINT or DEMO_CONSOLE_SPANS", () => {
    expect(demo.output()).toContain("listening on")
    expect(demo.output()).not.toContain("traceId")
  })

  it("the live page is served at /", async () => {
    const res = await fetch(`${demo.url}/`)
    expect(res.headers.get("content-type")).toContain("text/html")
    const html = await res.text()
    expect(html).toContain("/stats")
    expect(html).toContain("/stampede")
  })

  it("SIGTERM exits 0 promptly; a restart answers from L2 on disk, then L1; past the TTL, stale", async () => {
    const { code, ms } = await demo.stop("SIGTERM")
    expect(code).toBe(0)
    expect(ms).toBeLessThan(10_000)

    demo = await startDemo({ DEMO_DATA_DIR: dataDir, PRODUCT_TTL_MS: "1000" })
    const url = demo.url
    const fromDisk = await call(`${url}/products/7`)
    expect(fromDisk.headers.get("x-cache")).toBe("L2")
    expect(fromDisk.body.product.price).toBe(9.5)
    expect((await call(`${url}/products/7`)).headers.get("x-cache")).toBe("L1")
    expect((await call(`${url}/stats`)).body.upstream.calls).toBe(0)

    expect((await call(`${url}/products/11`)).headers.get("x-cache")).toBe("computed")
    await new Promise((r) => setTimeout(r, 1_200))
    const stale = await call(`${url}/products/11`)
    expect(stale.headers.get("x-cache")).toBe("stale")
    expect(stale.body.product.id).toBe(11)
    // ... and refreshes in the background: one more catalogue call, then fresh from L1.
    // (the restarted process called the catalogue once before: product 11's computation)
    await settled(url)
    expect((await call(`${url}/stats`)).body.upstream.calls).toBe(2)
    const refreshed = await call(`${url}/products/11`)
    expect(refreshed.headers.get("x-cache")).toBe("L1")
    expect((await call(`${url}/stats`)).body.cache.staleServed).toBe(1)
    expect((await demo.stop("SIGINT")).code).toBe(0)
  })
})

describe("demo tracing", () => {
  it("DEMO_CONSOLE_SPANS=true prints the spans of a read that computes", async () => {
    const dir = mkdtempSync(join(tmpdir(), "tiercache-demo-spans-"))
    const traced = await startDemo({ DEMO_DATA_DIR: dir, DEMO_CONSOLE_SPANS: "true" })
    try {
      expect((await call(`${traced.url}/products/3`)).headers.get("x-cache")).toBe("computed")
      const deadline = Date.now() + 15_000
      // a span is printed when it ends; getOrCompute's ends once the L2 write is done
      const printed = () =>
        traced.output().includes("name: 'catalogue.load'") &&
        traced.output().includes("name: 'tiercache.getOrCompute'")
      while (!printed() && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100))
      }
      expect(traced.output()).toContain("name: 'catalogue.load'")
      expect(traced.output()).toContain("name: 'tiercache.getOrCompute'")
      expect((await traced.stop("SIGTERM")).code).toBe(0)
    } finally {
      if (traced.child.exitCode === null) await traced.stop("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
