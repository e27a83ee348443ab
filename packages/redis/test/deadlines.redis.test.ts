/**
 * The command connection's command timeout (internal/deadlines.ts): one timer for the whole
 * connection, yet every command without a reply fails at its own deadline (the command timeout
 * after it was sent), with ioredis's error, and a command answered in time never fails, also
 * after many commands and after the connection was idle.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { Command, type Redis } from "ioredis"
import { RedisConnection } from "../src/index.js"
import { held, TIMED_OUT } from "../src/internal/deadlines.js"
import { heldClient } from "./heldClient.js"
import { commandClient, connectionLayer, eventually, observer } from "./utils.js"

const TIMEOUT_MS = 200

/** The command connection's client with a command timeout long enough that no deadline passes in a test. */
const patientClient = Effect.map(
  Layer.build(connectionLayer({ commandTimeout: "20 seconds" })),
  (context) => Context.get(context, RedisConnection.RedisConnection).client
)

/** A command's outcome as it settles, and when (performance.now()). */
interface Watched {
  outcome: "pending" | "answered" | "failed"
  error: unknown
  at: number
  readonly sentAt: number
  readonly settled: Promise<void>
}

const watch = (reply: Promise<unknown>): Watched => {
  const watched: Watched = {
    outcome: "pending",
    error: undefined,
    at: 0,
    sentAt: performance.now(),
    settled: Promise.resolve()
  }
  const settled = reply.then(
    () => {
      watched.outcome = "answered"
      watched.at = performance.now()
    },
    (error: unknown) => {
      watched.outcome = "failed"
      watched.error = error
      watched.at = performance.now()
    }
  )
  return Object.assign(watched, { settled })
}

/** One command sent on its own (not through the driver's auto-pipeline). */
const send = (client: Redis, name: string, args: Array<string>): Promise<unknown> => {
  const command = new Command(name, args)
  client.sendCommand(command)
  return command.promise
}

/** The command connection's client, with a command timeout of TIMEOUT_MS, whose replies the test can hold. */
const timedClient = heldClient({ commandTimeout: `${TIMEOUT_MS} millis` })

