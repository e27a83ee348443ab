/**
 * The demo's HTTP routes. Each product read answers with headers saying where the answer came
 * from (`X-Cache: L1 | L2 | computed | stale | coalesced`) and how long the read took
 * (`X-Response-Time`, and `Server-Timing` for browsers' developer tools).
 */
import { HttpRouter, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { TieredCache } from "@tiercache/core"
import { Effect, Option, Schema } from "effect"
import { COUNT, ProductPatch } from "./catalogue.js"
import { Products } from "./products.js"
import { PrometheusMetrics } from "./telemetry.js"

/** The process's identity, shown by `/stats`. */
export interface Instance {
  readonly storage: "file-system" | "redis"
  readonly port: number
}

const ProductId = Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, COUNT))
const IdParams = Schema.Struct({ id: ProductId })
const StampedeParams = Schema.Struct({
  id: Schema.optionalWith(ProductId, { default: () => 7 }),
  n: Schema.optionalWith(Schema.NumberFromString.pipe(Schema.int(), Schema.between(1, 5000)), {
    default: () => 200
  })
})

const badRequest = (message: string) => HttpServerResponse.json({ error: message }, { status: 400 })

/** The router; `page` is the live page's HTML. */
export const router = (page: string, instance: Instance) =>
  HttpRouter.empty.pipe(
    HttpRouter.get(
      "/",
      Effect.succeed(HttpServerResponse.text(page, { contentType: "text/html; charset=utf-8" }))
    ),
    HttpRouter.get(
      "/products/:id",
      Effect.gen(function* () {
        const { id } = yield* HttpRouter.schemaPathParams(IdParams)
        const products = yield* Products
        const answer = yield* products.read(id)
        const ms = answer.ms.toFixed(2)
        return yield* HttpServerResponse.json(answer, {
          headers: {
            "x-cache": answer.source,
            "x-response-time": `${ms} ms`,
            "server-timing": `cache;desc="${answer.source}";dur=${ms}`
          }
        })
      })
    ),
    HttpRouter.put(
      "/products/:id",
      Effect.gen(function* () {
        const { id } = yield* HttpRouter.schemaPathParams(IdParams)
        const patch = yield* HttpServerRequest.schemaBodyJson(ProductPatch)
        const products = yield* Products
        const changed = yield* products.update(id, patch)
        return yield* Option.match(changed, {
          onNone: () => HttpServerResponse.json({ error: `no product ${id}` }, { status: 404 }),
          onSome: (product) => HttpServerResponse.json({ product })
        })
      })
    ),
    HttpRouter.del(
      "/cache/keys/:key",
      Effect.gen(function* () {
        const { key } = yield* HttpRouter.schemaPathParams(Schema.Struct({ key: Schema.NonEmptyString }))
        yield* (yield* TieredCache.TieredCache).invalidate(key)
        return yield* HttpServerResponse.json({ invalidated: { key } })
      })
    ),
    HttpRouter.del(
      "/cache/pattern",
      Effect.gen(function* () {
        const { glob } = yield* HttpServerRequest.schemaSearchParams(
          Schema.Struct({ glob: Schema.NonEmptyString })
        )
        yield* (yield* TieredCache.TieredCache).invalidatePattern(glob)
        return yield* HttpServerResponse.json({ invalidated: { pattern: glob } })
      })
    ),
    HttpRouter.del(
      "/cache/tags/:tag",
      Effect.gen(function* () {
        const { tag } = yield* HttpRouter.schemaPathParams(Schema.Struct({ tag: Schema.NonEmptyString }))
        yield* (yield* TieredCache.TieredCache).invalidateTag(tag)
        return yield* HttpServerResponse.json({ invalidated: { tag } })
      })
    ),
    HttpRouter.post(
      "/stampede",
      Effect.gen(function* () {
        const { id, n } = yield* HttpServerRequest.schemaSearchParams(StampedeParams)
        const products = yield* Products
        return yield* HttpServerResponse.json(yield* products.stampede(id, n))
      })
    ),
    HttpRouter.get(
      "/stats",
      Effect.gen(function* () {
        const cache = yield* TieredCache.TieredCache
        const products = yield* Products
        return yield* HttpServerResponse.json({
          instance: { ...instance, instanceId: cache.instanceId },
          cache: yield* cache.stats,
          bus: yield* cache.invalidationStats,
          upstream: { calls: yield* products.upstreamCalls }
        })
      })
    ),
    HttpRouter.get(
      "/health",
      Effect.gen(function* () {
        const health = yield* (yield* TieredCache.TieredCache).health
        return yield* HttpServerResponse.json(health, { status: health.status === "unhealthy" ? 503 : 200 })
      })
    ),
    HttpRouter.get(
      "/metrics",
      Effect.gen(function* () {
        // Reading stats pushes the cache's current counts into its Effect Metrics, so every
        // scrape is current to the request.
        yield* (yield* TieredCache.TieredCache).stats
        const body = yield* (yield* PrometheusMetrics).scrape
        return HttpServerResponse.text(body, { contentType: "text/plain; version=0.0.4; charset=utf-8" })
      })
    ),
    HttpRouter.catchTags({
      ParseError: (error) => badRequest(error.message),
      RequestError: (error) => badRequest(error.message),
      ProductNotFound: (error) =>
        HttpServerResponse.json({ error: `no product ${error.id}` }, { status: 404 })
    })
  )
