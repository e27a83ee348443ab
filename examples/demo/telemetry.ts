/**
 * OpenTelemetry for the demo through `@effect/opentelemetry`:
 * - metrics: tiercache's Effect Metrics (and any other Effect metric of the process) read by
 *   an OpenTelemetry `PrometheusExporter`, serialized by `/metrics` on each scrape;
 * - traces: exported over OTLP/HTTP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, printed when
 *   `DEMO_CONSOLE_SPANS=1`, otherwise off.
 */
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { PrometheusExporter, PrometheusSerializer } from "@opentelemetry/exporter-prometheus"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanProcessor
} from "@opentelemetry/sdk-trace-base"
import { Context, Effect, Layer } from "effect"

/** The Prometheus exposition of the process's metrics. */
export class PrometheusMetrics extends Context.Tag("@tiercache/examples/PrometheusMetrics")<
  PrometheusMetrics,
  {
    /** The metrics as they are now, in the Prometheus text format. */
    readonly scrape: Effect.Effect<string, Error>
  }
>() {}

/** Where spans go. */
export interface TracingOptions {
  /** An OTLP/HTTP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); spans are exported in batches. */
  readonly otlpEndpoint?: string | undefined
  /** Print each span on stdout. */
  readonly console?: boolean | undefined
}

/** The OpenTelemetry SDK (metrics always, spans as `tracing` says) and the Prometheus scrape. */
export const layer = (serviceName: string, tracing: TracingOptions) =>
  Layer.unwrapEffect(
    Effect.sync(() => {
      // The exporter's own HTTP server stays off: the demo serves /metrics itself.
      const exporter = new PrometheusExporter({ preventServerStart: true })
      const serializer = new PrometheusSerializer()
      const spanProcessors: Array<SpanProcessor> = []
      if (tracing.otlpEndpoint !== undefined) {
        spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter()))
      }
      if (tracing.console === true) spanProcessors.push(new SimpleSpanProcessor(new ConsoleSpanExporter()))
      const SdkLive = NodeSdk.layer(() => ({
        resource: { serviceName },
        metricReader: exporter,
        spanProcessor: spanProcessors
      }))
      const scrape = Effect.tryPromise({
        try: () => exporter.collect(),
        catch: (cause) => new Error("collecting metrics failed", { cause })
      }).pipe(Effect.map(({ resourceMetrics }) => serializer.serialize(resourceMetrics)))
      return Layer.merge(SdkLive, Layer.succeed(PrometheusMetrics, { scrape }))
    })
  )
