/**
 * README (Observability, Traces): "The demo exports spans over OTLP/HTTP when
 * `OTEL_EXPORTER_OTLP_ENDPOINT` is set". Here a collector of our own (an HTTP server taking
 * OTLP/JSON at /v1/traces) receives them: a read that computes is one trace, the HTTP server's
 * request span above `tiercache.getOrCompute`, which holds the L2 read, the computation (with the
 * demo's `catalogue.load`) and the L2 write, with the attributes of the README's table and no
 * cache key (`keysInSpans` is off); an L1 hit opens no span of the cache, but for the first read
 * of a tag the instance has not met (its time is read from L2); an invalidation is one
 * `tiercache.tier.remove`.
 */
import { mkdtempSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { call, type Demo, settled, startDemo } from "./demoProcess.js"

/** A span as OTLP/JSON carries it, its attributes as a record. */
interface Span {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly name: string
  readonly kind: number
  readonly attributes: Record<string, unknown>
}

// biome-ignore lint/suspicious/noExplicitAny: OTLP/JSON, read field by field
type Json = any

const spans: Array<Span> = []
let collector: Server
let demo: Demo
const dataDir = mkdtempSync(join(tmpdir(), "tiercache-demo-otlp-"))

/** OTLP span kinds. */
const INTERNAL = 1
const SERVER = 2
const CLIENT = 3

const received = (body: Json) => {
  for (const resource of body.resourceSpans ?? []) {
    for (const scope of resource.scopeSpans ?? []) {
      for (const span of scope.spans ?? []) {
        const attributes: Record<string, unknown> = {}
        for (const { key, value } of span.attributes ?? []) attributes[key] = Object.values(value)[0]
        spans.push({ ...span, attributes })
      }
    }
  }
}

/** The spans of the trace of the read of `path` answered `source`, each with its parent's name. */
const traceOf = (path: string, source: string) => {
  const root = spans.filter(
    (s) =>
      s.kind === SERVER &&
      s.attributes["url.path"] === path &&
      s.attributes["http.response.header.x-cache"] === source
  )
  expect(root, `one server span for ${path} (${source})`).toHaveLength(1)
  const trace = spans.filter((s) => s.traceId === root[0]!.traceId)
  const byId = new Map(trace.map((s) => [s.spanId, s]))
  return trace.map((s) => ({
    name: s.name,
    parent:
      s.parentSpanId === undefined || s.parentSpanId === "" ? undefined : byId.get(s.parentSpanId)?.name,
    kind: s.kind,
    attributes: s.attributes
  }))
}

describe("demo with OTEL_EXPORTER_OTLP_ENDPOINT", () => {
  beforeAll(async () => {
    collector = createServer((req, res) => {
      let body = ""
      req.on("data", (chunk) => {
        body += chunk
      })
      req.on("end", () => {
        if (req.url === "/v1/traces") received(JSON.parse(body))
        res.writeHead(200, { "content-type": "application/json" })
        res.end("{}")
      })
    })
    await new Promise<void>((resolve) => collector.listen(0, "127.0.0.1", resolve))
    const port = (collector.address() as AddressInfo).port
    demo = await startDemo({
      DEMO_DATA_DIR: dataDir,
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`
    })
  })
  afterAll(async () => {
    if (demo !== undefined && demo.child.exitCode === null) await demo.stop("SIGKILL")
    await new Promise((resolve) => collector?.close(resolve))
    rmSync(dataDir, { recursive: true, force: true })
  })

  it("a computed read is one trace: request > getOrCompute > L2 read, compute > catalogue.load, L2 write", async () => {
    const url = demo.url
    expect((await call(`${url}/products/3`)).headers.get("x-cache")).toBe("computed")
    await settled(url)
    expect((await call(`${url}/products/3`)).headers.get("x-cache")).toBe("L1")
    expect((await call(`${url}/products/3`)).headers.get("x-cache")).toBe("L1")
    await call(`${url}/cache/keys/product:3`, { method: "DELETE" })
    // The batch processor exports when the SDK shuts down, at the latest.
    expect((await demo.stop("SIGTERM")).code).toBe(0)

    const cache = { "tiercache.cache": "products" }
    const tier = (operation: string) => ({
      ...cache,
      "tiercache.tier": "file",
      "db.operation.name": operation
    })
    expect(
      traceOf("/products/3", "computed")
        .filter((s) => s.name !== "http.server GET")
        .sort((a, b) => a.name.localeCompare(b.name))
    ).toEqual([
      { name: "catalogue.load", parent: "tiercache.compute", kind: INTERNAL, attributes: {} },
      { name: "tiercache.compute", parent: "tiercache.getOrCompute", kind: INTERNAL, attributes: cache },
      { name: "tiercache.getOrCompute", parent: "http.server GET", kind: INTERNAL, attributes: cache },
      { name: "tiercache.tier.get", parent: "tiercache.getOrCompute", kind: CLIENT, attributes: tier("get") },
      { name: "tiercache.tier.set", parent: "tiercache.getOrCompute", kind: CLIENT, attributes: tier("set") }
    ])
    // Two L1 hits, then the invalidation; between the computed read and the hits, the /stats
    // polls of `settled` (one, or more while the computed value's write is under way).
    const server = spans.filter((s) => s.kind === SERVER)
    const polls = server.filter((s) => s.attributes["url.path"] === "/stats")
    const requests = server.filter((s) => s.attributes["url.path"] !== "/stats")
    expect(polls.length).toBeGreaterThanOrEqual(1)
    expect(server.slice(1, 1 + polls.length)).toEqual(polls)
    expect(
      requests.map((s) => [s.attributes["url.path"], s.attributes["http.response.header.x-cache"]])
    ).toEqual([
      ["/products/3", "computed"],
      ["/products/3", "L1"],
      ["/products/3", "L1"],
      ["/cache/keys/product:3", undefined]
    ])
    const [, firstHit, hit, invalidation] = requests
    const inTrace = (request: Span | undefined) =>
      spans
        .filter((s) => s.traceId === request!.traceId && s.kind !== SERVER)
        .map((s) => [s.name, s.parentSpanId === request!.spanId, s.attributes])
    // The entry carries the tag category:toys, which this instance has not met: its first L1
    // hit reads the tag's time from L2 (README, Traces), the next opens no span.
    expect(inTrace(firstHit)).toEqual([["tiercache.tier.get", true, tier("get")]])
    expect(inTrace(hit)).toEqual([])
    expect(inTrace(invalidation)).toEqual([["tiercache.tier.remove", true, tier("remove")]])
    // keysInSpans is off: no span of the cache names a key.
    for (const span of spans.filter((s) => s.name.startsWith("tiercache."))) {
      expect(JSON.stringify(span.attributes)).not.toContain("product:")
    }
  })
})
