/**
 * The write path's corked commands (internal/corkedSend.ts): they leave in the order they were
 * issued, also among commands of the driver's auto-pipeline, leave together in one socket write,
 * and fail at once, through the driver, while the connection is down; a hook registered to run
 * before the uncork sends in that same write, after what was sent before. A SET PX (or an UNLINK)
 * followed by a PUBLISH leaves as one script call, each keeping its own outcome, and a SET held
 * back for that is overtaken by no command sent after it, whatever way that command takes.
 */
import { describe, expect, layer } from "@effect/vitest"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer } from "effect"
import { Command, type Redis } from "ioredis"
import { RedisConnection } from "../src/index.js"
import { beforeUncork, sender } from "../src/internal/corkedSend.js"
import { commandClient, connectionLayer, countWrites, eventually, notReady, observer } from "./utils.js"

/** How many EVAL calls Redis has run (INFO commandstats). */
const evals = (look: Redis) =>
  Effect.promise(async () => {
    const info = await look.info("commandstats")
    return Number(/cmdstat_eval:calls=(\d+)/.exec(info)?.[1] ?? 0)
  })

/** A subscriber to `channel` in this process; answers the messages it has received so far. */
const subscribed = (channel: string) =>
  Effect.gen(function* () {
    const subscriber = yield* observer
    const messages: Array<string> = []
    subscriber.on("message", (_channel: string, message: string) => messages.push(message))
    yield* Effect.promise(() => subscriber.subscribe(channel))
    return messages
  })

/** `promise`'s reply, or its error's message. */
const settled = (promise: Promise<unknown>) =>
  promise.then(
    (reply) => ({ reply: String(reply) }),
    (error: Error) => ({ error: error.message })
  )

/** Settles `promise` into its reply or its error's message. */
const outcome = (promise: Promise<unknown>) => Effect.promise(() => settled(promise))

/** Settles each of `promises` so, all of them from the step that runs this on. */
const outcomes = (promises: ReadonlyArray<Promise<unknown>>) =>
  Effect.promise(() => Promise.all(promises.map(settled)))

