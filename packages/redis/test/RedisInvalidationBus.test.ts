import { describe, expect, layer } from "@effect/vitest"
import { InvalidationBus, type InvalidationMessage } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Either, Exit, Layer, Queue, Stream } from "effect"
import { RedisInvalidationBus } from "../src/index.js"
import { clientNames, connectionLayer, eventually, observer, rawMessages, timed } from "./utils.js"

const Connection = connectionLayer()
const Env = Layer.mergeAll(Connection, RedisInvalidationBus.layer().pipe(Layer.provide(Connection))).pipe(
  Layer.provideMerge(RedisServer.layer())
)

type Event = InvalidationBus.Event

/** Subscribes and collects the events into a queue; `next` waits for one (bounded). */
const listen = (bus: InvalidationBus.InvalidationBus.Service) =>
  Effect.gen(function* () {
    const stream = yield* bus.subscribe
    const queue = yield* Queue.unbounded<Event>()
    yield* Effect.forkScoped(Stream.runForEach(stream, (event) => Queue.offer(queue, event)))
    const next = Queue.take(queue).pipe(
      Effect.timeoutFail({ duration: "3 seconds", onTimeout: () => new Error("no event within 3 seconds") })
    )
    /** Skips events until one passes `predicate`. */
    const until = (predicate: (event: Event) => boolean): Effect.Effect<Event, Error> =>
      Effect.flatMap(next, (event) => (predicate(event) ? Effect.succeed(event) : until(predicate)))
    return { next, until, pending: Queue.size(queue) }
  })

const remove = (key: string): InvalidationMessage.InvalidationMessage => ({
  type: "Remove",
  key,
  origin: "test"
})

const isMessage = (event: Event, key: string) =>
  event._tag === "Message" && event.message.type === "Remove" && event.message.key === key

