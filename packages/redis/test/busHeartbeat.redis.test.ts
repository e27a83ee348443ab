import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { type RedisConnection, RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, tcpProxy, timed } from "./utils.js"

/**
 * A TCP proxy in front of the suite's server; `blackhole(i)` makes the i-th connection it
 * accepted (0: the command connection, 1: the Pub/Sub connection) drop whatever either side
 * sends, without closing anything: a peer gone without a word (its host down, or a NAT or load
 * balancer that forgot an idle flow).
 */
const proxy = Effect.gen(function* () {
  const conns: Array<{
    dropped: boolean
    dropPongs: boolean
    dropAfterPong: boolean
    stallMs: number
    stalled: boolean
  }> = []
  const port = yield* tcpProxy((socket, connectUp) => {
    const conn = { dropped: false, dropPongs: false, dropAfterPong: false, stallMs: 0, stalled: false }
    conns.push(conn)
    const up = connectUp()
    socket.on("data", (chunk: Buffer) => {
      if (!conn.dropped) up.write(chunk)
    })
    up.on("data", (chunk: Buffer) => {
      if (conn.dropped) return
      if (conn.dropPongs && chunk.toString("latin1").toLowerCase().includes("pong")) return
      socket.write(chunk)
      if (conn.dropAfterPong && chunk.toString("latin1").toLowerCase().includes("pong")) conn.dropped = true
      // The answer to a PING is with the client; the event loop is then busy before the
      // client reads it (a slow event loop, the process's own work).
      if (conn.stallMs > 0 && chunk.toString("latin1").toLowerCase().includes("pong")) {
        const until = Date.now() + conn.stallMs
        conn.stallMs = 0
        while (Date.now() < until) {}
        conn.stalled = true
      }
    })
  })
  return {
    port,
    blackhole: (i: number) => {
      conns[i]!.dropped = true
    },
    /** Makes the i-th connection drop everything once it has carried the next PING's answer. */
    blackholeAfterPong: (i: number) => {
      conns[i]!.dropAfterPong = true
    },
    /** Makes the i-th connection drop, or forward again, what carries a PING's answer. */
    dropPongs: (i: number, on: boolean) => {
      conns[i]!.dropPongs = on
    },
    /**
     * Makes the i-th connection's next PING answer reach the client, then keeps the event loop
     * busy for `ms` before the client can read it.
     */
    stallAfterPong: (i: number, ms: number) => {
      conns[i]!.stallMs = ms
    },
    /** Whether the i-th connection drops everything now. */
    silenced: (i: number) => conns[i]!.dropped,
    /** Whether the i-th connection's stall happened. */
    stalled: (i: number) => conns[i]!.stalled,
    /** How many connections it accepted. */
    count: () => conns.length
  }
})

