/**
 * RedisTier and RedisInvalidationBus on one connection send a write and its bus message
 * together: Redis must still run the write first, so that an instance that re-reads the key on
 * the message finds the new value. Checked with MONITOR (the order Redis ran the commands in)
 * and with a receiver that reads the key the moment the message arrives. A small write and its
 * message reach Redis as one script call (corkedSend.ts), and so do a removal and its message.
 */
import { describe, expect, layer } from "@effect/vitest"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Context, Effect, Layer, Option } from "effect"
import { RedisInvalidationBus, RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer } from "./utils.js"

const CHANNEL = "ordered:invalidate"

const instance = (largeValueBytes?: number, options: TieredCache.Options = {}) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      TieredCache.layer({ instanceId: "writer", ...options }).pipe(
        Layer.provide(MemoryTier.layer({ maxEntries: 1000 })),
        Layer.provide(
          Layer.merge(
            RedisTier.layer({ prefix: "ordered:" }),
            RedisInvalidationBus.layer({ channel: CHANNEL })
          )
        ),
        Layer.provide(connectionLayer(largeValueBytes === undefined ? {} : { largeValueBytes }))
      )
    )
    return Context.get(context, TieredCache.TieredCache)
  })

/** The commands Redis runs from now on (MONITOR), as their arguments. */
const monitor = Effect.gen(function* () {
  const client = yield* observer
  const commands: Array<ReadonlyArray<string>> = []
  const monitoring = yield* Effect.promise(() => client.monitor())
  monitoring.on("monitor", (_time: string, args: ReadonlyArray<string>) => {
    commands.push(args)
  })
  yield* Effect.addFinalizer(() => Effect.sync(() => monitoring.disconnect()))
  return commands
})

/** Index in `commands` of the first command matching. */
const indexOf = (
  commands: ReadonlyArray<ReadonlyArray<string>>,
  match: (args: ReadonlyArray<string>) => boolean
) => commands.findIndex(match)

/**
 * Whether `args` is a PUBLISH announcing `key`: a message about that key, or a `RemoveBulk`
 * listing it (the removes of one moment share one message).
 */
const announces = (args: ReadonlyArray<string>, key: string) => {
  if (args[0]?.toLowerCase() !== "publish") return false
  const message = JSON.parse(args[2]!) as { readonly key?: string; readonly keys?: ReadonlyArray<string> }
  return message.key === key || (message.keys?.includes(key) ?? false)
}

/** Waits (at most 5 s) until MONITOR has shown a PUBLISH about each of `keys`: its feed trails. */
const settled = (commands: ReadonlyArray<ReadonlyArray<string>>, keys: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const announced = (key: string) => commands.some((a) => announces(a, key))
    for (let i = 0; i < 500 && !keys.every(announced); i++) yield* Effect.sleep("10 millis")
  })

