/**
 * The tiercache demo: a product service over a slow made-up catalogue, cached in a
 * `TieredCache` (MemoryTier L1; L2 on the file system, or Redis with `REDIS_URL`), with a live
 * page at `/`, `/stats`, `/health` and Prometheus `/metrics`.
 *
 * Run: `npx -y pnpm@12.4.2 demo` (then open http://localhost:3000). Environment:
 * - `PORT` (default 3000; 0 picks a free port);
 * - `REDIS_URL`: use Redis (RedisTier and RedisInvalidationBus) instead of the file system;
 * - `DEMO_DATA_DIR`: the file-system L2's directory (default `<tmp>/tiercache-demo-<PORT>`);
 * - `UPSTREAM_LATENCY_MS` (default 40), `PRODUCT_TTL_MS` (default 60000),
 *   `PRODUCT_GRACE_MS` (default 600000);
 * - `OTEL_EXPORTER_OTLP_ENDPOINT`: export spans over OTLP/HTTP; `DEMO_CONSOLE_SPANS=true`:
 *   print them.
 */
import { readFileSync } from "node:fs"
import { createServer } from "node:http"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { HttpServer } from "@effect/platform"
import { NodeHttpServer, NodeRuntime } from "@effect/platform-node"
import { Config, Duration, Effect, Layer, Option } from "effect"
import * as Cache from "./cache.js"
import { Catalogue } from "./catalogue.js"
import { Products } from "./products.js"
import { router } from "./routes.js"
import * as Telemetry from "./telemetry.js"

const Env = Config.all({
  port: Config.integer("PORT").pipe(
    Config.validate({ message: "PORT must be 0..65535", validation: (p) => p >= 0 && p <= 65535 }),
    Config.withDefault(3000)
  ),
  redisUrl: Config.option(Config.redacted("REDIS_URL")),
  dataDir: Config.option(Config.string("DEMO_DATA_DIR")),
  latencyMs: Config.integer("UPSTREAM_LATENCY_MS").pipe(Config.withDefault(40)),
  ttlMs: Config.integer("PRODUCT_TTL_MS").pipe(Config.withDefault(60_000)),
  graceMs: Config.integer("PRODUCT_GRACE_MS").pipe(Config.withDefault(600_000)),
  otlpEndpoint: Config.option(Config.string("OTEL_EXPORTER_OTLP_ENDPOINT")),
  consoleSpans: Config.boolean("DEMO_CONSOLE_SPANS").pipe(Config.withDefault(false))
})

const page = readFileSync(new URL("./page.html", import.meta.url), "utf8")

const MainLive = Layer.unwrapEffect(
  Effect.gen(function* () {
    const env = yield* Env
    const storage: Cache.Storage = Option.match(env.redisUrl, {
      onSome: (url) => ({ _tag: "Redis", url }),
      onNone: () => ({
        _tag: "FileSystem",
        directory: Option.getOrElse(env.dataDir, () => join(tmpdir(), `tiercache-demo-${env.port}`))
      })
    })
    const ServerLive = NodeHttpServer.layer(createServer, { port: env.port })
    const announce = Layer.effectDiscard(
      HttpServer.addressWith((address) =>
        Effect.log(
          address._tag === "TcpAddress"
            ? `tiercache demo listening on http://localhost:${address.port} (L2: ${storage._tag === "Redis" ? "Redis" : storage.directory})`
            : "tiercache demo listening"
        )
      )
    )
    const AppLive = Layer.unwrapEffect(
      HttpServer.addressWith((address) =>
        Effect.succeed(
          HttpServer.serve(
            router(page, {
              storage: storage._tag === "Redis" ? "redis" : "file-system",
              port: address._tag === "TcpAddress" ? address.port : env.port
            })
          )
        )
      )
    )
    return Layer.mergeAll(AppLive, announce).pipe(
      Layer.provide(Products.layer({ ttl: Duration.millis(env.ttlMs), grace: Duration.millis(env.graceMs) })),
      Layer.provide(Layer.merge(Cache.layer(storage), Catalogue.layer(Duration.millis(env.latencyMs)))),
      Layer.provide(ServerLive),
      Layer.provide(
        Telemetry.layer("tiercache-demo", {
          otlpEndpoint: Option.getOrUndefined(env.otlpEndpoint),
          console: env.consoleSpans
        })
      )
    )
  })
)

// runMain interrupts the program on SIGINT/SIGTERM: the server stops, then the cache's scope
// closes, which waits for the lower-tier writes of values it already answered.
NodeRuntime.runMain(Layer.launch(MainLive))
