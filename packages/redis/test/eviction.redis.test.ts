/**
 * README's Production checklist, Memory and eviction: `invalidateTag` leaves tagged entries in
 * Redis under a tag record that refuses them; Redis evicting that record brings them back for
 * an instance that reads the tag's time afresh. With `maxmemory-policy noeviction` writes fail
 * in Redis instead, and are kept for recovery.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Either, Layer, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

/** One instance (a process) with README's layers on a connection of its own. */
const instance = (instanceId: string) =>
  Effect.gen(function* () {
    const connection = yield* Layer.build(connectionLayer())
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId }).pipe(
        Layer.provide(
          Layer.mergeAll(
            MemoryTier.layer({ maxEntries: 1_000 }),
            RedisTier.layer().pipe(Layer.provide(Layer.succeedContext(connection))),
            RedisInvalidationBus.layer().pipe(Layer.provide(Layer.succeedContext(connection)))
          )
        )
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

describe("memory and eviction (README Production checklist)", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "invalidateTag leaves the entries in Redis; the tag record evicted, a new instance reads them again",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const a = yield* instance("a")
          yield* a.set("k", "v", { ttl: "1 minute", tags: ["t"] })
          yield* a.invalidateTag("t")
          expect(yield* a.get("k")).toEqual(Option.none())
          // The entry is still in Redis, under the tag record that refuses it.
          expect(yield* Effect.promise(() => look.exists("tiercache:k", "tiercache:__tiercache:tag:t"))).toBe(
            2
          )
          const b = yield* instance("b")
          expect(yield* b.get("k")).toEqual(Option.none())
          // Redis evicts the record (under maxmemory with an eviction policy): here, removed as eviction does.
          expect(yield* Effect.promise(() => look.del("tiercache:__tiercache:tag:t"))).toBe(1)
          // A process started afterwards reads the tag's time afresh: the entry is back.
          const c = yield* instance("c")
          expect(yield* c.get("k")).toEqual(Option.some("v"))
        })
    )

    it.scoped(
      "with noeviction at maxmemory a write fails in Redis, succeeds in L1, and is kept and replayed",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          yield* Effect.promise(() => look.flushall())
          const a = yield* instance("a")
          yield* Effect.addFinalizer(() => Effect.promise(() => look.config("SET", "maxmemory", "0")))
          yield* Effect.promise(() => look.config("SET", "maxmemory-policy", "noeviction"))
          yield* Effect.promise(() => look.config("SET", "maxmemory", "1"))
          // Redis refuses writes now (OOM).
          const refused = yield* Effect.either(Effect.tryPromise(() => look.set("probe", "1")))
          expect(Either.isLeft(refused) && String(refused.left.cause)).toMatch(/OOM/)
          yield* a.set("k", "v", { ttl: "1 minute" })
          expect(yield* a.get("k")).toEqual(Option.some("v"))
          expect(yield* Effect.promise(() => look.exists("tiercache:k"))).toBe(0)
          expect((yield* a.stats).pendingChanges).toBe(1)
          yield* Effect.promise(() => look.config("SET", "maxmemory", "0"))
          // Replayed (recovery.retryInterval, 5 s): the write lands in Redis.
          yield* eventually(
            Effect.filterOrFail(
              Effect.promise(() => look.get("tiercache:k")),
              (stored) => stored !== null,
              () => new Error("not replayed yet")
            ),
            "10 seconds"
          )
          // The kept change is done with once it landed.
          yield* eventually(
            Effect.filterOrFail(
              Effect.map(a.stats, (stats) => stats.pendingChanges),
              (pending) => pending === 0,
              () => new Error("still pending")
            )
          )
        })
    )
  })
})
