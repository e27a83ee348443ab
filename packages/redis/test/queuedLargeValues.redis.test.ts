/**
 * Large values queued on their connection (internal/largeValues.ts): Redis answers a
 * connection's commands in order, so a large read or write sent behind others waits for their
 * transfers too. Each command's timeout was scaled to its own size only, so on a link that
 * carries one value well within its timeout, a few sent at once timed out though nothing was
 * wrong: a get or getMany answered a miss, a set failed (and counted toward the breaker).
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { RedisConnection, RedisTier } from "../src/index.js"
import { connectionLayer, observer, tcpProxy, throttlingProxy, timed } from "./utils.js"

const MB = 1024 * 1024

/** How many large values go at once, and the size of each. */
const COUNT = 12
const SIZE = MB / 2

/**
 * A link of 2.5 MB/s: one 512 KiB value crosses it in about 210 ms, a ninth of what its timeout
 * allows for its size (1 s + 1.6 s per MiB: 1.8 s); the ninth of values sent at once arrives
 * after about as long, the twelfth after 2.5 s. The values are small and the link slow so that
 * the link, not the host's CPU, sets the pace: every byte costs the test's process CPU time (the
 * client's encoding, the proxy) that a loaded host stretches, and with twelve 2 MiB values on a
 * link of 10 MB/s (the same times) and a command timeout of 300 ms, the first of them timed out
 * on a host loaded 6 times its cores while the process was still sending the others.
 */
const RATE = 2.5 * 1_000_000

/** The command timeout: the marker's, and a large value's before its bytes are counted. */
const COMMAND_TIMEOUT = "1 second"

/** What a large value's timeout grows by per MiB: four times what a MiB takes to cross the link. */
const TIMEOUT_PER_MEGABYTE = "1600 millis"

/** A RedisTier alone behind a link of RATE, keys under `<name>:`, values of 1 KiB or more large. */
const slowTier = (name: string) =>
  Effect.gen(function* () {
    const port = yield* throttlingProxy(RATE)
    const context = yield* Layer.build(
      RedisTier.layer().pipe(
        Layer.provide(
          RedisConnection.layer({
            host: "127.0.0.1",
            port,
            keyPrefix: `${name}:`,
            largeValueBytes: 1024,
            commandTimeout: COMMAND_TIMEOUT,
            timeoutPerMegabyte: TIMEOUT_PER_MEGABYTE,
            connectTimeout: "2 seconds",
            connectionName: name
          })
        )
      )
    )
    return Context.get(context, Tier.L2)
  })

/** A RedisTier on the suite's server directly, keys under `<name>:`: writes the values to read. */
const directTier = (name: string) =>
  Effect.map(
    Layer.build(
      RedisTier.layer().pipe(
        Layer.provide(
          connectionLayer({ keyPrefix: `${name}:`, largeValueBytes: 1024, timeoutPerMegabyte: "1 second" })
        )
      )
    ),
    (context) => Context.get(context, Tier.L2)
  )

/**
 * A TCP proxy in front of the suite's server whose `stall()` drops, from then on, what the
 * connections it accepted after the first (the large-value connection) send to Redis;
 * `firstDropped()` tells when (performance.now()) the first bytes it dropped arrived.
 */
const stallingProxy = Effect.gen(function* () {
  let stalled = false
  let firstDropped: number | undefined
  let accepted = 0
  const port = yield* tcpProxy((socket, connectUp) => {
    const up = connectUp()
    const bulk = accepted++ > 0
    socket.on("data", (chunk: Buffer) => {
      if (!(bulk && stalled)) up.write(chunk)
      else firstDropped ??= performance.now()
    })
    up.pipe(socket)
  })
  return {
    port,
    stall: () => {
      stalled = true
    },
    firstDropped: () => firstDropped
  }
})

const largeOf = (i: number) => `${i}:${"x".repeat(SIZE)}`
const entryOf = (i: number) => Entry.make({ value: largeOf(i), now: Date.now(), ttlMs: 60_000 })
const keys = Array.from({ length: COUNT }, (_, i) => `k${i}`)

/** The first characters of what a read answered for each key (the value's index), or "miss". */
const heads = (found: ReadonlyArray<Option.Option<Entry.Entry>>) =>
  found.map((entry) =>
    Option.match(entry, { onNone: () => "miss", onSome: (e) => String(e.value).split(":")[0] })
  )

const expected = keys.map((_, i) => String(i))

