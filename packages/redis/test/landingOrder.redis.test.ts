/**
 * Two instances writing one key at once on a real Redis, the write made first landing last: A's
 * connection goes through a proxy that holds what A sends until B's write (made after A's) has
 * landed and told the others. Redis then holds A's value, and once the messages have arrived
 * every instance (A, B, and C, which only reads) must answer it: not B's own copy, nor the copy
 * C took from B's Update, though both were created later (lateUpdates.ts, README Semantics).
 */
import type * as net from "node:net"
import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, tcpProxy } from "./utils.js"

/** A proxy that, while `hold` is set, keeps what clients send and forwards it on `release`. */
const delayingProxy = Effect.gen(function* () {
  const state = { hold: false, queued: [] as Array<readonly [net.Socket, Buffer]> }
  const port = yield* tcpProxy((client, connectUp) => {
    const up = connectUp()
    client.on("data", (b: Buffer) => {
      if (state.hold) state.queued.push([up, b])
      else up.write(b)
    })
    up.on("data", (b: Buffer) => client.write(b))
  })
  return {
    port,
    hold: () => {
      state.hold = true
    },
    release: () => {
      state.hold = false
      for (const [socket, bytes] of state.queued.splice(0)) socket.write(bytes)
    }
  }
})

/** One instance as the README sets it up (MemoryTier, RedisTier, the Redis bus), on `port`. */
const instance = (id: string, prefix: string, port?: number) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId: id }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: 1000 })),
        Layer.provide(Layer.merge(RedisTier.layer({ prefix }), RedisInvalidationBus.layer())),
        Layer.provide(connectionLayer(port === undefined ? {} : { port }))
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

/** The value Redis holds for `full`. */
const inRedis = (look: Redis, full: string) =>
  Effect.map(
    Effect.promise(() => look.get(full)),
    (raw) => (raw === null ? undefined : Entry.deserialize(raw)?.value)
  )

describe("two writes of one key landing in the other order than they were made", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    for (const second of ["set", "update"] as const) {
      it.scoped(`A's update made first, B's ${second} landing first: every instance answers A's value`, () =>
        Effect.gen(function* () {
          const look = yield* observer
          const proxy = yield* delayingProxy
          const prefix = `order-${second}:`
          const a = yield* instance("a", prefix, proxy.port)
          const b = yield* instance("b", prefix)
          const c = yield* instance("c", prefix)
          const key = "k"
          yield* a.set(key, "old")
          // C holds a copy before the race.
          yield* eventually(Effect.filterOrFail(c.get(key), Option.isSome, () => new Error("not yet")))
          proxy.hold()
          const first = yield* Effect.fork(a.update(key, "from a"))
          yield* Effect.sleep("20 millis")
          yield* second === "set" ? b.set(key, "from b") : b.update(key, "from b")
          // C has heard of B's write (B's Update stored, or its Remove applied).
          yield* Effect.sleep("50 millis")
          proxy.release()
          yield* Fiber.join(first)
          expect(yield* inRedis(look, `${prefix}${key}`)).toBe("from a")
          // Once A's message has arrived everywhere, every instance answers Redis's value.
          yield* Effect.sleep("200 millis")
          for (const [name, cache] of [
            ["a", a],
            ["b", b],
            ["c", c]
          ] as const) {
            expect([name, yield* cache.get(key)]).toEqual([name, Option.some("from a")])
          }
        })
      )
    }
  })
})
