/**
 * Commands sent in one socket write (internal/oneWrite.ts): they leave as one chunk (not a
 * vectored write of one chunk per command), each with its own reply, after whatever was sent
 * before them (a write corkedSend.ts holds back included) and with the moment's corked commands;
 * the driver keeps a deadline for each; nothing is sent while the client is not ready. RedisTier's
 * lone read goes this way.
 */
import { describe, expect, layer } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Fiber, Layer, Option } from "effect"
import { Command } from "ioredis"
import { RedisConnection, RedisTier } from "../src/index.js"
import { sender } from "../src/internal/corkedSend.js"
import { held, TIMED_OUT } from "../src/internal/deadlines.js"
import { sendInOneWrite } from "../src/internal/oneWrite.js"
import { commandClient, connectionLayer, notReady, observer, watchWrites } from "./utils.js"

const command = (name: string, args: Array<string>) => new Command(name, args, { replyEncoding: "utf8" })

describe("commands in one write", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("leave as one chunk of one socket write, each answered with its own reply", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        yield* Effect.promise(() => client.set("one:k", "v"))
        const chunks = watchWrites(client)
        const commands = [
          command("get", ["one:k"]),
          command("pttl", ["one:k"]),
          command("incr", ["one:k"]),
          command("exists", ["one:k"])
        ]
        expect(sendInOneWrite(client, commands)).toBe(true)
        const replies = yield* Effect.promise(() =>
          Promise.all(
            commands.map((c) => c.promise.then(String, (error: Error) => `error: ${error.message}`))
          )
        )
        chunks.restore()
        // Each its own reply, an error reply included.
        expect(replies).toEqual(["v", "-1", expect.stringMatching(/^error: .*not an integer/), "1"])
        expect(chunks.writes()).toHaveLength(1)
        expect(chunks.writes()[0]).toHaveLength(1)
        expect(chunks.writes()[0]![0]).toMatch(/get[\s\S]*pttl[\s\S]*incr[\s\S]*exists/)
      })
    )

    it.scoped("commands with bytes among their arguments leave as one chunk of bytes, the bytes intact", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        yield* Effect.promise(() => client.ping())
        const bytes = Buffer.from([0xff, 0x00, 0xfe, 0x80])
        const chunks = watchWrites(client)
        const set = new Command("set", ["bytes:k", bytes])
        const get = new Command("get", ["bytes:k"])
        const len = command("strlen", ["bytes:k"])
        expect(sendInOneWrite(client, [set, get, len])).toBe(true)
        const [written, read, length] = yield* Effect.promise(() =>
          Promise.all([set.promise, get.promise, len.promise])
        )
        chunks.restore()
        expect(String(written)).toBe("OK")
        expect(Buffer.compare(read as Buffer, bytes)).toBe(0)
        expect(String(length)).toBe("4")
        expect(chunks.writes()).toHaveLength(1)
        expect(chunks.writes()[0]).toHaveLength(1)
      })
    )

    it.scoped(
      "follow a write held back for its message, and leave with the moment's corked commands, in order",
      () =>
        Effect.gen(function* () {
          const client = yield* commandClient()
          const look = yield* observer
          const send = sender(client)
          yield* Effect.promise(() => client.set("after:k", "old"))
          // A SET PX the write path holds back for a PUBLISH that never comes, then a read in one write.
          const written = send("set", ["after:k", "new", "PX", "60000"], () =>
            client.set("after:k", "new", "PX", 60000)
          )
          const read = command("get", ["after:k"])
          expect(sendInOneWrite(client, [read])).toBe(true)
          const replies = yield* Effect.promise(() => Promise.all([written, read.promise]))
          expect(replies.map(String)).toEqual(["OK", "new"])
          // Corked commands before and after, in one tick: one socket write, in the order issued.
          const chunks = watchWrites(client)
          const first = send("rpush", ["after:list", "a"], () => client.rpush("after:list", "a"))
          const joined = [command("rpush", ["after:list", "b"]), command("rpush", ["after:list", "c"])]
          sendInOneWrite(client, joined)
          const last = send("rpush", ["after:list", "d"], () => client.rpush("after:list", "d"))
          yield* Effect.promise(() => Promise.all([first, last, ...joined.map((c) => c.promise)]))
          chunks.restore()
          expect(chunks.writes()).toHaveLength(1)
          expect(yield* Effect.promise(() => look.lrange("after:list", 0, -1))).toEqual(["a", "b", "c", "d"])
        })
    )

    it.scoped("each command keeps its own deadline", () =>
      Effect.gen(function* () {
        const client = yield* commandClient({ commandTimeout: "300 millis" })
        const look = yield* observer
        yield* Effect.promise(() => client.ping())
        const sleeping = yield* Effect.fork(Effect.promise(() => look.call("DEBUG", "SLEEP", "1")))
        yield* Effect.sleep("30 millis")
        const commands = [command("get", ["deadline:a"]), command("get", ["deadline:b"])]
        sendInOneWrite(client, commands)
        // The answered PING is dropped as they are sent: the two are what the deadlines hold.
        expect(held(client)).toBe(2)
        const outcomes = yield* Effect.promise(() =>
          Promise.all(
            commands.map((c) =>
              c.promise.then(
                () => "answered",
                (error: Error) => error.message
              )
            )
          )
        )
        expect(outcomes).toEqual([TIMED_OUT, TIMED_OUT])
        yield* Fiber.join(sleeping)
      })
    )

    it.scoped("RedisTier's lone read leaves as one chunk, and answers the value and its lifetime", () =>
      Effect.gen(function* () {
        const context = yield* Layer.build(connectionLayer())
        const client = Context.get(context, RedisConnection.RedisConnection).client
        const tier = yield* Effect.provide(RedisTier.make({ prefix: "lone:" }), context)
        const entry = Entry.make({ value: "value", ttlMs: 60_000, now: Date.now() })
        yield* tier.set("k", entry)
        const chunks = watchWrites(client)
        const found = yield* tier.get("k")
        chunks.restore()
        expect(Option.map(found, (e) => e.value)).toEqual(Option.some("value"))
        const expiresIn = Option.getOrThrow(found).expiresAt - Date.now()
        expect(expiresIn).toBeGreaterThan(55_000)
        expect(expiresIn).toBeLessThanOrEqual(60_000)
        expect(chunks.writes()).toHaveLength(1)
        expect(chunks.writes()[0]).toHaveLength(1)
        expect(chunks.writes()[0]![0]).toMatch(/getrange[\s\S]*lone:k[\s\S]*pttl[\s\S]*lone:k/i)
      })
    )

    it.scoped("send nothing while the client is not ready", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        const client = yield* commandClient()
        const chunks = watchWrites(client)
        yield* server.stop
        yield* notReady(client)
        const get = command("get", ["down:k"])
        expect(sendInOneWrite(client, [get])).toBe(false)
        chunks.restore()
        expect(chunks.writes()).toEqual([])
        yield* server.start
      })
    )
  })
})
