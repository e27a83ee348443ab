import type * as net from "node:net"
import { describe, expect, layer } from "@effect/vitest"
import { Entry, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Either, Fiber, Layer } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { observer, tcpProxy, timed } from "./utils.js"

// A large write that timed out client-side may still be on its way: the writes of its key wait
// until a PING sent behind it on its connection is answered (largeValues.ts landedOf). Any answer
// will do, an error reply included; nothing is sent again and again meanwhile.

/**
 * A TCP proxy in front of the suite's server. `stall(i)` holds back what the i-th accepted
 * connection (0: the command connection, 1: the large-value connection) sends to Redis, until
 * `release(i)`; `pings(i)` counts the PINGs the i-th connection sent through it.
 */
const stallingProxy = Effect.gen(function* () {
  const conns: Array<{ stalled: boolean; held: Array<Buffer>; up: net.Socket; pings: number }> = []
  const port = yield* tcpProxy((socket, connectUp) => {
    const up = connectUp()
    const conn = { stalled: false, held: [] as Array<Buffer>, up, pings: 0 }
    conns.push(conn)
    socket.on("data", (chunk: Buffer) => {
      conn.pings += chunk.toString("latin1").split(/\$4\r\nping\r\n/i).length - 1
      if (conn.stalled) conn.held.push(chunk)
      else up.write(chunk)
    })
    up.pipe(socket)
  })
  return {
    port,
    stall: (i: number) => {
      conns[i]!.stalled = true
    },
    release: (i: number) => {
      const c = conns[i]!
      c.stalled = false
      for (const chunk of c.held) c.up.write(chunk)
      c.held = []
    },
    pings: (i: number) => conns[i]!.pings,
    count: () => conns.length
  }
})

/**
 * A RedisTier (keys under `<name>:`) behind `proxy`, whose large-value connection is open, and a
 * large write of `k` that then timed out (the proxy holds the large-value connection's bytes).
 */
const timedOutWrite = (proxy: Effect.Effect.Success<typeof stallingProxy>, name: string) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      RedisTier.layer().pipe(
        Layer.provide(
          RedisConnection.layer({
            host: "127.0.0.1",
            port: proxy.port,
            commandTimeout: "300 millis",
            timeoutPerMegabyte: "1 micros",
            connectTimeout: "2 seconds",
            keyPrefix: `${name}:`,
            largeValueBytes: 1024,
            connectionName: name
          })
        )
      )
    )
    const tier = Context.get(context, Tier.L2)
    const large = () => Entry.make({ value: "x".repeat(5_000), now: Date.now(), ttlMs: 60_000 })
    // Opens the large-value connection (the proxy's second connection).
    yield* tier.set("warm", large())
    expect(proxy.count()).toBe(2)
    // The large-value connection's bytes are held back: the next large SET times out.
    proxy.stall(1)
    const timedOut = yield* Effect.either(tier.set("k", large()))
    expect(timedOut._tag).toBe("Left")
    return tier
  })

describe("a large write that timed out (largeValues.ts landedOf)", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    // An error reply to that PING (here BUSY: another client's script runs past
    // busy-reply-threshold) is an answer too: Redis has dealt with the SET before it. A PING
    // resent at once on every rejection sent a few hundred in 1.7 s to a server already busy.
    it.scoped("its PING is not sent again and again while Redis answers BUSY", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const busyClient = yield* observer
        const proxy = yield* stallingProxy
        yield* timedOutWrite(proxy, "busy")
        yield* Effect.promise(() => look.config("SET", "busy-reply-threshold", "100"))
        // Redis busy for 2 s (a script on another connection); BUSY replies after 100 ms.
        const busy = yield* Effect.fork(
          Effect.promise(() =>
            busyClient.eval(
              "local t = redis.call('TIME'); local s = t[1] * 1000 + t[2] / 1000; " +
                "while true do local n = redis.call('TIME'); if n[1] * 1000 + n[2] / 1000 - s > 2000 then break end end; return 1",
              0
            )
          )
        )
        yield* Effect.sleep("300 millis")
        const before = proxy.pings(1)
        // The held SET and PING reach Redis while it is busy: both answered BUSY.
        proxy.release(1)
        yield* Fiber.join(busy)
        yield* Effect.promise(() => look.config("SET", "busy-reply-threshold", "5000"))
        const sent = proxy.pings(1) - before
        // A PING answered (even with an error) has done its job; a few retries at most.
        expect(sent).toBeLessThan(20)
      })
    )

    // Here the PING is refused (NOPERM: the user lost +ping in an ACL change; any persistent
    // error reply does the same), which still proves the SET ahead of it was handled. Retried for
    // as long as the connection was up, it kept the key's order from ever moving on: every later
    // write of the key (and every clear or removeMatching) waited for good, Redis up.
    it.scoped("a later write of its key does not wait for good when the PING is refused", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const proxy = yield* stallingProxy
        const tier = yield* timedOutWrite(proxy, "noperm")
        yield* Effect.promise(() => look.acl("SETUSER", "default", "-ping"))
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => look.acl("SETUSER", "default", "+ping")).pipe(Effect.ignore)
        )
        proxy.release(1)
        yield* Effect.sleep("200 millis")
        const small = Entry.make({ value: "small", now: Date.now(), ttlMs: 60_000 })
        const later = yield* Effect.either(Effect.timeout(tier.set("k", small), "3 seconds"))
        yield* Effect.promise(() => look.acl("SETUSER", "default", "+ping"))
        expect(later).toEqual(Either.right(undefined))
        expect(yield* Effect.promise(() => look.get("noperm:k"))).toContain("small")
      })
    )

    // Redis paused (SIGSTOP), or its host gone with the connection still up: the PING behind the
    // timed-out SET is never answered. A later write of the key (or a removal, a clear) waited
    // for it for good, beyond every timeout: a cache's set, uninterruptible, hung with it. It now
    // waits as long as the large write and its PING may take, then fails as a timed-out command
    // does (not sent: the large write keeps its place; recovery replays the change later).
    it.scoped("while the large write cannot land (its connection stalled), later writes fail in time", () =>
      Effect.gen(function* () {
        const proxy = yield* stallingProxy
        const tier = yield* timedOutWrite(proxy, "stalled")
        yield* Effect.addFinalizer(() => Effect.sync(() => proxy.release(1)))
        const small = Entry.make({ value: "small", now: Date.now(), ttlMs: 60_000 })
        const bounded = <A, E>(effect: Effect.Effect<A, E>) =>
          timed(Effect.either(effect)).pipe(Effect.timeout("3 seconds"), Effect.either)
        for (const write of [
          tier.set("k", small),
          tier.setMany([["k", small]]),
          tier.remove(["k"]),
          tier.removeMatching("k*"),
          tier.clear
        ]) {
          const ended = yield* bounded(write)
          expect(ended._tag).toBe("Right")
          if (ended._tag === "Right") {
            expect(ended.right[1]._tag).toBe("Left")
            expect(ended.right[0]).toBeLessThan(1500)
          }
        }
        // Through a cache: its set (uninterruptible) answers, L1 written, Redis's failure counted.
        const l1 = yield* MemoryTier.make({ maxEntries: 100 })
        const cache = yield* TieredCache.make({ breaker: false }).pipe(
          Effect.provideService(Tier.L1, l1),
          Effect.provideService(Tier.L2, tier)
        )
        const [elapsed, set] = yield* timed(Effect.either(cache.set("k", "v"))).pipe(
          Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("set hung") })
        )
        expect(set._tag).toBe("Right")
        expect(elapsed).toBeLessThan(1500)
      })
    )
  })
})
