/**
 * A write that waits for an earlier large write of its key (keyOrder.ts) is stored until its
 * entry's `staleUntil`, not longer: its PX is counted when it is sent, not when it was called.
 * Counted at the call, the wait was added to the entry's life in Redis (a read then took the
 * entry's remaining lifetime from Redis's PTTL, past its staleUntil), and an entry whose
 * staleUntil passed during the wait was stored all the same, over the large value.
 *
 * The large writes are held in flight for a measured time by a proxy that holds back what the
 * large-value connection sends.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, Layer } from "effect"
import { RedisTier } from "../src/index.js"
import { connectionLayer, observer, tcpProxy } from "./utils.js"

const prefix = "wwl:"

/** How long the large writes are held in flight. */
const HOLD_MS = 1_500

/**
 * How much longer than its staleUntil an entry may live in Redis: its way to Redis and the
 * rounding of its PX, on a loaded machine. Far below HOLD_MS, which a PX counted at the call adds.
 */
const MARGIN_MS = 300

const largeValue = "x".repeat(5_000)

/**
 * A proxy in front of the suite's server: the first connection (the command connection) is
 * forwarded as it is; what any later one (the large-value connection) sends is held back while
 * `hold` is on, and sent on `release`.
 */
const holdingProxy = Effect.gen(function* () {
  let accepted = 0
  let holding = false
  let heldBytes = 0
  const held: Array<() => void> = []
  const port = yield* tcpProxy((socket, connectUp) => {
    const up = connectUp()
    up.pipe(socket)
    if (accepted++ === 0) {
      socket.pipe(up)
      return
    }
    socket.on("data", (chunk: Buffer) => {
      if (!holding) {
        up.write(chunk)
        return
      }
      heldBytes += chunk.length
      held.push(() => up.write(chunk))
    })
  })
  return {
    port,
    hold: () => {
      holding = true
    },
    heldBytes: () => heldBytes,
    release: () => {
      holding = false
      for (const send of held.splice(0)) send()
    }
  }
})

describe("a write that waited for a large write of its key", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped("lives in Redis until its entry's staleUntil, not for the wait longer", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const proxy = yield* holdingProxy
        const context = yield* Layer.build(
          RedisTier.layer({ prefix }).pipe(
            Layer.provide(
              connectionLayer({ port: proxy.port, commandTimeout: "5 seconds", largeValueBytes: 1024 })
            )
          )
        )
        const tier = Context.get(context, Tier.L2)
        const entry = (value: string, ttlMs = 60_000) => Entry.make({ value, now: Date.now(), ttlMs })
        // The large-value connection opened before the hold.
        yield* tier.set("warm", entry(largeValue))

        // Every way a write can wait, each behind a large write of its key held in flight.
        const keys = ["set", "setThen", "setMany", "setMany2", "large", "gone", "recovered"]
        proxy.hold()
        const large = yield* Effect.fork(
          Effect.forEach(keys, (key) => tier.set(key, entry(largeValue)), {
            concurrency: "unbounded",
            discard: true
          })
        )
        while (proxy.heldBytes() < keys.length * largeValue.length) yield* Effect.sleep("5 millis")
        const written: Record<string, Entry.Entry> = {
          set: entry("small"),
          setThen: entry("small"),
          setMany: entry("small"),
          setMany2: entry("small"),
          large: entry(largeValue),
          // Gone (past its staleUntil) by the time it is sent.
          gone: entry("small", HOLD_MS / 2),
          // writeIfNewer counted its PX after the wait already: kept so.
          recovered: entry("small")
        }
        const waited = yield* Effect.fork(
          Effect.all(
            [
              tier.set("set", written.set!),
              Effect.flatMap(tier.setThen!("setThen", written.setThen!, Effect.void), ([error]) =>
                error === undefined ? Effect.void : Effect.fail(error)
              ),
              tier.setMany([
                ["setMany", written.setMany!],
                ["setMany2", written.setMany2!]
              ]),
              tier.set("large", written.large!),
              tier.set("gone", written.gone!),
              tier.writeIfNewer!([{ key: "recovered", entry: written.recovered!, at: Date.now() }])
            ],
            { concurrency: "unbounded", discard: true }
          )
        )
        yield* Effect.sleep(`${HOLD_MS} millis`)
        proxy.release()
        yield* Fiber.join(large)
        yield* Fiber.join(waited)

        const excess: Record<string, number> = {}
        for (const key of keys) {
          const now = Date.now()
          const pttl = yield* Effect.promise(() => look.pttl(prefix + key))
          // PTTL -2: no key (the entry gone was not stored).
          excess[key] = pttl === -2 ? 0 : Math.max(0, pttl - (written[key]!.staleUntil - now))
        }
        expect(Object.entries(excess).filter(([, ms]) => ms > MARGIN_MS)).toEqual([])
        expect(yield* Effect.promise(() => look.exists(`${prefix}gone`))).toBe(0)
        expect(yield* Effect.promise(() => look.strlen(`${prefix}set`))).toBeLessThan(1024)
      })
    )
  })
})