describe("corked sends", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("leave in the order issued, interleaved with the driver's auto-pipelined commands", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const look = yield* observer
        const send = sender(client)
        for (const round of [0, 1, 2]) {
          const list = `order:${round}`
          const expected: Array<string> = []
          const sent: Array<Promise<unknown>> = []
          // One tick: auto-pipelined and corked commands, alternating in runs of varying length.
          for (let i = 0; i < 300; i++) {
            const item = `${i}`
            expected.push(item)
            const viaPipeline = Math.floor(i / (round + 1)) % 2 === 0
            sent.push(
              viaPipeline
                ? client.rpush(list, item)
                : send("rpush", [list, item], () => client.rpush(list, item))
            )
          }
          yield* Effect.promise(() => Promise.all(sent))
          expect(yield* Effect.promise(() => look.lrange(list, 0, -1))).toEqual(expected)
        }
        // Across ticks too: corked commands of one tick, then auto-pipelined ones, then corked.
        const list = "order:ticks"
        const sent: Array<Promise<unknown>> = []
        sent.push(send("rpush", [list, "a"], () => client.rpush(list, "a")))
        yield* Effect.promise(() => new Promise<void>((resolve) => process.nextTick(resolve)))
        sent.push(client.rpush(list, "b"))
        sent.push(send("rpush", [list, "c"], () => client.rpush(list, "c")))
        yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        sent.push(send("rpush", [list, "d"], () => client.rpush(list, "d")))
        yield* Effect.promise(() => Promise.all(sent))
        expect(yield* Effect.promise(() => look.lrange(list, 0, -1))).toEqual(["a", "b", "c", "d"])
      })
    )

    it.scoped("the commands of one tick on an idle connection leave in one socket write", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const send = sender(client)
        yield* Effect.promise(() => client.ping())
        const counter = countWrites(client)
        const replies = yield* Effect.promise(() =>
          Promise.all([
            send("set", ["one", "1", "PX", "60000"], () => client.set("one", "1", "PX", 60000)),
            send("publish", ["channel", "m"], () => client.publish("channel", "m")),
            send("unlink", ["two"], () => client.unlink("two"))
          ])
        )
        counter.restore()
        expect(replies.map(String)).toEqual(["OK", "0", "0"])
        expect(counter.writes()).toBe(1)
      })
    )

    it.scoped("while replies are still to come, the commands of the whole turn leave together", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const send = sender(client)
        yield* Effect.promise(() => client.ping())
        // A command awaiting its reply (written at once, outside the auto-pipeline): busy.
        const ping = new Command("ping", [])
        client.sendCommand(ping)
        const counter = countWrites(client)
        const first = send("set", ["turn:a", "1"], () => client.set("turn:a", "1"))
        // A later tick of the same event-loop turn.
        yield* Effect.promise(() => new Promise<void>((resolve) => process.nextTick(resolve)))
        const second = send("set", ["turn:b", "2"], () => client.set("turn:b", "2"))
        yield* Effect.promise(() => Promise.all([ping.promise, first, second]))
        counter.restore()
        expect(counter.writes()).toBe(1)
      })
    )

    it.scoped("a hook before the uncork sends after what was sent before it, in the same write", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const look = yield* observer
        yield* Effect.promise(() => client.ping())
        const counter = countWrites(client)
        const send = sender(client)
        const sent: Array<Promise<unknown>> = []
        sent.push(send("rpush", ["hooked", "first"], () => client.rpush("hooked", "first")))
        const order: Array<string> = []
        // A hook that throws keeps neither the next hook nor the write from going out.
        expect(
          beforeUncork(client, () => {
            order.push("throws")
            throw new Error("boom")
          })
        ).toBe(true)
        expect(
          beforeUncork(client, () => {
            order.push("hook")
            sent.push(send("rpush", ["hooked", "hook"], () => client.rpush("hooked", "hook")))
          })
        ).toBe(true)
        sent.push(send("rpush", ["hooked", "second"], () => client.rpush("hooked", "second")))
        yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
        yield* Effect.promise(() => Promise.all(sent))
        counter.restore()
        expect(counter.writes()).toBe(1)
        expect(order).toEqual(["throws", "hook"])
        expect(yield* Effect.promise(() => look.lrange("hooked", 0, -1))).toEqual(["first", "second", "hook"])
      })
    )

    it.scoped("a SET PX and the PUBLISH after it leave as one script call, each with its own outcome", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const look = yield* observer
        const messages = yield* subscribed("merged:channel")
        const send = sender(client)
        yield* Effect.promise(() => client.ping())
        const before = yield* evals(look)
        const counter = countWrites(client)
        const set = send("set", ["merged:a", "1", "PX", "60000"], () =>
          client.set("merged:a", "1", "PX", 60000)
        )
        const published = send("publish", ["merged:channel", "m1"], () =>
          client.publish("merged:channel", "m1")
        )
        expect(yield* outcome(set)).toEqual({ reply: "OK" })
        expect(yield* outcome(published)).toEqual({ reply: "1" })
        counter.restore()
        expect(counter.writes()).toBe(1)
        expect(yield* evals(look)).toBe(before + 1)
        expect(yield* Effect.promise(() => look.get("merged:a"))).toBe("1")
        const pttl = yield* Effect.promise(() => look.pttl("merged:a"))
        expect(pttl).toBeGreaterThan(0)
        expect(pttl).toBeLessThanOrEqual(60_000)
        // A SET that Redis refuses (PX 0) fails alone: the PUBLISH after it still goes out.
        const refused = send("set", ["merged:b", "1", "PX", "0"], () => client.set("merged:b", "1", "PX", 0))
        const second = send("publish", ["merged:channel", "m2"], () => client.publish("merged:channel", "m2"))
        expect(yield* outcome(refused)).toEqual({ error: expect.stringMatching(/invalid expire time/) })
        expect(yield* outcome(second)).toEqual({ reply: "1" })
        expect(yield* evals(look)).toBe(before + 2)
        expect(yield* Effect.promise(() => look.exists("merged:b"))).toBe(0)
        yield* eventually(
          Effect.filterOrFail(
            Effect.sync(() => messages),
            (m) => m.length === 2,
            () => new Error("messages not in yet")
          )
        )
        expect(messages).toEqual(["m1", "m2"])
        // A SET with nothing after it, and a SET followed by something other than a PUBLISH,
        // go as SETs.
        const lone = send("set", ["merged:c", "1", "PX", "60000"], () =>
          client.set("merged:c", "1", "PX", 60000)
        )
        yield* Effect.promise(() => lone)
        const first = send("set", ["merged:d", "1", "PX", "60000"], () =>
          client.set("merged:d", "1", "PX", 60000)
        )
        const unlink = send("unlink", ["merged:c"], () => client.unlink("merged:c"))
        yield* Effect.promise(() => Promise.all([first, unlink]))
        expect(yield* evals(look)).toBe(before + 2)
        expect(yield* Effect.promise(() => look.mget("merged:c", "merged:d"))).toEqual([null, "1"])
        // Too large for the script (its copies would cost more than it saves): two commands, in order.
        const big = "v".repeat(8192)
        const bigSet = send("set", ["merged:big", big, "PX", "60000"], () =>
          client.set("merged:big", big, "PX", 60000)
        )
        const bigMessage = send("publish", ["merged:channel", "m3"], () =>
          client.publish("merged:channel", "m3")
        )
        expect(yield* outcomes([bigSet, bigMessage])).toEqual([{ reply: "OK" }, { reply: "1" }])
        expect(yield* evals(look)).toBe(before + 2)
        expect(yield* Effect.promise(() => look.strlen("merged:big"))).toBe(8192)
        // Just small enough: one script call.
        const fits = "v".repeat(8192 - "merged:fits".length - "PX".length - "60000".length - "m4".length)
        const fitSet = send("set", ["merged:fits", fits, "PX", "60000"], () =>
          client.set("merged:fits", fits, "PX", 60000)
        )
        const fitMessage = send("publish", ["merged:channel", "m4"], () =>
          client.publish("merged:channel", "m4")
        )
        expect(yield* outcomes([fitSet, fitMessage])).toEqual([{ reply: "OK" }, { reply: "1" }])
        expect(yield* evals(look)).toBe(before + 3)
        // One character more (the SET's PX and its milliseconds count too): two commands.
        const over = `${fits}v`
        const overSet = send("set", ["merged:over", over, "PX", "60000"], () =>
          client.set("merged:over", over, "PX", 60000)
        )
        const overMessage = send("publish", ["merged:channel", "m5"], () =>
          client.publish("merged:channel", "m5")
        )
        expect(yield* outcomes([overSet, overMessage])).toEqual([{ reply: "OK" }, { reply: "1" }])
        expect(yield* evals(look)).toBe(before + 3)
      })
    )

    it.scoped("an UNLINK and the PUBLISH after it leave as one script call, each with its own outcome", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const look = yield* observer
        const messages = yield* subscribed("unlinked:channel")
        const send = sender(client)
        const many = Array.from({ length: 1001 }, (_, i) => `unlinked:many:${i}`)
        yield* Effect.promise(() =>
          look.mset("unlinked:a", "1", "unlinked:b", "2", ...many.flatMap((k) => [k, "x"]))
        )
        const before = yield* evals(look)
        const unlink = (keys: Array<string>) => send("unlink", keys, () => client.unlink(...keys))
        const publish = (message: string) =>
          send("publish", ["unlinked:channel", message], () => client.publish("unlinked:channel", message))
        // One key, then two with one absent: each UNLINK answers its count, each PUBLISH its receivers.
        expect(yield* outcomes([unlink(["unlinked:a"]), publish("m1")])).toEqual([
          { reply: "1" },
          { reply: "1" }
        ])
        expect(yield* outcomes([unlink(["unlinked:b", "unlinked:absent"]), publish("m2")])).toEqual([
          { reply: "1" },
          { reply: "1" }
        ])
        expect(yield* evals(look)).toBe(before + 2)
        // More keys than RedisTier removes at once go as they are.
        expect(yield* outcomes([unlink(many), publish("m3")])).toEqual([{ reply: "1001" }, { reply: "1" }])
        expect(yield* evals(look)).toBe(before + 2)
        expect(yield* Effect.promise(() => look.exists("unlinked:a", "unlinked:b", ...many))).toBe(0)
        yield* eventually(
          Effect.filterOrFail(
            Effect.sync(() => messages),
            (m) => m.length === 3,
            () => new Error("messages not in yet")
          )
        )
        expect(messages).toEqual(["m1", "m2", "m3"])
      })
    )

    it.scoped("a SET held back for a PUBLISH is overtaken by no command sent after it", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        const send = sender(client)
        yield* Effect.promise(() => client.set("held:k", "old"))
        const setTo = (value: string) =>
          send("set", ["held:k", value, "PX", "60000"], () => client.set("held:k", value, "PX", 60000))
        // Each read is sent in the tick of the write before it, by another way than the sender.
        const reads: Array<[string, () => Promise<unknown>]> = [
          ["a driver method", () => client.get("held:k")],
          [
            "a command handed to the driver",
            () => {
              const get = new Command("get", ["held:k"])
              client.sendCommand(get)
              return get.promise
            }
          ],
          ["a script", () => client.eval("return redis.call('GET', KEYS[1])", 1, "held:k")],
          [
            "a pipeline",
            () =>
              client
                .pipeline()
                .get("held:k")
                .exec()
                .then((replies) => replies?.[0]?.[1])
          ],
          ["a corked command", () => send("get", ["held:k"], () => client.get("held:k"))]
        ]
        for (const [way, read] of reads) {
          const written = setTo(way)
          const seen = read()
          yield* Effect.promise(() => written)
          expect(String(yield* Effect.promise(() => seen)), way).toBe(way)
        }
        // Two SETs of a key and a PUBLISH in one tick: the first goes alone, the second with it.
        const look = yield* observer
        const before = yield* evals(look)
        const both = [
          setTo("first"),
          setTo("second"),
          send("publish", ["held:ch", "m"], () => client.publish("held:ch", "m"))
        ]
        yield* Effect.promise(() => Promise.all(both))
        expect(yield* Effect.promise(() => look.get("held:k"))).toBe("second")
        expect(yield* evals(look)).toBe(before + 1)
      })
    )

    it.scoped("a driver that throws on sending fails the held SET's caller and the PUBLISH's", () =>
      Effect.gen(function* () {
        const client = yield* commandClient()
        yield* Effect.promise(() => client.ping())
        // The driver throws on every EVAL and on SETs of `throws:` keys (before the sender exists,
        // so that the sender sends through it).
        const driver = client.sendCommand.bind(client)
        client.sendCommand = ((command: Command, stream?: unknown) => {
          if (
            command.name === "eval" ||
            (command.name === "set" && String(command.args[0]).startsWith("throws:"))
          )
            throw new Error("driver threw")
          return driver(command, stream as never)
        }) as Redis["sendCommand"]
        const send = sender(client)
        const merged = send("set", ["merged:x", "1", "PX", "60000"], () =>
          client.set("merged:x", "1", "PX", 60000)
        )
        const published = send("publish", ["merged:channel", "m"], () =>
          client.publish("merged:channel", "m")
        )
        expect(yield* outcome(merged)).toEqual({ error: "driver threw" })
        expect(yield* outcome(published)).toEqual({ error: "driver threw" })
        // A held SET released by the next command, and one released by the uncork.
        const first = send("set", ["throws:a", "1", "PX", "60000"], () =>
          client.set("throws:a", "1", "PX", 60000)
        )
        const next = send("unlink", ["throws:b"], () => client.unlink("throws:b"))
        const last = send("set", ["throws:c", "1", "PX", "60000"], () =>
          client.set("throws:c", "1", "PX", 60000)
        )
        // Settled from this tick on (the uncork fails `last` before this fiber would look).
        expect(yield* outcomes([first, next, last])).toEqual([
          { error: "driver threw" },
          { reply: "0" },
          { error: "driver threw" }
        ])
      })
    )

    it.scoped("fail at once, through the driver, while the connection is down", () =>
      Effect.gen(function* () {
        const server = yield* RedisServer.RedisServer
        // A long command timeout: a command queued until it ends would take 15 s, not "at once".
        const client = yield* Effect.map(
          Layer.build(connectionLayer({ commandTimeout: "15 seconds" })),
          (context) => Context.get(context, RedisConnection.RedisConnection).client
        )
        const send = sender(client)
        yield* server.stop
        yield* notReady(client)
        const started = Date.now()
        const outcome = yield* Effect.promise(() =>
          send("set", ["down", "1"], () => client.set("down", "1")).then(
            () => "answered",
            (error: Error) => error.message
          )
        )
        expect(outcome).toMatch(/writeable|closed|Connection/i)
        // At once: well before the command timeout (15 s) would end a queued command, with 5 s
        // of room for a loaded host.
        expect(Date.now() - started).toBeLessThan(5_000)
        yield* server.start
      })
    )
  })
})