describe("command deadlines", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("each command without a reply fails at its own deadline, with ioredis's error", () =>
      Effect.gen(function* () {
        const { client, proxy } = yield* timedClient
        proxy.hold()
        // Sent as single commands: the driver's auto-pipeline sends a command only once the
        // pipeline before it is answered, so the second would not be on its way beside the first.
        const first = watch(send(client, "get", ["a"]))
        yield* Effect.sleep("100 millis")
        const second = watch(send(client, "get", ["b"]))
        yield* Effect.promise(() => first.settled)
        // The second was sent 100 ms later: its deadline has not come when the first fails.
        expect(first.outcome).toBe("failed")
        expect((first.error as Error).message).toBe(TIMED_OUT)
        expect(second.outcome).toBe("pending")
        yield* Effect.promise(() => second.settled)
        expect(second.outcome).toBe("failed")
        expect((second.error as Error).message).toBe(TIMED_OUT)
        // Never before the deadline (timers may fire up to a millisecond early by the clock).
        expect(first.at - first.sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
        expect(second.at - second.sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
        // The replies, held until now, reach commands that have failed already; the connection
        // goes on answering in order.
        proxy.release()
        expect(yield* Effect.promise(() => client.set("a", "1"))).toBe("OK")
        expect(yield* Effect.promise(() => client.get("a"))).toBe("1")
      })
    )

    it.scoped("a command sent after the connection was idle past the timeout still gets its deadline", () =>
      Effect.gen(function* () {
        const { client, proxy } = yield* timedClient
        expect(yield* Effect.promise(() => client.ping())).toBe("PONG")
        // Idle for longer than the timeout: the timer of the answered PING has fired and found
        // nothing left.
        yield* Effect.sleep(`${TIMEOUT_MS * 2} millis`)
        proxy.hold()
        const late = watch(client.get("c"))
        yield* Effect.promise(() => late.settled)
        expect(late.outcome).toBe("failed")
        expect((late.error as Error).message).toBe(TIMED_OUT)
        expect(late.at - late.sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
      })
    )

    it.scoped("commands answered in time never fail, and later ones keep their deadlines", () =>
      Effect.gen(function* () {
        const { client, proxy } = yield* timedClient
        const look = yield* observer
        // Many commands, in bursts and one by one: the queue drops answered ones and compacts.
        const replies: Array<Watched> = []
        for (let burst = 0; burst < 10; burst++) {
          for (let i = 0; i < 600; i++) replies.push(watch(client.set(`k:${burst}:${i}`, String(i))))
          yield* Effect.promise(() => client.get(`k:${burst}:0`))
        }
        for (let i = 0; i < 50; i++) replies.push(watch(client.incr("counter")))
        yield* Effect.promise(() => Promise.all(replies.map((r) => r.settled)))
        // Past every deadline of them: answered stays answered.
        yield* Effect.sleep(`${TIMEOUT_MS * 2} millis`)
        expect(replies.filter((r) => r.outcome !== "answered")).toEqual([])
        expect(yield* Effect.promise(() => look.get("counter"))).toBe("50")
        // A command held now fails at its own deadline, not at one of an earlier command.
        proxy.hold()
        const held = watch(client.get("k:0:0"))
        yield* Effect.promise(() => held.settled)
        expect(held.outcome).toBe("failed")
        expect(held.at - held.sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
        proxy.release()
        // And once the server's replies come again, so do the commands' answers.
        expect(yield* Effect.promise(() => client.get("k:0:0"))).toBe("0")
      })
    )

    it.scoped("a reply that came while the event loop was held past the deadline answers its command", () =>
      Effect.gen(function* () {
        // Straight to the server: a proxy in this process would be held with the event loop.
        const client = yield* commandClient({ commandTimeout: `${TIMEOUT_MS} millis` })
        expect(yield* Effect.promise(() => client.set("held", "v"))).toBe("OK")
        // Several rounds: the event loop is held from wherever it is in its turn.
        for (let round = 0; round < 6; round++) {
          const reply = watch(send(client, "get", ["held"]))
          // Redis answers at once; the event loop, held twice the timeout, reads the reply only
          // after the command's deadline has passed.
          const until = performance.now() + 2 * TIMEOUT_MS
          while (performance.now() < until) {
            // held
          }
          yield* Effect.promise(() => reply.settled)
          expect({ round, outcome: reply.outcome }).toEqual({ round, outcome: "answered" })
        }
        // A command with no reply still fails: sent behind a BLPOP that holds this connection
        // (the server answers nothing on it for 1 s, and everything after it in order).
        const blocked = watch(send(client, "blpop", ["held:nothing", "1"]))
        const late = watch(send(client, "get", ["held"]))
        yield* Effect.promise(() => late.settled)
        expect(late.outcome).toBe("failed")
        expect((late.error as Error).message).toBe(TIMED_OUT)
        expect(late.at - late.sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
        yield* Effect.promise(() => blocked.settled)
        // Once the BLPOP has ended, the connection answers again.
        yield* eventually(Effect.tryPromise(() => client.get("held")))
      })
    )

    it.scoped("commands failed at once while the connection is down are not held until their deadlines", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const client = yield* patientClient
        // The server is started again however the test ends (the suite's next tests need it).
        const down = Effect.acquireRelease(server.stop, () => Effect.orDie(server.start))
        yield* Effect.scoped(
          Effect.gen(function* () {
            yield* down
            yield* eventually(
              Effect.filterOrFail(
                Effect.sync(() => client.status),
                (status) => status !== "ready"
              )
            )
            // An outage: every command fails at once (no offline queue), none is written.
            const failed = Array.from({ length: 20_000 }, (_, i) =>
              watch(send(client, "set", [`o:${i}`, "x"]))
            )
            yield* Effect.promise(() => Promise.all(failed.map((r) => r.settled)))
            expect(failed.filter((r) => r.outcome !== "failed")).toEqual([])
            // Nothing to wait for: the queue holds none of them (nor what they carry) for 20 s,
            // and makes no error for each of them at their deadline.
            expect(held(client)).toBe(0)
          })
        )
        yield* eventually(Effect.tryPromise(() => client.ping()))
        expect(held(client)).toBeLessThanOrEqual(1)
      })
    )

    it.scoped("a command answered with an error reply does not keep the commands after it held", () =>
      Effect.gen(function* () {
        const client = yield* patientClient
        expect(yield* Effect.promise(() => client.set("text", "not a number"))).toBe("OK")
        // ERR: the driver rejects the command (and never marks it resolved).
        const refused = watch(send(client, "incr", ["text"]))
        const answered = Array.from({ length: 1100 }, (_, i) =>
          watch(send(client, "set", [`e:${i}`, String(i)]))
        )
        yield* Effect.promise(() => Promise.all([refused, ...answered].map((r) => r.settled)))
        expect(refused.outcome).toBe("failed")
        expect(answered.filter((r) => r.outcome !== "answered")).toEqual([])
        // Every one of them is answered: sending the next one drops them all.
        const next = watch(send(client, "get", ["e:0"]))
        expect(held(client)).toBe(1)
        yield* Effect.promise(() => next.settled)
        expect(next.outcome).toBe("answered")
      })
    )

    it.scoped(
      "a command sent while a thousand answered ones sit ahead of unanswered ones keeps its own deadline",
      () =>
        Effect.gen(function* () {
          const { client } = yield* timedClient
          // 1,100 SETs, then a BLPOP that holds this connection (not the server, which answers
          // the SETs) for 2 s, so that the SETs are answered and what follows them is not. Sent
          // as single commands: the driver's auto-pipeline answers a pipeline's commands together.
          const answered = Array.from({ length: 1100 }, (_, i) =>
            watch(send(client, "set", [`c:${i}`, String(i)]))
          )
          const blocked = watch(send(client, "blpop", ["c:nothing", "2"]))
          yield* Effect.promise(() => Promise.all(answered.map((r) => r.settled)))
          expect(blocked.outcome).toBe("pending")
          yield* Effect.sleep("100 millis")
          // Sent now, behind the answered SETs and the BLPOP.
          const held = watch(send(client, "get", ["c:0"]))
          yield* Effect.promise(() => blocked.settled)
          expect(blocked.outcome).toBe("failed")
          expect(held.outcome).toBe("pending")
          yield* Effect.promise(() => held.settled)
          expect(held.outcome).toBe("failed")
          expect((held.error as Error).message).toBe(TIMED_OUT)
          expect(held.at - held.sentAt).toBeGreaterThanOrEqual(TIMEOUT_MS - 1)
          expect(answered.filter((r) => r.outcome !== "answered")).toEqual([])
          // Once the BLPOP has ended, the connection answers again.
          yield* Effect.sleep("2 seconds")
          expect(yield* Effect.promise(() => client.get("c:1099"))).toBe("1099")
        })
    )
  })
})
