import { describe, expect, layer } from "@effect/vitest"
import type { CacheError } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Exit, Layer, type Scope } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisStreams, RedisTier } from "../src/index.js"
import { connectionLayer } from "./utils.js"

// Options from plain JavaScript follow the cache's own rule (TieredCache.Options): only an absent
// (`undefined`) option takes its default; `null` or a value of the wrong type is a CacheConfigError
// naming the option. Before, `null` was read as the default by the bus (channel, namespace,
// malformedLogInterval, maxMessageBytes), by RedisTier (name) and by RedisConnection (the
// durations, largeValueBytes); a NaN or negative malformedLogInterval was read as 0; and a
// boolean or `host`/`tls` of another type was taken as it came (`allowEmptyPrefix: "yes"` as
// false, `enableAutoPipelining: "false"` as true, `streamNamesInSpans: "true"` as false).

// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const js = (options: unknown): any => options

/** How building ended: the failing option's name, "built", or what else it was. */
const outcome = <R>(built: Effect.Effect<unknown, unknown, R | Scope.Scope>) =>
  Effect.map(Effect.exit(Effect.scoped(built)), (exit) =>
    Exit.match(exit, {
      onSuccess: () => "built",
      onFailure: (cause) =>
        cause._tag === "Fail" && (cause.error as { _tag?: string })._tag === "CacheConfigError"
          ? (cause.error as CacheError.CacheConfigError).option
          : `not a CacheConfigError: ${String(cause).split("\n")[0]}`
    })
  )

/** Each case's outcome next to it, so that a failure names the case. */
const check = <R>(
  cases: ReadonlyArray<readonly [unknown, string]>,
  build: (options: unknown) => Effect.Effect<unknown, unknown, R | Scope.Scope>
) =>
  Effect.forEach(cases, ([options, option]) =>
    Effect.map(outcome(build(options)), (got) => expect([options, got]).toEqual([options, option]))
  )

describe("options from plain JavaScript", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.effect(
      "RedisConnection: null, wrong types and bad numbers are a CacheConfigError naming the option",
      () =>
        check(
          [
            [{ host: null }, "host"],
            [{ host: 6379 }, "host"],
            [{ host: "" }, "host"],
            [{ port: null }, "port"],
            [{ port: "6379" }, "port"],
            [{ port: Number.NaN }, "port"],
            [{ db: null }, "db"],
            [{ db: -1 }, "db"],
            [{ tls: null }, "tls"],
            [{ tls: "yes" }, "tls"],
            [{ tls: [] }, "tls"],
            [{ keyPrefix: null }, "keyPrefix"],
            [{ allowEmptyPrefix: null }, "allowEmptyPrefix"],
            [{ allowEmptyPrefix: "true" }, "allowEmptyPrefix"],
            [{ enableAutoPipelining: null }, "enableAutoPipelining"],
            [{ enableAutoPipelining: "false" }, "enableAutoPipelining"],
            [{ connectionName: null }, "connectionName"],
            [{ connectionName: 5 }, "connectionName"],
            ...(
              ["connectTimeout", "commandTimeout", "reconnectMaxDelay", "timeoutPerMegabyte"] as const
            ).flatMap((option) =>
              [null, "500", [500], Number.NaN, -1, Number.POSITIVE_INFINITY].map(
                (value) => [{ [option]: value }, option] as const
              )
            ),
            [{ largeValueBytes: null }, "largeValueBytes"],
            [{ largeValueBytes: "1024" }, "largeValueBytes"],
            [{ largeValueBytes: [1024] }, "largeValueBytes"],
            [{ largeValueBytes: Number.NaN }, "largeValueBytes"],
            [{ largeValueBytes: -1 }, "largeValueBytes"],
            [{ largeValueBytes: Number.POSITIVE_INFINITY }, "largeValueBytes"]
          ],
          // On the suite's server (a case the checks let through connects there, never to 6379).
          (options) =>
            Effect.flatMap(RedisServer.RedisServer, (server) =>
              Layer.build(
                RedisConnection.layer(js({ host: server.host, port: server.port, ...(options as object) }))
              )
            )
        )
    )

    it.effect("RedisTier: null, wrong types and bad numbers are a CacheConfigError naming the option", () =>
      check(
        [
          [{ name: null }, "name"],
          [{ name: 5 }, "name"],
          [{ name: ["redis"] }, "name"],
          [{ name: "" }, "name"],
          [{ prefix: null }, "prefix"],
          [{ prefix: 5 }, "prefix"],
          [{ allowEmptyPrefix: null }, "allowEmptyPrefix"],
          [{ allowEmptyPrefix: "yes" }, "allowEmptyPrefix"],
          [{ scanCount: null }, "scanCount"],
          [{ scanCount: "500" }, "scanCount"],
          [{ scanCount: Number.NaN }, "scanCount"],
          [{ scanCount: -1 }, "scanCount"],
          [{ scanCount: Number.POSITIVE_INFINITY }, "scanCount"],
          [{ name: undefined, prefix: undefined, scanCount: undefined }, "built"]
        ],
        (options) => Effect.provide(RedisTier.make(js(options)), connectionLayer())
      )
    )

    it.effect("RedisStreams: null and wrong types are a CacheConfigError naming the option", () =>
      check(
        [
          [{ prefix: null }, "prefix"],
          [{ prefix: ["s:"] }, "prefix"],
          [{ allowEmptyPrefix: null }, "allowEmptyPrefix"],
          [{ allowEmptyPrefix: 1 }, "allowEmptyPrefix"],
          [{ streamNamesInSpans: null }, "streamNamesInSpans"],
          [{ streamNamesInSpans: "true" }, "streamNamesInSpans"],
          [{ prefix: undefined, streamNamesInSpans: undefined }, "built"]
        ],
        (options) => Effect.provide(RedisStreams.make(js(options)), connectionLayer())
      )
    )

    it.effect(
      "RedisInvalidationBus: null, wrong types and bad numbers are a CacheConfigError naming the option",
      () =>
        check(
          [
            [{ channel: null }, "channel"],
            [{ channel: 5 }, "channel"],
            [{ channel: "" }, "channel"],
            [{ namespace: null }, "namespace"],
            [{ namespace: ["app:"] }, "namespace"],
            [{ malformedLogInterval: null }, "malformedLogInterval"],
            [{ malformedLogInterval: "60" }, "malformedLogInterval"],
            [{ malformedLogInterval: [60] }, "malformedLogInterval"],
            [{ malformedLogInterval: Number.NaN }, "malformedLogInterval"],
            [{ malformedLogInterval: -1 }, "malformedLogInterval"],
            // Infinite is a valid interval (Duration.infinity): the first line of each kind only.
            [{ malformedLogInterval: Number.POSITIVE_INFINITY }, "built"],
            [{ maxMessageBytes: null }, "maxMessageBytes"],
            [{ maxMessageBytes: "1024" }, "maxMessageBytes"],
            [{ maxMessageBytes: Number.NaN }, "maxMessageBytes"],
            [{ maxMessageBytes: -1 }, "maxMessageBytes"],
            [{ maxMessageBytes: Number.POSITIVE_INFINITY }, "maxMessageBytes"],
            [{ channel: undefined, namespace: undefined, malformedLogInterval: undefined }, "built"]
          ],
          (options) =>
            Layer.build(RedisInvalidationBus.layer(js(options))).pipe(Effect.provide(connectionLayer()))
        )
    )
  })
})
