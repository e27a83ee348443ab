/**
 * The test's Prometheus text parser accepts the exposition format and rejects anything else,
 * so that "/metrics parses" means something.
 */
import { describe, expect, it } from "vitest"
import { parsePrometheus, sampleValue } from "./prometheus.js"

const TEXT = `# HELP tiercache_requests_total Cache reads
# UNIT tiercache_requests_total 1
# TYPE tiercache_requests_total counter
tiercache_requests_total{cache="products",outcome="l1_hit"} 201
tiercache_requests_total{cache="a \\"quoted\\" name",outcome="miss"} 4 1700000000000
up 1
latency_bucket{le="+Inf"} +Inf
`

describe("parsePrometheus", () => {
  it("reads samples, labels (escapes included) and types", () => {
    const parsed = parsePrometheus(TEXT)
    expect(parsed.types).toEqual({ tiercache_requests_total: "counter" })
    expect(sampleValue(parsed, "tiercache_requests_total", { outcome: "l1_hit" })).toBe(201)
    expect(sampleValue(parsed, "tiercache_requests_total", { cache: 'a "quoted" name' })).toBe(4)
    expect(sampleValue(parsed, "up", {})).toBe(1)
    expect(sampleValue(parsed, "latency_bucket", { le: "+Inf" })).toBe(Number.POSITIVE_INFINITY)
    expect(sampleValue(parsed, "absent", {})).toBeUndefined()
  })

  it("rejects what is not Prometheus text", () => {
    expect(() => parsePrometheus('{"requests": 1}')).toThrow(/bad sample/)
    expect(() => parsePrometheus("requests_total one")).toThrow(/bad sample value/)
    expect(() => parsePrometheus("requests_total{outcome=l1} 1")).toThrow(/bad labels/)
    expect(() => parsePrometheus("# TYPE requests_total countr")).toThrow(/bad type/)
    expect(() => parsePrometheus("# HELP")).toThrow(/bad comment/)
    expect(parsePrometheus("# any other comment\n").samples).toEqual([])
  })

  it("refuses an ambiguous lookup", () => {
    expect(() => sampleValue(parsePrometheus(TEXT), "tiercache_requests_total", {})).toThrow(/2 samples/)
  })
})
