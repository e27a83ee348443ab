/**
 * tiercache with OpenTelemetry through `@effect/opentelemetry`: spans go to an OTLP collector
 * when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (else to the console), and tiercache's Effect
 * Metrics are served for Prometheus on http://localhost:9464/metrics while it runs.
 *
 * Run: npx tsx examples/otel.ts
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { KeyValueStore } from "@effect/platform"
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { MemoryTier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Effect, Layer, Schema } from "effect"

const TelemetryLive = NodeSdk.layer(() => ({
  resource: { serviceName: "tiercache-example" },
  spanProcessor:
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT === undefined
      ? new SimpleSpanProcessor(new ConsoleSpanExporter())
      : new BatchSpanProcessor(new OTLPTraceExporter()),
  // Effect Metrics (tiercache_requests_total, ...) -> OpenTelemetry -> Prometheus text
  metricReader: new PrometheusExporter({ port: 9464 })
}))

const CacheLive = TieredCache.layer({ name: "users" }).pipe(
  Layer.provide(MemoryTier.layer({ maxEntries: 10_000 })),
  Layer.provide(KeyValueStoreTier.layer().pipe(Layer.provide(KeyValueStore.layerMemory)))
)

const User = Schema.Struct({ id: Schema.Number, name: Schema.String })
const loadUser = (id: number) =>
  Effect.succeed({ id, name: `user ${id}` }).pipe(Effect.delay("20 millis"), Effect.withSpan("db.loadUser"))

const program = Effect.gen(function* () {
  const cache = yield* TieredCache.TieredCache
  for (let i = 0; i < 3; i++) yield* cache.getOrComputeTyped("user:1", User, loadUser(1), { ttl: "1 minute" })
  // Reading stats pushes the current counts into the Effect Metrics the exporter reads.
  const stats = yield* cache.stats
  yield* Effect.log(`requests ${stats.requests}, L1 hits ${stats.l1Hits}, computations ${stats.computations}`)
}).pipe(Effect.withSpan("example"))

Effect.runFork(program.pipe(Effect.provide(Layer.merge(CacheLive, TelemetryLive))))