describe("a write and its bus message on one Redis connection", () => {
  layer(RedisServer.layer(), { excludeTestServices: true, timeout: "30 seconds" })((it) => {
    it.scoped("Redis runs each SET before the PUBLISH announcing it (set, update, getOrCompute)", () =>
      Effect.gen(function* () {
        const commands = yield* monitor
        const cache = yield* instance()
        const keys: Array<string> = []
        for (let i = 0; i < 30; i++) {
          yield* cache.set(`s${i}`, i)
          yield* cache.update(`u${i}`, i)
          yield* cache.getOrCompute(`c${i}`, Effect.succeed(i))
          keys.push(`s${i}`, `u${i}`, `c${i}`)
        }
        yield* settled(commands, keys)
        for (const key of keys) {
          const set = indexOf(commands, (a) => a[0]?.toLowerCase() === "set" && a[1] === `ordered:${key}`)
          const publish = indexOf(commands, (a) => a[1] === CHANNEL && announces(a, key))
          expect(set, key).toBeGreaterThanOrEqual(0)
          expect(publish, key).toBeGreaterThan(set)
        }
      })
    )

    it.scoped("a set reaches Redis as one script call, which runs the SET and then the PUBLISH", () =>
      Effect.gen(function* () {
        const client = yield* observer
        const seen: Array<{ readonly command: string; readonly inScript: boolean }> = []
        const monitoring = yield* Effect.promise(() => client.monitor())
        monitoring.on("monitor", (_time: string, args: ReadonlyArray<string>, source: string) => {
          if (args.some((a) => a.includes("lone")))
            seen.push({ command: args[0]!.toLowerCase(), inScript: source === "lua" })
        })
        yield* Effect.addFinalizer(() => Effect.sync(() => monitoring.disconnect()))
        const cache = yield* instance()
        yield* cache.set("lone", 1)
        yield* eventually(
          Effect.filterOrFail(
            Effect.sync(() => seen.length),
            (n) => n >= 3,
            () => new Error("MONITOR has not shown the write yet")
          )
        )
        yield* Effect.sleep("50 millis")
        expect(seen.filter((c) => !c.inScript)).toEqual([{ command: "eval", inScript: false }])
        expect(seen.filter((c) => c.inScript)).toEqual([
          { command: "set", inScript: true },
          { command: "publish", inScript: true }
        ])
      })
    )

    it.scoped(
      "invalidate and invalidateMany reach Redis as one script call each: the UNLINK, then the PUBLISH",
      () =>
        Effect.gen(function* () {
          const client = yield* observer
          const seen: Array<{ readonly command: string; readonly inScript: boolean }> = []
          const cache = yield* instance()
          yield* cache.set("gone1", 1)
          yield* cache.set("gone2", 2)
          yield* cache.set("gone3", 3)
          const monitoring = yield* Effect.promise(() => client.monitor())
          monitoring.on("monitor", (_time: string, args: ReadonlyArray<string>, source: string) => {
            if (args.some((a) => a.includes("gone")))
              seen.push({ command: args[0]!.toLowerCase(), inScript: source === "lua" })
          })
          yield* Effect.addFinalizer(() => Effect.sync(() => monitoring.disconnect()))
          yield* cache.invalidate("gone1")
          yield* cache.invalidateMany(["gone2", "gone3"])
          yield* eventually(
            Effect.filterOrFail(
              Effect.sync(() => seen.length),
              (n) => n >= 6,
              () => new Error("MONITOR has not shown the removals yet")
            )
          )
          yield* Effect.sleep("50 millis")
          expect(seen.filter((c) => !c.inScript)).toEqual([
            { command: "eval", inScript: false },
            { command: "eval", inScript: false }
          ])
          expect(seen.filter((c) => c.inScript).map((c) => c.command)).toEqual([
            "unlink",
            "publish",
            "unlink",
            "publish"
          ])
          const look = yield* observer
          expect(
            yield* Effect.promise(() => look.exists("ordered:gone1", "ordered:gone2", "ordered:gone3"))
          ).toBe(0)
        })
    )

    it.scoped("a receiver that reads the key on each removal's message finds it gone", () =>
      Effect.gen(function* () {
        const subscriber = yield* observer
        const reader = yield* observer
        const seen: Array<Promise<readonly [string, string | null]>> = []
        yield* Effect.promise(() => subscriber.subscribe(CHANNEL))
        const cache = yield* instance()
        for (let i = 0; i < 20; i++) yield* cache.set(`g${i}`, i)
        yield* Effect.sleep("50 millis")
        subscriber.on("message", (_channel: string, payload: string) => {
          const message = JSON.parse(payload) as { type: string; key?: string; keys?: ReadonlyArray<string> }
          if (message.type !== "Remove" && message.type !== "RemoveBulk") return
          for (const key of message.keys ?? [message.key!])
            seen.push(reader.get(`ordered:${key}`).then((raw) => [key, raw] as const))
        })
        for (let i = 0; i < 10; i++) yield* cache.invalidate(`g${i}`)
        yield* cache.invalidateMany(Array.from({ length: 10 }, (_, i) => `g${10 + i}`))
        yield* Effect.sleep("100 millis")
        const answers = yield* Effect.promise(() => Promise.all(seen))
        expect(answers.map(([key]) => key).sort()).toEqual(
          Array.from({ length: 20 }, (_, i) => `g${i}`).sort()
        )
        expect(answers.filter(([, raw]) => raw !== null)).toEqual([])
      })
    )

    it.scoped(
      "an UNLINK that Redis refuses still sends its message once; the removal is kept and replayed",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const cache = yield* instance(undefined, { recovery: { retryInterval: "200 millis" } })
          yield* cache.set("kept", "v")
          yield* Effect.promise(() => look.config("SET", "min-replicas-to-write", "1"))
          yield* Effect.addFinalizer(() =>
            Effect.promise(() => look.config("SET", "min-replicas-to-write", "0")).pipe(Effect.ignore)
          )
          const sentBefore = (yield* cache.invalidationStats).messagesSent
          yield* cache.invalidate("kept")
          const stats = yield* cache.stats
          expect(Object.values(stats.tierErrors).reduce((a, b) => a + b, 0)).toBe(1)
          expect(stats.pendingChanges).toBe(1)
          expect((yield* cache.invalidationStats).messagesSent).toBe(sentBefore + 1)
          expect(yield* Effect.promise(() => look.exists("ordered:kept"))).toBe(1)
          expect(yield* cache.get("kept")).toEqual(Option.none())
          yield* Effect.promise(() => look.config("SET", "min-replicas-to-write", "0"))
          yield* eventually(
            Effect.flatMap(
              Effect.promise(() => look.exists("ordered:kept")),
              (n) => (n === 0 ? Effect.void : Effect.fail("not yet"))
            ),
            "10 seconds"
          )
          yield* eventually(
            Effect.flatMap(cache.stats, (st) =>
              st.pendingChanges === 0 ? Effect.void : Effect.fail("not yet")
            )
          )
          expect((yield* cache.stats).replayedChanges).toBe(1)
        })
    )

    it.scoped("a large value (written on its own connection) is announced after its SET too", () =>
      Effect.gen(function* () {
        const commands = yield* monitor
        const cache = yield* instance(1024)
        const big = "x".repeat(4096)
        for (let i = 0; i < 5; i++) yield* cache.set(`big${i}`, big)
        yield* settled(
          commands,
          Array.from({ length: 5 }, (_, i) => `big${i}`)
        )
        for (let i = 0; i < 5; i++) {
          const key = `big${i}`
          const set = indexOf(commands, (a) => a[0]?.toLowerCase() === "set" && a[1] === `ordered:${key}`)
          const publish = indexOf(commands, (a) => announces(a, key))
          expect(set, key).toBeGreaterThanOrEqual(0)
          expect(publish, key).toBeGreaterThan(set)
        }
      })
    )

    it.scoped("a receiver that reads the key on each message finds the value just written", () =>
      Effect.gen(function* () {
        const subscriber = yield* observer
        const reader = yield* observer
        const seen: Array<Promise<readonly [string, string | null]>> = []
        yield* Effect.promise(() => subscriber.subscribe(CHANNEL))
        subscriber.on("message", (_channel: string, payload: string) => {
          const { key } = JSON.parse(payload) as { key: string }
          seen.push(reader.get(`ordered:${key}`).then((raw) => [key, raw] as const))
        })
        const cache = yield* instance()
        for (let i = 0; i < 100; i++) yield* cache.set(`r${i % 10}`, i)
        yield* Effect.sleep("100 millis")
        const answers = yield* Effect.promise(() => Promise.all(seen))
        expect(answers.length).toBe(100)
        // The i-th message is about write i: its read finds value i or a later write of the key.
        answers.forEach(([key, raw], i) => {
          expect(key).toBe(`r${i % 10}`)
          expect(raw).not.toBeNull()
          expect(JSON.parse(raw!).v).toBeGreaterThanOrEqual(i)
        })
      })
    )

    it.scoped("a SET that Redis refuses still sends its message once; the change is kept and replayed", () =>
      Effect.gen(function* () {
        const look = yield* observer
        const cache = yield* instance(undefined, { recovery: { retryInterval: "200 millis" } })
        // Redis refuses every write command (NOREPLICAS); PUBLISH is not one.
        yield* Effect.promise(() => look.config("SET", "min-replicas-to-write", "1"))
        yield* Effect.addFinalizer(() =>
          Effect.promise(() => look.config("SET", "min-replicas-to-write", "0")).pipe(Effect.ignore)
        )
        yield* cache.set("refused", "v")
        const stats = yield* cache.stats
        expect(Object.values(stats.tierErrors).reduce((a, b) => a + b, 0)).toBe(1)
        expect(stats.pendingChanges).toBe(1)
        expect((yield* cache.invalidationStats).messagesSent).toBe(1)
        expect(yield* Effect.promise(() => look.get("ordered:refused"))).toBeNull()
        // L1 answers the value written.
        expect(yield* cache.get("refused")).toEqual(Option.some("v"))
        yield* Effect.promise(() => look.config("SET", "min-replicas-to-write", "0"))
        // The kept change reaches Redis at the next retry.
        yield* eventually(
          Effect.flatMap(
            Effect.promise(() => look.get("ordered:refused")),
            (raw) => (raw === null ? Effect.fail("not yet") : Effect.void)
          ),
          "10 seconds"
        )
        // The replay is done once its message is sent too (after the value reached Redis).
        yield* eventually(
          Effect.flatMap(cache.stats, (st) =>
            st.pendingChanges === 0 ? Effect.void : Effect.fail("not yet")
          )
        )
        expect((yield* cache.stats).replayedChanges).toBe(1)
      })
    )
  })
})