describe("large values queued on their connection", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "120 seconds" })((it) => {
    it.scoped("sets of 12 large values at once all land", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const tier = yield* slowTier("qset")
        // Opens the large-value connection.
        yield* tier.set("warm", entryOf(99))
        const results = yield* Effect.all(
          keys.map((key, i) => Effect.either(tier.set(key, entryOf(i)))),
          { concurrency: "unbounded" }
        )
        expect(results.map((r) => r._tag)).toEqual(keys.map(() => "Right"))
        const lengths = yield* Effect.promise(() =>
          Promise.all(keys.map((key) => look.strlen(`qset:${key}`)))
        )
        for (const length of lengths) expect(length).toBeGreaterThan(SIZE)
      })
    )

    it.scoped("gets of 12 large values at once all hit", () =>
      Effect.gen(function* () {
        const direct = yield* directTier("qget")
        for (const [i, key] of keys.entries()) yield* direct.set(key, entryOf(i))
        const tier = yield* slowTier("qget")
        const found = yield* Effect.all(
          keys.map((key) => tier.get(key)),
          { concurrency: "unbounded" }
        )
        expect(heads(found)).toEqual(expected)
      })
    )

    // The large writes that timed out on a connection that answers nothing no longer count:
    // counted until their replies came, each later write's timeout grew by theirs.
    it.scoped(
      "on a stalled large-value connection, each large write still fails within its own timeout",
      () =>
        Effect.gen(function* () {
          const proxy = yield* stallingProxy
          const context = yield* Layer.build(
            RedisTier.layer().pipe(
              Layer.provide(
                RedisConnection.layer({
                  host: "127.0.0.1",
                  port: proxy.port,
                  keyPrefix: "qstall:",
                  largeValueBytes: 1024,
                  commandTimeout: "200 millis",
                  timeoutPerMegabyte: "200 millis",
                  connectTimeout: "2 seconds",
                  connectionName: "qstall"
                })
              )
            )
          )
          const tier = Context.get(context, Tier.L2)
          // 1 MiB: a timeout of 400 ms alone.
          const entry = () => Entry.make({ value: "x".repeat(MB), now: Date.now(), ttlMs: 60_000 })
          yield* tier.set("warm", entry())
          proxy.stall()
          for (let i = 0; i < 6; i++) {
            const [elapsed, result] = yield* timed(Effect.either(tier.set(`k${i}`, entry())))
            expect(result._tag).toBe("Left")
            expect(elapsed).toBeLessThan(900)
          }
        })
    )

    // README, Timeouts: "eight 4 MiB values read or written at once get 0.9 s to 3.7 s" with
    // the default commandTimeout (500 ms) and timeoutPerMegabyte (100 ms): each its own 4 MiB
    // and those still on their way ahead of it.
    it.scoped("eight 4 MiB writes at once on a stalled connection fail at 0.9 s, 1.3 s ... 3.7 s", () =>
      Effect.gen(function* () {
        const proxy = yield* stallingProxy
        const context = yield* Layer.build(
          RedisTier.layer().pipe(
            Layer.provide(RedisConnection.layer({ host: "127.0.0.1", port: proxy.port, keyPrefix: "eight:" }))
          )
        )
        const tier = Context.get(context, Tier.L2)
        const entry = () => Entry.make({ value: "x".repeat(4 * MB), now: Date.now(), ttlMs: 60_000 })
        yield* tier.set("warm", entry())
        proxy.stall()
        const start = performance.now()
        const results = yield* Effect.all(
          Array.from({ length: 8 }, (_, i) => timed(Effect.either(tier.set(`k${i}`, entry())))),
          { concurrency: "unbounded" }
        )
        expect(results.map(([, result]) => result._tag)).toEqual(Array.from({ length: 8 }, () => "Left"))
        // What the client spent before the first value's bytes left it (serializing eight 4 MiB
        // values, on a loaded host hundreds of ms) is not the timeouts' to account for.
        const sent = proxy.firstDropped()! - start
        const elapsed = results.map(([ms]) => ms).sort((a, b) => a - b)
        elapsed.forEach((ms, i) => {
          const deadline = 900 + 400 * i
          // Never before its deadline (from the call); within 600 ms of it, from the first bytes
          // sent, on a loaded host.
          expect([i, ms >= deadline - 20, ms - sent < deadline + 600]).toEqual([i, true, true])
        })
      })
    )

    it.scoped("12 getManys of a large value and a small one at once hit each", () =>
      Effect.gen(function* () {
        const direct = yield* directTier("qmany")
        for (const [i, key] of keys.entries()) yield* direct.set(key, entryOf(i))
        yield* direct.set("small", Entry.make({ value: "small", now: Date.now(), ttlMs: 60_000 }))
        const tier = yield* slowTier("qmany")
        const found = yield* Effect.all(
          keys.map((key) => tier.getMany([key, "small"])),
          { concurrency: "unbounded" }
        )
        expect(found.map(heads)).toEqual(expected.map((head) => [head, "small"]))
      })
    )
  })
})
