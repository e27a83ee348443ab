/**
 * A large write is stored until its entry's `staleUntil`, not longer: its PX is counted when it
 * is sent on the large-value connection, after the marker's round trip and that connection's
 * open (on a tier's first large write, up to the connect timeout), not before them. Counted
 * before, the open's time was added to the entry's life in Redis (a read then took the entry's
 * remaining lifetime from Redis's PTTL, past its staleUntil), and an entry whose staleUntil
 * passed during the open was stored all the same.
 *
 * The same holds for writeIfNewer's small changes: they wait for a slot behind its large ones
 * (four at once), and so for the open too.
 *
 * The open of the large-value connection is held for a measured time by a proxy.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer, tcpProxy } from "./utils.js"

const prefix = "lwl:"

/** How long the large-value connection takes to open. */
const OPEN_MS = 1_500

/**
 * How much longer than its staleUntil an entry may live in Redis: its way to Redis and the
 * rounding of its PX, on a loaded machine. Far below OPEN_MS, which a PX counted early adds.
 */
const MARGIN_MS = 300

const largeValue = "x".repeat(5_000)

/**
 * A proxy in front of the suite's server: the first connection (the command connection) is
 * forwarded at once, every later one (the large-value connection) only after OPEN_MS.
 */
const slowOpeningProxy = Effect.suspend(() => {
  let accepted = 0
  return tcpProxy((socket, connectUp) => {
    setTimeout(
      () => {
        if (socket.destroyed) return
        const up = connectUp()
        socket.pipe(up)
        up.pipe(socket)
      },
      accepted++ === 0 ? 0 : OPEN_MS
    )
  })
})

describe("a large write on a large-value connection that takes its time to open", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("lives in Redis until its entry's staleUntil; an entry gone by then is not stored", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const port = yield* slowOpeningProxy
        const context = yield* Layer.build(
          RedisTier.layer({ prefix }).pipe(
            Layer.provide(
              connectionLayer({
                port,
                commandTimeout: "5 seconds",
                connectTimeout: "5 seconds",
                largeValueBytes: 1024
              })
            )
          )
        )
        const tier = Context.get(context, Tier.L2)
        const entry = (ttlMs: number, value = largeValue) => Entry.make({ value, now: Date.now(), ttlMs })
        // Something stored before, which the writes of entries gone by the time they are sent remove.
        for (const key of ["gone", "recoveredGone", "recoveredSmallGone"]) {
          yield* Effect.promise(() => look.set(prefix + key, "old", "PX", 60_000))
        }
        const written: Record<string, Entry.Entry> = {
          set: entry(60_000),
          recovered: entry(60_000),
          recovered3: entry(60_000),
          recovered4: entry(60_000),
          // Small, sent once a slot behind the four large changes is free.
          recoveredSmall: entry(60_000, "small"),
          // Gone (past its staleUntil) before the large-value connection is open.
          gone: entry(OPEN_MS / 2),
          recoveredGone: entry(OPEN_MS / 2),
          recoveredSmallGone: entry(OPEN_MS / 2, "small")
        }
        const at = Date.now()
        const [, applied] = yield* Effect.all(
          [
            Effect.all([tier.set("set", written.set!), tier.set("gone", written.gone!)], {
              concurrency: "unbounded",
              discard: true
            }),
            tier.writeIfNewer!(
              [
                "recovered",
                "recoveredGone",
                "recovered3",
                "recovered4",
                "recoveredSmall",
                "recoveredSmallGone"
              ].map((key) => ({ key, entry: written[key]!, at }))
            )
          ],
          { concurrency: "unbounded" }
        )
        expect(applied).toEqual([true, true, true, true, true, true])

        const excess: Record<string, number> = {}
        for (const key of Object.keys(written)) {
          const now = Date.now()
          const pttl = yield* Effect.promise(() => look.pttl(prefix + key))
          // PTTL -2: no key (the entry gone was not stored).
          excess[key] = pttl === -2 ? 0 : Math.max(0, pttl - (written[key]!.staleUntil - now))
        }
        expect(Object.entries(excess).filter(([, ms]) => ms > MARGIN_MS)).toEqual([])
        const stored = ["set", "recovered", "recovered3", "recovered4", "recoveredSmall"]
        const gone = ["gone", "recoveredGone", "recoveredSmallGone"]
        expect(yield* Effect.promise(() => look.exists(...stored.map((key) => prefix + key)))).toBe(
          stored.length
        )
        expect(yield* Effect.promise(() => look.exists(...gone.map((key) => prefix + key)))).toBe(0)
        // The marker outlives every large value written.
        const marker = yield* Effect.promise(() => look.pttl(`${prefix}${Tier.reservedPrefix}large`))
        const longest = Math.max(
          ...(yield* Effect.promise(() => Promise.all(stored.map((key) => look.pttl(prefix + key)))))
        )
        expect(marker).toBeGreaterThan(longest)
      })
    )
  })
})
