import * as Fs from "node:fs"
import { describe, expect, layer } from "@effect/vitest"
import { CacheStreams, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Cause, Chunk, Context, Effect, Exit, Layer, Option, Redacted, Stream } from "effect"
import { RedisConnection, RedisInvalidationBus, RedisStreams, RedisTier } from "../src/index.js"
import { eventually, observer } from "./utils.js"

// Issue 12, item 8: the ACL the README's production checklist documents is enough for
// everything the cache and the streams do, on a real ACL user.

const PASSWORD = "acl-test-password"

/** The README's `ACL SETUSER tiercache ...` line, as arguments, with the password filled in. */
const documentedAcl = (): Array<string> => {
  const readme = Fs.readFileSync(new URL("../../../README.md", import.meta.url), "utf8")
  const line = readme.split("\n").find((l) => l.trim().startsWith("ACL SETUSER tiercache "))
  if (line === undefined) throw new Error("README documents no ACL SETUSER tiercache line")
  return line.trim().replace(">PASSWORD", `>${PASSWORD}`).split(/\s+/).slice(2)
}

describe("the documented ACL", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("is enough for reads, writes, large values, patterns, tags, clear, the bus and streams", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const look = yield* observer
        const [name, ...rules] = documentedAcl()
        expect(name).toBe("tiercache")
        yield* Effect.promise(() => look.acl("SETUSER", name!, ...rules))
        // Foreign data the user may not touch.
        yield* Effect.promise(() => look.set("app:queue", "job"))

        const connectionOptions: RedisConnection.Options = {
          host: server.host,
          port: server.port,
          username: Redacted.make("tiercache"),
          password: Redacted.make(PASSWORD),
          largeValueBytes: 64 * 1024
        }
        const instance = (instanceId: string) =>
          Effect.gen(function* () {
            const l1 = yield* MemoryTier.make({ maxEntries: 1000 })
            const context = yield* Layer.build(
              TieredCache.layer({ instanceId }).pipe(
                Layer.provideMerge(
                  Layer.mergeAll(
                    Layer.succeed(Tier.L1, l1),
                    RedisTier.layer(),
                    RedisInvalidationBus.layer(),
                    RedisStreams.layer()
                  )
                ),
                Layer.provideMerge(RedisConnection.layer(connectionOptions))
              )
            )
            return { cache: Context.get(context, TieredCache.TieredCache), context, l1 }
          })
        const a = yield* instance("a")
        const b = yield* instance("b")

        const big = "y".repeat(200 * 1024)
        yield* a.cache.set("small", 1, { ttl: "1 minute", tags: ["t"] })
        yield* a.cache.set("other", 2, { ttl: "1 minute" })
        expect(yield* b.cache.get("small")).toEqual(Option.some(1)) // lone read
        // The script before any large value: EXISTS and MGET.
        expect((yield* b.cache.getMany(["small", "other"])).map(Option.isSome)).toEqual([true, true])
        yield* a.cache.set("big", big, { ttl: "1 minute" }) // the marker (a script), then SET
        const [x, y] = yield* Effect.all([b.cache.get("big"), b.cache.get("other")], { concurrency: 2 })
        expect(Option.map(x, (v) => (v as string).length)).toEqual(Option.some(big.length)) // large
        expect(y).toEqual(Option.some(2)) // the script with the marker: GETRANGE per key
        // The bus: b holds "small" in L1; a's update reaches it.
        yield* a.cache.update("small", 3, { ttl: "1 minute" })
        yield* eventually(
          Effect.flatMap(b.l1.get("small"), (e) =>
            Option.isSome(e) && e.value.value === 3 ? Effect.void : Effect.fail("not yet")
          )
        )
        yield* a.cache.invalidateTag("t")
        yield* a.cache.invalidatePattern("oth*")
        yield* a.cache.invalidate("big")
        yield* a.cache.clear
        // Only the large-value marker is left, to its expiry (README: Production checklist).
        expect(yield* Effect.promise(() => look.keys("tiercache:*"))).toEqual(["tiercache:__tiercache:large"])
        expect(yield* Effect.promise(() => look.get("app:queue"))).toBe("job")

        // Streams: publish, read back (plain, blocking, newest first), a consumer group.
        const streams = Context.get(a.context, CacheStreams.CacheStreams)
        const id = yield* streams.publish("events", { kind: "login" }, 100)
        expect((yield* streams.readLatest("events", 1)).map((e) => e.id)).toEqual([id])
        expect((yield* streams.read("events", "0", 10, 100)).map((e) => e.id)).toEqual([id])
        yield* streams.createGroup("events", "g", "0")
        const got = yield* streams
          .consume("events", "g", "c1", { blockMs: 100 })
          .pipe(Stream.take(1), Stream.runCollect)
        expect(Chunk.toReadonlyArray(got).map((e) => e.id)).toEqual([id])
        expect(yield* streams.ack("events", "g", [id])).toBe(1)
        // claimIdleMs: c2 takes over what c1 left unacknowledged (XPENDING, XCLAIM).
        const left = yield* streams.publish("events", { kind: "logout" }, 100)
        yield* streams.consume("events", "g", "c1", { blockMs: 100 }).pipe(Stream.take(1), Stream.runDrain)
        const claimed = yield* streams
          .consume("events", "g", "c2", { blockMs: 100, claimIdleMs: 100 })
          .pipe(Stream.take(1), Stream.runCollect)
        expect(Chunk.toReadonlyArray(claimed).map((e) => e.id)).toEqual([left])
        expect(yield* streams.ack("events", "g", [left])).toBe(1)

        for (const i of [a, b]) {
          const stats = yield* i.cache.stats
          expect(stats.tierErrors).toEqual({})
          const bus = yield* i.cache.invalidationStats
          expect(bus.publishFailures).toBe(0)
        }
      })
    )

    // README: "+select too when db is not 0".
    it.scoped(
      "on a db other than 0 it needs +select: without it the connection is refused, with it the cache works",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const look = yield* observer
          const [, ...rules] = documentedAcl()
          const connect = (user: string) =>
            Layer.build(
              Layer.mergeAll(RedisTier.layer(), RedisInvalidationBus.layer()).pipe(
                Layer.provideMerge(MemoryTier.layer({ maxEntries: 100 })),
                (tiers) => TieredCache.layer({}).pipe(Layer.provide(tiers)),
                Layer.provide(
                  RedisConnection.layer({
                    host: server.host,
                    port: server.port,
                    db: 1,
                    username: Redacted.make(user),
                    password: Redacted.make(PASSWORD)
                  })
                )
              )
            )
          yield* Effect.promise(() => look.acl("SETUSER", "noselect", ...rules))
          const refused = yield* Effect.exit(connect("noselect"))
          expect(Exit.isFailure(refused) && Cause.failureOption(refused.cause)).toMatchObject(
            Option.some({ _tag: "RedisConnectionError" })
          )
          expect(Exit.isFailure(refused) && String(Cause.squash(refused.cause))).toMatch(/NOPERM.*select/i)
          yield* Effect.promise(() => look.acl("SETUSER", "withselect", ...rules, "+select"))
          const context = yield* connect("withselect")
          const cache = Context.get(context, TieredCache.TieredCache)
          yield* cache.set("k", "v", { ttl: "1 minute" })
          expect(
            yield* Effect.promise(() => look.select(1).then(() => look.get("tiercache:k")))
          ).not.toBeNull()
          yield* cache.invalidate("k")
          expect(yield* Effect.promise(() => look.exists("tiercache:k"))).toBe(0)
        })
    )
  })
})