describe("RedisInvalidationBus", () => {
  layer(Env, { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped(
      "two subscriptions of one bus each receive its own publishes, and the same payload sent by another bus",
      () =>
        Effect.gen(function* () {
          const bus = yield* InvalidationBus.InvalidationBus
          const other = yield* RedisInvalidationBus.make()
          const a = yield* listen(bus)
          const b = yield* listen(bus)
          const stamped = { ...remove("echo"), namespace: "tiercache:" }
          for (const sender of [bus, bus, other]) {
            yield* sender.publish(remove("echo"))
            expect(yield* a.next).toEqual({ _tag: "Message", message: stamped })
            expect(yield* b.next).toEqual({ _tag: "Message", message: stamped })
          }
        })
    )

    it.scoped("every subscriber receives a publish, once live (subscribe returned)", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const other = yield* RedisInvalidationBus.make()
        const a = yield* listen(bus)
        const b = yield* listen(other)
        const update: InvalidationMessage.InvalidationMessage = {
          type: "Update",
          key: "user:1",
          value: { name: "Ada" },
          ttl_secs: 2,
          ttl_ms: 1500,
          origin: "instance-a"
        }
        yield* bus.publish(update)
        // Stamped with the sender's namespace (the connection's default prefix).
        const stamped = { ...update, namespace: "tiercache:" }
        expect(yield* a.next).toEqual({ _tag: "Message", message: stamped })
        expect(yield* b.next).toEqual({ _tag: "Message", message: stamped })
        yield* other.publish(remove("k"))
        expect(isMessage(yield* a.next, "k")).toBe(true)
        expect(isMessage(yield* b.next, "k")).toBe(true)
      })
    )

    it.scoped("the wire format is the seed's JSON, on channel cache:invalidate", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const look = yield* observer
        const seen = yield* observer
        const received: Array<[string, string]> = []
        seen.on("message", (channel: string, raw: string) => void received.push([channel, raw]))
        yield* Effect.promise(() => seen.subscribe("cache:invalidate"))
        yield* bus.publish({ type: "RemovePattern", pattern: "user:*" })
        yield* eventually(Effect.suspend(() => (received.length > 0 ? Effect.void : Effect.fail("none"))))
        expect(received).toEqual([
          ["cache:invalidate", '{"type":"RemovePattern","pattern":"user:*","namespace":"tiercache:"}']
        ])
        // What the Rust crate sends is understood.
        const events = yield* listen(bus)
        yield* Effect.promise(() =>
          look.publish("cache:invalidate", '{"type":"RemoveBulk","keys":["a","b"]}')
        )
        expect(yield* events.next).toEqual({
          _tag: "Message",
          message: { type: "RemoveBulk", keys: ["a", "b"] }
        })
      })
    )

    it.scoped(
      "a message is sent with every field of its own, stamped on a copy: the caller's object stays as it was",
      () =>
        Effect.gen(function* () {
          const bus = yield* InvalidationBus.InvalidationBus
          const received = yield* rawMessages("cache:invalidate")
          // From plain JavaScript: an own "__proto__" key (JSON.parse makes one), which a copy by
          // assignment would turn into the copy's prototype instead of a field.
          const odd = JSON.parse('{"type":"Remove","key":"p","origin":"js","__proto__":{"x":1}}')
          const plain: InvalidationMessage.InvalidationMessage = { type: "Remove", key: "q", origin: "js" }
          yield* bus.publish(odd)
          yield* bus.publish(plain)
          yield* eventually(Effect.suspend(() => (received.length >= 2 ? Effect.void : Effect.fail("none"))))
          expect(received).toEqual([
            '{"type":"Remove","key":"p","origin":"js","__proto__":{"x":1},"namespace":"tiercache:"}',
            '{"type":"Remove","key":"q","origin":"js","namespace":"tiercache:"}'
          ])
          expect(Object.keys(odd)).toEqual(["type", "key", "origin", "__proto__"])
          expect(plain).toEqual({ type: "Remove", key: "q", origin: "js" })
        })
    )

    it.scoped("a malformed payload is dropped and counted by kind; the subscription goes on", () =>
      Effect.gen(function* () {
        const bus = yield* RedisInvalidationBus.make()
        const look = yield* observer
        const events = yield* listen(bus)
        yield* Effect.promise(() => look.publish("cache:invalidate", "not json"))
        yield* Effect.promise(() => look.publish("cache:invalidate", '{"type":"Explode","key":1}'))
        yield* Effect.promise(() => look.publish("cache:invalidate", '{"type":"Remove","key":1}'))
        // An Update without a value: JSON has no undefined, so it is malformed, not a value.
        yield* Effect.promise(() =>
          look.publish("cache:invalidate", '{"type":"Update","key":"k","ttl_secs":60}')
        )
        yield* bus.publish(remove("after"))
        // Nothing reaches the cache before the good message.
        expect(isMessage(yield* events.next, "after")).toBe(true)
        expect(yield* events.pending).toBe(0)
        const stats = yield* bus.stats
        expect(stats.malformedMessages).toBe(4)
        expect(stats.malformedByKind).toEqual({ not_json: 1, unknown_type: 1, invalid_field: 2 })
      })
    )

    it.scoped("messages on other channels are not seen; a bus on another channel is separate", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const look = yield* observer
        const custom = yield* RedisInvalidationBus.make({ channel: "app:bus" })
        const events = yield* listen(bus)
        const customEvents = yield* listen(custom)
        yield* Effect.promise(() => look.publish("elsewhere", JSON.stringify(remove("x"))))
        yield* custom.publish(remove("custom"))
        yield* bus.publish(remove("default"))
        expect(isMessage(yield* events.next, "default")).toBe(true)
        expect(isMessage(yield* customEvents.next, "custom")).toBe(true)
        expect(yield* events.pending).toBe(0)
        expect(yield* customEvents.pending).toBe(0)
      })
    )

    it.scoped("CLIENT KILL TYPE pubsub: Reconnected arrives once the subscription is live again", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const look = yield* observer
        const events = yield* listen(bus)
        yield* bus.publish(remove("before"))
        expect(isMessage(yield* events.next, "before")).toBe(true)

        yield* Effect.promise(() => look.client("KILL", "TYPE", "pubsub"))
        expect(yield* events.next).toEqual(InvalidationBus.reconnected)
        // Live again at once: the very next publish is received, nothing else came in between.
        yield* bus.publish(remove("after"))
        expect(isMessage(yield* events.next, "after")).toBe(true)
        const subscribers = yield* Effect.promise(() => look.pubsub("NUMSUB", "cache:invalidate"))
        expect(subscribers).toEqual(["cache:invalidate", 1])
      })
    )

    it.scoped("server stopped and started: Reconnected, then messages flow again", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const server = yield* RedisServer.RedisServer
        const events = yield* listen(bus)
        yield* server.stop
        const [elapsed, published] = yield* timed(Effect.either(bus.publish(remove("lost"))))
        expect(Either.isLeft(published)).toBe(true)
        if (Either.isLeft(published)) expect(published.left._tag).toBe("BusError")
        // The command timeout (500 ms) plus 1 s of room; with the server down a hang still fails it.
        expect(elapsed).toBeLessThan(1_500)
        yield* server.start
        expect(yield* events.next).toEqual(InvalidationBus.reconnected)
        yield* eventually(bus.publish(remove("back")), "3 seconds")
        expect(isMessage(yield* events.until((e) => e._tag !== "Reconnected"), "back")).toBe(true)
      })
    )

    it.scoped("subscribing while the server is down is a BusError, not a hang", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const server = yield* RedisServer.RedisServer
        yield* server.stop
        const [elapsed, result] = yield* timed(Effect.either(Effect.scoped(bus.subscribe)))
        yield* server.start
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) expect(result.left._tag).toBe("BusError")
        // The connect timeout (1 s) plus 2 s of room; with the server down a hang still fails it.
        expect(elapsed).toBeLessThan(3_000)
      })
    )

    it.scoped("closing the subscription's scope ends the stream and closes its connection", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        const look = yield* observer
        const subscriberCount = Effect.map(
          clientNames(look),
          (names) => names.filter((n) => n === "tiercache:subscriber").length
        )
        const baseline = yield* subscriberCount
        const ended = yield* Effect.scoped(
          Effect.gen(function* () {
            const stream = yield* bus.subscribe
            expect(yield* subscriberCount).toBe(baseline + 1)
            return yield* Effect.fork(Stream.runDrain(stream))
          })
        )
        // The stream ends by itself once its scope is closed.
        yield* ended.await.pipe(Effect.timeout("2 seconds"))
        yield* eventually(
          Effect.flatMap(subscriberCount, (n) => (n === baseline ? Effect.void : Effect.fail(n))),
          "2 seconds"
        )
      })
    )

    // From plain JavaScript: a message JSON cannot encode, or none at all, is a BusError (as with
    // TestBus, TestBus.test.ts). A null message died with a TypeError (publishNow read its type).
    it.scoped("a message that cannot be encoded is a BusError, never a defect", () =>
      Effect.gen(function* () {
        const bus = yield* InvalidationBus.InvalidationBus
        for (const message of [{ type: "Update", key: "k", value: 1n, ttl_secs: 1 }, null, undefined]) {
          const exit = yield* Effect.exit(
            bus.publish(message as unknown as InvalidationMessage.InvalidationMessage)
          )
          expect(Exit.isFailure(exit) && exit.cause._tag === "Fail" && exit.cause.error).toMatchObject({
            _tag: "BusError",
            reason: "message cannot be encoded"
          })
        }
      })
    )
  })
})
