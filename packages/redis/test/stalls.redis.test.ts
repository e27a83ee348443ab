/**
 * A command connection that answers nothing (internal/stalls.ts): once its commands have timed
 * out with nothing read from it for STALL_LIMIT command timeouts, it is cut and made again, so
 * a peer gone without a word (a host down, a NAT that forgot the flow) is not kept until TCP
 * gives up; a server busy for fewer timeouts keeps its connection.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { RedisConnection } from "../src/index.js"
import { STALL_LIMIT } from "../src/internal/stalls.js"
import { heldClient } from "./heldClient.js"
import { commandClient, eventually, silencingProxy } from "./utils.js"

const TIMEOUT_MS = 100

/** Sends a PING every TIMEOUT_MS / 2 until one is answered or `limitMs` passed; answers whether one was. */
const pingUntilAnswered = (client: { readonly ping: () => Promise<string> }, limitMs: number) =>
  Effect.promise(async () => {
    const until = Date.now() + limitMs
    while (Date.now() < until) {
      const answered = await client.ping().then(
        () => true,
        () => false
      )
      if (answered) return true
      await new Promise((resolve) => setTimeout(resolve, TIMEOUT_MS / 2))
    }
    return false
  })

describe("a command connection that answers nothing", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "60 seconds" })((it) => {
    it.scoped(
      "is cut once its commands timed out with nothing read for STALL_LIMIT timeouts, and made again",
      () =>
        Effect.gen(function* () {
          const { port, accepted, blackhole } = yield* silencingProxy
          const client = yield* commandClient({
            host: "127.0.0.1",
            port,
            commandTimeout: `${TIMEOUT_MS} millis`,
            reconnectMaxDelay: "50 millis"
          })
          expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
          const first = accepted()
          blackhole()
          const failure = yield* Effect.promise(() =>
            client.ping().then(String, (error: Error) => error.message)
          )
          expect(failure).toBe("Command timed out")
          // Commands keep timing out until the connection is cut; a new one then answers. The
          // bound only guards against a hang: the cut comes after STALL_LIMIT timeouts (1 s here).
          expect(yield* pingUntilAnswered(client, 20 * STALL_LIMIT * TIMEOUT_MS)).toBe(true)
          expect(accepted()).toBeGreaterThan(first)
        })
    )

    // README, Timeouts: "nothing at all was read from the command connection for 10 command
    // timeouts (5 s by default)": the number itself, with the default options (the tests above
    // count in STALL_LIMIT, whatever it is). The silence is counted from the first command that
    // timed out (stalls.ts), and so is it here. Busy: the connection is held silent (its replies
    // kept by the proxy, as while Redis is busy) until a command times out 3.7 s or more after
    // the first one did (the timeouts come in rounds a command timeout apart: the round at 4 s,
    // 4.5 s into the silence), and given its replies at that very moment, before any later
    // timeout can fire: the round at 5 s that would cut it is 1 s away however loaded the host.
    // (A DEBUG SLEEP of 4.7 s left the end of the silence to when a loaded host let Redis and
    // the proxy run.) Silent: the cut comes 5 s after the first timeout, not before.
    it.scoped(
      "with the default 500 ms command timeout: busy for 4.5 s it stays, silent it is cut after 5 s",
      () =>
        Effect.gen(function* () {
          const server = yield* RedisServer.RedisServer
          const proxy = yield* silencingProxy
          const context = yield* Layer.build(RedisConnection.layer({ host: "127.0.0.1", port: proxy.port }))
          const { client } = Context.get(context, RedisConnection.RedisConnection)
          expect(server.port).not.toBe(proxy.port)
          expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
          const connections = proxy.accepted()
          /**
           * A PING every 100 ms, each left to its answer or timeout, until `done`; answers their
           * outcomes, and calls `failed` with the time (performance.now) as each fails.
           */
          const pingWhile = (done: () => boolean, failed: (at: number) => void) =>
            Effect.promise(async () => {
              const answers: Array<Promise<string>> = []
              while (!done()) {
                answers.push(
                  client.ping().then(String, (error: Error) => {
                    failed(performance.now())
                    return error.message
                  })
                )
                await new Promise((resolve) => setTimeout(resolve, 100))
              }
              return Promise.all(answers)
            })
          // Silent for 8 timeouts (fewer than 10): commands time out, the connection stays.
          proxy.hold()
          let firstBusy: number | undefined
          const busy = yield* pingWhile(
            () => !proxy.holding(),
            (at) => {
              firstBusy ??= at
              if (at - firstBusy >= 3_700) proxy.release()
            }
          )
          expect(busy).toContain("Command timed out")
          expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
          expect(proxy.accepted()).toBe(connections)
          // Silent: cut after 5 s of timeouts (not before), then made again.
          proxy.blackhole()
          const start = performance.now()
          let firstSilent: number | undefined
          yield* pingWhile(
            () => proxy.accepted() > connections || performance.now() - start > 20_000,
            (at) => {
              firstSilent ??= at
            }
          )
          const end = performance.now()
          expect(end - start).toBeGreaterThanOrEqual(5_000)
          // Counted from the first timeout, as the connection counts it.
          expect(end - (firstSilent ?? end)).toBeGreaterThanOrEqual(5_000)
          // 5 s, the reconnect's delay (at most 1 s by default) and 3 s of room for a loaded host.
          expect(end - start).toBeLessThan(9_000)
          // The new connection answers once it is ready (accepted by the proxy, it may still be
          // opening): a rejected PING is a failure, tried again (as a defect it was not).
          yield* eventually(Effect.tryPromise(() => client.ping()))
        })
    )

    it.scoped("a server busy for fewer timeouts keeps the connection", () =>
      Effect.gen(function* () {
        const { client, proxy } = yield* heldClient({ commandTimeout: `${TIMEOUT_MS} millis` })
        expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
        const connections = proxy.accepted()
        // Busy for 70% of the stall limit: the connection held silent (its replies kept by the
        // proxy, as while Redis is busy) while PINGs sent one after another time out, until 70%
        // of the limit has passed (the last one's timeout may end later on a loaded host, whose
        // timers fire late), then given its replies. Commands time out, nothing is read, and the
        // connection stays.
        const busyMs = STALL_LIMIT * TIMEOUT_MS * 0.7
        proxy.hold()
        const heldAt = performance.now()
        const timedOut: Array<string> = []
        while (performance.now() - heldAt < busyMs) {
          timedOut.push(
            yield* Effect.promise(() => client.ping().then(String, (error: Error) => error.message))
          )
        }
        proxy.release()
        expect(timedOut.length).toBeGreaterThanOrEqual(2)
        expect(timedOut.filter((answer) => answer !== "Command timed out")).toEqual([])
        expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
        expect(proxy.accepted()).toBe(connections)
      })
    )
  })
})