/** A cache over RedisTier and RedisInvalidationBus on `connection`. */
const instance = (
  id: string,
  connection: Layer.Layer<RedisConnection.RedisConnection, unknown, RedisServer.RedisServer>
) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId: id }).pipe(
        Layer.provide(
          Layer.mergeAll(
            MemoryTier.layer({ maxEntries: 100 }),
            RedisTier.layer({ prefix: "hb:" }),
            RedisInvalidationBus.layer({ channel: "hb" })
          ).pipe(Layer.provide(connection))
        )
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

describe("the bus's Pub/Sub connection", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    // Its peer gone without a word, the connection stayed up for hours (TCP keepalive), the
    // instance heard no message and cleared nothing: it served its L1 copies of keys changed
    // elsewhere for their whole TTL. A PING unanswered within the command timeout now ends the
    // connection, which reconnects, and the resync clears L1 as after any lost connection.
    it.scoped("a Pub/Sub connection that stops answering is reconnected, and L1 resynced", () =>
      Effect.gen(function* () {
        const middle = yield* proxy
        const a = yield* instance("A", connectionLayer({ commandTimeout: "200 millis" }))
        const b = yield* instance(
          "B",
          connectionLayer({ port: middle.port, commandTimeout: "200 millis", connectTimeout: "1 second" })
        )
        yield* a.set("k", "v1", { ttl: "1 hour" })
        // A's Remove has reached B: B's copy of k, read now, stays until a message or a resync.
        yield* eventually(
          Effect.flatMap(b.invalidationStats, (s) => (s.messagesReceived >= 1 ? Effect.void : Effect.fail(s)))
        )
        expect(yield* b.get("k")).toEqual(Option.some("v1"))
        expect(middle.count()).toBe(2)
        middle.blackhole(1)
        yield* a.update("k", "v2", { ttl: "1 hour" })
        yield* eventually(
          Effect.flatMap(b.get("k"), (v) =>
            Option.getOrUndefined(v) === "v2" ? Effect.void : Effect.fail(v)
          ),
          "4 seconds"
        )
        expect((yield* b.invalidationStats).resyncs).toBeGreaterThanOrEqual(1)
      })
    )

    // README, Semantics, Bus: such a connection "is noticed within about a second": a PING a
    // second, unanswered past the command timeout (500 ms by default). The connection goes silent
    // right after a PING was answered, the worst moment: noticed 1.5 s later, reconnected and
    // resynced at once; 3 s leaves room for a loaded host (a PING every 3 s took 3.6 s).
    it.scoped("with the default command timeout, a silent Pub/Sub connection is resynced within 3 s", () =>
      Effect.gen(function* () {
        const middle = yield* proxy
        const b = yield* instance(
          "quick",
          connectionLayer({ port: middle.port, commandTimeout: "500 millis" })
        )
        expect(middle.count()).toBe(2)
        middle.blackholeAfterPong(1)
        yield* eventually(Effect.suspend(() => (middle.silenced(1) ? Effect.void : Effect.fail(0))))
        const [took] = yield* timed(
          eventually(
            Effect.flatMap(b.invalidationStats, (s) => (s.resyncs >= 1 ? Effect.void : Effect.fail(s))),
            "5 seconds"
          )
        )
        expect(took).toBeLessThan(3000)
      })
    )

    // An error reply is an answer: Redis busy (a script past busy-reply-threshold answers BUSY to
    // everything) has a live connection, which is not cut (nor L1 cleared) for it.
    it.scoped("a PING answered with an error (BUSY) keeps the connection", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const busy = yield* observer
        const b = yield* instance("busy", connectionLayer({ commandTimeout: "200 millis" }))
        yield* Effect.promise(() => look.config("SET", "busy-reply-threshold", "50"))
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => look.config("SET", "busy-reply-threshold", "5000")).pipe(Effect.ignore)
        )
        // Redis busy for 2.5 s: more than two heartbeats.
        yield* Effect.promise(() =>
          busy.eval(
            "local t = redis.call('TIME'); local s = t[1] * 1000 + t[2] / 1000; " +
              "while true do local n = redis.call('TIME'); if n[1] * 1000 + n[2] / 1000 - s > 2500 then break end end; return 1",
            0
          )
        )
        yield* Effect.sleep("1500 millis")
        expect((yield* b.invalidationStats).resyncs).toBe(0)
      })
    )

    // The event loop busy past the command timeout (a long synchronous task, a GC pause) while a
    // PING's answer waits in the socket: the answer came, the connection is alive, and it is
    // not cut (nor L1 cleared) for it.
    it.scoped("a PING answered while the event loop was busy keeps the connection", () =>
      Effect.gen(function* () {
        const middle = yield* proxy
        const b = yield* instance(
          "slow",
          connectionLayer({ port: middle.port, commandTimeout: "200 millis", connectTimeout: "1 second" })
        )
        expect(middle.count()).toBe(2)
        middle.stallAfterPong(1, 500)
        yield* eventually(
          Effect.suspend(() => (middle.stalled(1) ? Effect.void : Effect.fail("not yet"))),
          "3 seconds"
        )
        yield* Effect.sleep("300 millis")
        expect(middle.count()).toBe(2)
        expect((yield* b.invalidationStats).resyncs).toBe(0)
      })
    )

    // README (Semantics, Bus): a PING left unanswered ends the connection only "with nothing read
    // from the connection since it was sent (... messages ahead of it ... count)". Here no PING
    // is ever answered, while messages keep arriving: the connection is kept; once they stop,
    // the next unanswered PING ends it.
    it.scoped(
      "messages read after a PING count as its answer: the connection is kept while they arrive",
      () =>
        Effect.gen(function* () {
          const middle = yield* proxy
          const a = yield* instance("sender", connectionLayer({ commandTimeout: "200 millis" }))
          const b = yield* instance(
            "hearing",
            connectionLayer({ port: middle.port, commandTimeout: "200 millis", connectTimeout: "1 second" })
          )
          expect(middle.count()).toBe(2)
          middle.dropPongs(1, true)
          // A message every 50 ms for 3 s: three heartbeats, none answered.
          for (let i = 0; i < 60; i++) {
            yield* a.invalidate(`m${i}`)
            yield* Effect.sleep("50 millis")
          }
          expect((yield* b.invalidationStats).messagesReceived).toBeGreaterThanOrEqual(50)
          expect(middle.count()).toBe(2)
          expect((yield* b.invalidationStats).resyncs).toBe(0)
          // Silence: the next unanswered PING ends the connection (the command connection answers).
          yield* eventually(
            Effect.flatMap(b.invalidationStats, (s) => (s.resyncs >= 1 ? Effect.void : Effect.fail(s))),
            "4 seconds"
          )
          expect(middle.count()).toBeGreaterThan(2)
        })
    )

    // Redis busy with a long command (or a script below busy-reply-threshold) answers nobody, not
    // even BUSY, and loses no message meanwhile: every instance cut its Pub/Sub connection and
    // cleared its L1 for it. The command connection not answering either, the connection is kept.
    it.scoped("Redis busy with a long command (no answer on any connection) keeps the connection", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const b = yield* instance("stalled", connectionLayer({ commandTimeout: "200 millis" }))
        yield* Effect.sleep("100 millis")
        yield* Effect.promise(() => look.call("DEBUG", "SLEEP", "1.5"))
        yield* Effect.sleep("1200 millis")
        expect((yield* b.invalidationStats).resyncs).toBe(0)
      })
    )

    // Both flows gone without a word (a NAT that lost them, a host gone): the Pub/Sub connection
    // is still cut, after 10 command timeouts.
    it.scoped("no connection answering for 10 command timeouts: the Pub/Sub connection is cut", () =>
      Effect.gen(function* () {
        const middle = yield* proxy
        const b = yield* instance(
          "silent",
          connectionLayer({ port: middle.port, commandTimeout: "200 millis", connectTimeout: "1 second" })
        )
        expect(middle.count()).toBe(2)
        middle.blackhole(0)
        middle.blackhole(1)
        yield* eventually(
          Effect.flatMap(b.invalidationStats, (s) => (s.resyncs >= 1 ? Effect.void : Effect.fail(s))),
          "5 seconds"
        )
      })
    )
  })
})
