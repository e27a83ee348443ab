/**
 * The defaults README's Options reference gives RedisConnection, RedisTier, RedisInvalidationBus
 * and RedisStreams, on a real redis-server, each layer built with no option but where the server
 * is. (The suite's connectionLayer sets commandTimeout and connectTimeout itself: these tests do
 * not use it.)
 */
import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisStreams, RedisTier } from "../src/index.js"
import { clientNames, eventually, failureOf, observer, tcpProxy, timed } from "./utils.js"

/** A connection with every default but the server's address. */
const plainConnection = Layer.unwrapEffect(
  Effect.map(RedisServer.RedisServer, (server) =>
    RedisConnection.layer({ host: server.host, port: server.port })
  )
)

describe("Redis layers' defaults (README Options reference)", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "RedisConnection: commandTimeout 500 ms, connectTimeout 2 s, keyPrefix tiercache:, largeValueBytes 1 MiB, 100 ms per MiB, auto-pipelining, reconnects at most 1 s apart, db 0, named tiercache",
      () =>
        Effect.gen(function* () {
          const connection = Context.get(yield* Layer.build(plainConnection), RedisConnection.RedisConnection)
          expect(connection.commandTimeout).toEqual(
            expect.objectContaining({ value: { _tag: "Millis", millis: 500 } })
          )
          expect(connection.connectTimeout).toEqual(
            expect.objectContaining({ value: { _tag: "Millis", millis: 2000 } })
          )
          expect(connection.keyPrefix).toBe("tiercache:")
          expect(connection.largeValueBytes).toBe(1024 * 1024)
          expect(connection.timeoutFor(1024 * 1024)).toBe(600)
          expect(connection.timeoutFor(20 * 1024 * 1024)).toBe(2500)
          const options = connection.client.options
          expect(options.enableAutoPipelining).toBe(true)
          expect(options.db ?? 0).toBe(0)
          expect(options.retryStrategy?.(100)).toBe(1000)
          const look = yield* observer
          expect(yield* clientNames(look)).toContain("tiercache:command")
        })
    )

    it.scoped("RedisConnection: a command Redis does not answer fails after the default 500 ms", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(RedisTier.layer().pipe(Layer.provideMerge(plainConnection)))
        const tier = Context.get(context, Tier.L2)
        const look = yield* observer
        yield* Effect.promise(() => look.client("PAUSE", 3000, "ALL"))
        const [ms, exit] = yield* timed(Effect.exit(tier.get("k")))
        yield* Effect.promise(() => look.client("UNPAUSE"))
        expect(failureOf(exit)).toMatchObject({ _tag: "TierError" })
        expect(ms).toBeGreaterThanOrEqual(490)
        expect(ms).toBeLessThan(1500)
      })
    )

    it.scoped(
      "RedisConnection: a server that accepts and never answers fails the build after the default 2 s",
      () =>
        Effect.gen(function* () {
          // Accepts the connection and forwards nothing: the first PING is never answered.
          const port = yield* tcpProxy(() => {})
          const [ms, exit] = yield* timed(
            Effect.exit(Effect.scoped(Layer.build(RedisConnection.layer({ host: "127.0.0.1", port }))))
          )
          expect(failureOf(exit)).toMatchObject({ _tag: "RedisConnectionError" })
          expect(ms).toBeGreaterThanOrEqual(1900)
          expect(ms).toBeLessThan(4000)
        })
    )

    it.scoped("RedisTier: named redis, under the connection's tiercache:, SCAN COUNT 500", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(RedisTier.layer().pipe(Layer.provideMerge(plainConnection)))
        const tier = Context.get(context, Tier.L2)
        expect(tier.name).toBe("redis")
        const l1 = yield* MemoryTier.make({ maxEntries: 10 })
        const cache = yield* TieredCache.make({ instanceId: "a" }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, tier)
        )
        yield* cache.set("defaults:k", "v")
        const look = yield* observer
        expect(yield* Effect.promise(() => look.exists("tiercache:defaults:k"))).toBe(1)
        const commands: Array<ReadonlyArray<string>> = []
        const monitoring = yield* Effect.acquireRelease(
          Effect.promise(() => look.duplicate().monitor()),
          (m) => Effect.sync(() => m.disconnect())
        )
        monitoring.on("monitor", (_time: string, args: ReadonlyArray<string>) => commands.push(args))
        yield* cache.invalidatePattern("defaults:*")
        yield* eventually(Effect.suspend(() => (commands.some(isScan) ? Effect.void : Effect.fail(0))))
        const scan = commands.find(isScan)!
        expect(scan[scan.findIndex((a) => a.toUpperCase() === "COUNT") + 1]).toBe("500")
        expect(yield* Effect.promise(() => look.exists("tiercache:defaults:k"))).toBe(0)
      })
    )

    it.scoped("RedisStreams: streams under the connection's tiercache:", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(RedisStreams.layer().pipe(Layer.provideMerge(plainConnection)))
        const streams = Context.get(context, CacheStreams.CacheStreams)
        yield* streams.publish("defaults:events", { a: "1" })
        const look = yield* observer
        expect(yield* Effect.promise(() => look.type("tiercache:defaults:events"))).toBe("stream")
      })
    )

    it.scoped(
      "RedisInvalidationBus: on channel cache:invalidate, stamped with the connection's tiercache:",
      () =>
        Effect.gen(function* () {
          const context = yield* Layer.build(
            Layer.mergeAll(RedisTier.layer(), RedisInvalidationBus.layer()).pipe(
              Layer.provideMerge(plainConnection)
            )
          )
          const l1 = yield* MemoryTier.make({ maxEntries: 10 })
          const cache = yield* TieredCache.make({ instanceId: "a" }).pipe(
            Effect.provideService(Tier.L1, l1),
            Effect.provide(context)
          )
          const listener = (yield* observer).duplicate()
          yield* Effect.addFinalizer(() => Effect.sync(() => listener.disconnect()))
          const received: Array<string> = []
          listener.on("message", (channel: string, message: string) => received.push(`${channel} ${message}`))
          yield* Effect.promise(() => listener.subscribe("cache:invalidate"))
          yield* cache.invalidate("defaults:k")
          yield* eventually(Effect.suspend(() => (received.length > 0 ? Effect.void : Effect.fail(0))))
          const [channel, json] = [
            received[0]!.split(" ")[0],
            received[0]!.slice(received[0]!.indexOf(" ") + 1)
          ]
          expect(channel).toBe("cache:invalidate")
          expect(JSON.parse(json)).toMatchObject({
            type: "Remove",
            key: "defaults:k",
            namespace: "tiercache:"
          })
        })
    )
  })
})

const isScan = (args: ReadonlyArray<string>) => args[0]?.toUpperCase() === "SCAN"
