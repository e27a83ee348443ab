import { describe, expect, layer } from "@effect/vitest"
import { Entry, Glob, Tier } from "@tiercache/core"
import { RedisServer } from "@tiercache/testing"
import { Effect, Either, Fiber, Layer, Option } from "effect"
import type { Redis } from "ioredis"
import { RedisTier } from "../src/index.js"
import { connectionLayer, eventually, observer, recordingTracer, timed } from "./utils.js"

const Connection = connectionLayer()
const Env = Layer.mergeAll(
  Connection,
  RedisTier.layer({ prefix: "t:" }).pipe(Layer.provide(Connection))
).pipe(Layer.provideMerge(RedisServer.layer()))

const entry = (value: unknown, ttlMs: number, graceMs = 0, tags: ReadonlyArray<string> = []) =>
  Entry.make({ value, now: Date.now(), ttlMs, graceMs, tags })

/** How many times Redis ran each command since the last CONFIG RESETSTAT (INFO commandstats). */
const commandCalls = (look: Redis) =>
  Effect.map(
    Effect.promise(() => look.info("commandstats")),
    (stats) => (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0)
  )

/** A tier on the suite's connection with another prefix. */
const tierWith = (prefix: string) => RedisTier.make({ prefix })

/** A tier with its own prefix on a connection of its own, whose values of `largeValueBytes` or more are large. */
const tierWithLarge = (prefix: string, largeValueBytes: number) =>
  Effect.flatMap(Layer.build(connectionLayer({ largeValueBytes })), (context) =>
    Effect.provide(RedisTier.make({ prefix }), context)
  )

describe("RedisTier", () => {
  layer(Env, { excludeTestServices: true, timeout: "20 seconds" })((it) => {
    it.scoped(
      "RedisTier opens no span of its own: the cache opens one tiercache.tier.* span per call (README: Traces)",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const { tracer: recording, names } = yield* recordingTracer
          yield* Effect.gen(function* () {
            yield* tier.set("span", entry(1, 10_000))
            yield* tier.get("span")
            expect(names()).toEqual([])
            yield* tier.setMany([["span2", entry(2, 10_000)]])
            yield* tier.getMany(["span", "span2"])
            yield* tier.remove(["span", "span2"])
            yield* tier.removeMatching("span*")
            yield* tier.clear
            expect(names()).toEqual([])
          }).pipe(Effect.withTracer(recording))
        })
    )

    it.scoped("remove given keys that are not an array (plain JS) is a TierError; nothing is removed", () =>
      Effect.gen(function* () {
        // Before: a string reached keys.map and null keys.length: a defect out of the tier.
        const tier = yield* Tier.L2
        yield* tier.setMany([
          ["abc", entry(0, 60_000)],
          ["a", entry(1, 60_000)]
        ])
        // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
        const js = (keys: unknown): any => keys
        for (const keys of ["abc", null, undefined, 5]) {
          const exit = yield* Effect.exit(tier.remove(js(keys)))
          const error = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
          expect([keys, error?._tag, error?.operation]).toEqual([keys, "TierError", "remove"])
        }
        expect((yield* tier.getMany(["abc", "a"])).map(Option.isSome)).toEqual([true, true])
      })
    )

    it.scoped(
      "bad arguments from plain JS are a TierError, lone surrogates too; Redis holds no stray key",
      () =>
        Effect.gen(function* () {
          // Before: set(42, e), set(undefined, e) and set({}, e) wrote "x:42", "x:undefined" and
          // "x:[object Object]"; a key with a lone surrogate was written as U+FFFD (one key for
          // "k\uD800" and "k\uDBFF"); writeIfNewer without `at` or with a key of 1 wrote; an
          // entry without createdAt was written as a record no read decodes; set(k, null),
          // setMany([["k"]]), getMany(null) and writeIfNewer(null) were defects.
          const look = yield* observer
          const prefix = `input:${Date.now().toString(36)}:`
          const tier = yield* tierWith(prefix)
          // biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
          const js = (u: unknown): any => u
          const good = entry("other", 60_000)
          yield* tier.set("kept", entry("kept", 60_000))
          const calls: ReadonlyArray<readonly [string, string, Effect.Effect<unknown, unknown>]> = [
            ["set", "key must be a string, got 42", tier.set(js(42), good)],
            ["set", "key must be a string, got undefined", tier.set(js(undefined), good)],
            ["set", "key must be a string, got object", tier.set(js({}), good)],
            ["set", "key must be well-formed UTF-16", tier.set("k\uD800", good)],
            ["get", "key must be well-formed UTF-16", tier.get("k\uDBFF")],
            ["getMany", "keys[1] must be well-formed UTF-16", tier.getMany(["kept", "k\uD800"])],
            [
              "setMany",
              "entries[1][0] must be well-formed UTF-16",
              tier.setMany([
                ["fresh", good],
                ["k\uDC00", good]
              ])
            ],
            ["remove", "keys[1] must be well-formed UTF-16", tier.remove(["kept", "k\uD800"])],
            ["removeMatching", "glob must be well-formed UTF-16", tier.removeMatching("k\uD800*")],
            ["removeMatching", "glob must be a string, got undefined", tier.removeMatching(js(undefined))],
            [
              "set",
              "entry.createdAt must be a finite number",
              tier.set("kept", js({ ...good, createdAt: undefined }))
            ],
            ["setMany", "entries[1][1] must be an Entry", tier.setMany(js([["fresh", good], ["kept"]]))],
            [
              "writeIfNewer",
              "changes[0].at must be a finite number",
              tier.writeIfNewer!(js([{ key: "fresh", entry: good }]))
            ],
            [
              "writeIfNewer",
              "changes[1].key must be a string",
              tier.writeIfNewer!(
                js([
                  { key: "fresh", entry: good, at: 1 },
                  { key: 1, entry: good, at: 1 }
                ])
              )
            ],
            [
              "writeIfNewer",
              "changes[0].key must be well-formed UTF-16",
              tier.writeIfNewer!([{ key: "k\uD800", entry: good, at: 1 }])
            ]
          ]
          for (const [operation, reason, call] of calls) {
            const exit = yield* Effect.exit(call)
            const error = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
            const seen = error as { _tag?: string; operation?: string; reason?: string } | undefined
            expect([reason, seen?._tag, seen?.operation, seen?.reason?.includes(reason)]).toEqual([
              reason,
              "TierError",
              operation,
              true
            ])
          }
          let ran = 0
          const [error, answer] = yield* tier.setThen!(
            js(42),
            good,
            Effect.sync(() => ++ran)
          )
          expect([error?._tag, error?.reason, answer, ran]).toEqual([
            "TierError",
            "key must be a string, got 42",
            1,
            1
          ])
          // Only the key written first, under the prefix; nowhere a key a bad one reads as.
          const keys = yield* Effect.promise(() => look.keys(`${Glob.escape(prefix)}*`))
          expect(keys).toEqual([`${prefix}kept`])
          const stray = yield* Effect.promise(() =>
            Promise.all(["*undefined*", "*\\[object Object\\]*", "*42", "*\uFFFD*"].map((p) => look.keys(p)))
          )
          expect(stray).toEqual([[], [], [], []])
          expect(Option.map(yield* tier.get("kept"), (e) => e.value)).toEqual(Option.some("kept"))
        })
    )

    it.scoped(
      "round trip: value, tags, creation time and lifetimes (PX = staleUntil, read back with PTTL)",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const look = yield* observer
          const written = entry({ a: [1, "two", null], b: true }, 10_000, 5_000, ["user", "profile"])
          const [setMs] = yield* timed(tier.set("rt", written))
          // PX was staleUntil - now at the write: Redis's end is staleUntil, late by at most the write's trip.
          const asked = Date.now()
          const pttl = yield* Effect.promise(() => look.pttl("t:rt"))
          expect(pttl).toBeLessThanOrEqual(written.staleUntil + setMs + 1 - asked)
          expect(pttl).toBeGreaterThan(15_000 - 1_000)
          const raw = yield* Effect.promise(() => look.get("t:rt"))
          expect(raw).toBe(Entry.serialize(written))

          const [getMs, got] = yield* timed(tier.get("rt"))
          const read = Option.getOrThrow(got)
          expect(read.value).toEqual(written.value)
          expect(read.tags).toEqual(["user", "profile"])
          expect(read.createdAt).toBe(written.createdAt)
          // Read back from PTTL: never past Redis's end, early by at most the read's round trip.
          expect(read.staleUntil).toBeLessThanOrEqual(written.staleUntil + setMs + 1)
          expect(read.staleUntil).toBeGreaterThanOrEqual(written.staleUntil - getMs - 1)
          expect(read.staleUntil - read.expiresAt).toBe(5_000)
          expect(yield* tier.get("absent")).toEqual(Option.none())
        })
    )

    it.scoped("concurrent reads of one tick go out as one command, each answered with its own key", () =>
      Effect.gen(function* () {
        const tier = yield* tierWith("batch:")
        const look = yield* observer
        for (let i = 0; i < 50; i++) yield* tier.set(`${i}`, entry({ i }, 60_000))
        yield* Effect.promise(() => look.set("batch:raw", "not an entry"))
        yield* Effect.promise(() => look.lpush("batch:list", "x"))
        yield* Effect.promise(() => look.config("RESETSTAT"))
        const keys = [...Array.from({ length: 50 }, (_, i) => `${i}`), "absent", "raw", "list"]
        const got = yield* Effect.all(
          keys.map((k) => tier.get(k)),
          { concurrency: "unbounded" }
        )
        for (let i = 0; i < 50; i++) expect(Option.map(got[i]!, (e) => e.value)).toEqual(Option.some({ i }))
        expect(got.slice(50)).toEqual([Option.none(), Option.none(), Option.none()])
        const calls = yield* commandCalls(look)
        // One script call (EVAL the first time it meets this server, EVALSHA after) for 53 reads.
        expect(calls("evalsha") + calls("eval")).toBe(1)
        // Redis counts the commands the script ran: no large value was written in this
        // namespace (no marker), so MGETs of slices of the keys (4, then 32 at these sizes, then
        // the 17 left), and one PTTL per string. The last slice's MGET answered nil for "absent"
        // and "list": one EXISTS of both (the marker's is the first), and as one exists (the
        // list: a foreign value, counted), one EXISTS each.
        expect(calls("exists")).toBe(4)
        expect(calls("mget")).toBe(3)
        expect(calls("getrange")).toBe(0)
        expect(calls("pttl")).toBe(51)
        expect(calls("get")).toBe(0)
      })
    )

    it.scoped("more reads in one tick than one call takes go out in calls of 64, each answered", () =>
      Effect.gen(function* () {
        const tier = yield* tierWith("wide:")
        const look = yield* observer
        yield* tier.setMany(Array.from({ length: 200 }, (_, i) => [`${i}`, entry({ i }, 60_000)] as const))
        yield* Effect.promise(() => look.config("RESETSTAT"))
        const got = yield* Effect.all(
          Array.from({ length: 200 }, (_, i) => tier.get(`${i}`)),
          { concurrency: "unbounded" }
        )
        expect(got.map((found) => Option.map(found, (e) => e.value))).toEqual(
          Array.from({ length: 200 }, (_, i) => Option.some({ i }))
        )
        const calls = yield* commandCalls(look)
        expect(calls("evalsha") + calls("eval")).toBe(4)
        // Three MGET slices for each call of 64 keys (4, 32, 28), two for the call of 8 (4, 4).
        expect(calls("mget")).toBe(11)
        expect(calls("pttl")).toBe(200)
      })
    )

    it.scoped(
      "batched reads are MGETs until the tier writes a large value in the namespace, then a GETRANGE per key; clear keeps the marker",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const tier = yield* tierWithLarge("mark:", 4096)
          const small = Array.from({ length: 10 }, (_, i) => `s:${i}`)
          yield* tier.setMany(small.map((k, i) => [k, entry(i, 60_000)] as const))
          const readAll = (keys: ReadonlyArray<string>) =>
            Effect.map(
              Effect.all(
                keys.map((k) => tier.get(k)),
                { concurrency: "unbounded" }
              ),
              (found) => found.map((o) => Option.map(o, (e) => e.value))
            )
          const smallValues = small.map((_, i) => Option.some(i))

          // A value over the threshold written by another program (no marker): the MGET path
          // (two slices: 4 keys, then the 7 left) answers its length, and it is fetched whole on
          // the large-value connection.
          const foreign = "f".repeat(10_000)
          yield* Effect.promise(() =>
            look.set("mark:foreign", Entry.serialize(entry(foreign, 60_000)), "PX", 60_000)
          )
          yield* Effect.promise(() => look.config("RESETSTAT"))
          expect(yield* readAll([...small, "foreign"])).toEqual([...smallValues, Option.some(foreign)])
          let calls = yield* commandCalls(look)
          expect([calls("mget"), calls("getrange"), calls("strlen"), calls("get")]).toEqual([2, 0, 1, 1])

          // The tier's own large value: the marker first (outliving the value), then a GETRANGE
          // per key, so that Redis never copies a large value into the script.
          const big = "b".repeat(10_000)
          yield* tier.set("big", entry(big, 60_000))
          expect(yield* Effect.promise(() => look.pttl("mark:__tiercache:large"))).toBeGreaterThan(60_000)
          yield* Effect.promise(() => look.config("RESETSTAT"))
          expect(yield* readAll([...small, "big"])).toEqual([...smallValues, Option.some(big)])
          calls = yield* commandCalls(look)
          expect([calls("mget"), calls("getrange"), calls("strlen"), calls("get")]).toEqual([0, 11, 1, 1])

          // A pattern and clear remove every entry but leave the marker to its expiry.
          expect(yield* tier.removeMatching("s:*")).toBe(10)
          yield* tier.clear
          expect(yield* Effect.promise(() => look.exists("mark:__tiercache:large"))).toBe(1)
          expect(yield* Effect.promise(() => look.keys("mark:*"))).toEqual(["mark:__tiercache:large"])
          expect(yield* readAll([...small, "big"])).toEqual(Array.from({ length: 11 }, () => Option.none()))
        })
    )

    it.scoped(
      "a batch read that meets a large value another program wrote sets the marker: later batches copy at most largeValueBytes of it into the script",
      () =>
        Effect.gen(function* () {
          // Before: the marker was set only by the tier's own large writes, so every batch read
          // with such a key MGET it whole into the script; one too large to copy within the
          // command timeout failed every read of its batches and opened the tier's breaker.
          const look = yield* observer
          const tier = yield* tierWithLarge("fm:", 4096)
          yield* tier.set("small", entry(1, 60_000))
          const foreign = "f".repeat(10_000)
          yield* Effect.promise(() =>
            look.set("fm:foreign", Entry.serialize(entry(foreign, 60_000)), "PX", 60_000)
          )
          expect(yield* Effect.promise(() => look.exists("fm:__tiercache:large"))).toBe(0)
          const readBoth = Effect.map(
            Effect.all([tier.get("small"), tier.get("foreign")], { concurrency: "unbounded" }),
            (found) => found.map((o) => Option.map(o, (e) => e.value))
          )
          expect(yield* readBoth).toEqual([Option.some(1), Option.some(foreign)])
          // The marker now outlives the foreign value, by the margin a large write gives it.
          expect(yield* Effect.promise(() => look.pttl("fm:__tiercache:large"))).toBeGreaterThan(60_000)
          yield* Effect.promise(() => look.config("RESETSTAT"))
          expect(yield* readBoth).toEqual([Option.some(1), Option.some(foreign)])
          const calls = yield* commandCalls(look)
          expect([calls("mget"), calls("getrange")]).toEqual([0, 2])
        })
    )

    it.scoped("a lone read is GETRANGE (up to largeValueBytes) and PTTL, no script", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        yield* tier.set("lone", entry("v", 60_000))
        yield* Effect.promise(() => look.config("RESETSTAT"))
        expect(Option.map(yield* tier.get("lone"), (e) => e.value)).toEqual(Option.some("v"))
        const calls = yield* commandCalls(look)
        expect(calls("getrange")).toBe(1)
        expect(calls("pttl")).toBe(1)
        expect(calls("get") + calls("strlen")).toBe(0)
        expect(calls("evalsha") + calls("eval") + calls("exec") + calls("multi")).toBe(0)
        // Alone too, a key of another type, a value that is no entry, and no key are misses.
        yield* Effect.promise(() => look.lpush("t:lone:list", "x"))
        yield* Effect.promise(() => look.set("t:lone:raw", "not an entry"))
        expect(yield* tier.get("lone:list")).toEqual(Option.none())
        expect(yield* tier.get("lone:raw")).toEqual(Option.none())
        expect(yield* tier.get("lone:absent")).toEqual(Option.none())
      })
    )

    it.scoped("getMany of 200 000 keys answers every key in order (sent in chunks)", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const keys = Array.from({ length: 200_000 }, (_, i) => `many:${i}`)
        yield* tier.setMany(keys.filter((_, i) => i % 1000 === 0).map((k) => [k, entry(k, 60_000)] as const))
        const got = yield* tier.getMany(keys)
        expect(got.length).toBe(keys.length)
        got.forEach((found, i) => {
          if (i % 1000 === 0) expect(Option.map(found, (e) => e.value)).toEqual(Option.some(keys[i]))
          else expect(found).toEqual(Option.none())
        })
      })
    )

    it.scoped("lifetimes come from Redis's countdown, in milliseconds", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const setStart = Date.now()
        yield* tier.set("short", Entry.make({ value: "v", now: setStart, ttlMs: 300 }))
        const setEnd = Date.now()
        yield* Effect.sleep("150 millis")
        const before = Date.now()
        const read = Option.getOrThrow(yield* tier.get("short"))
        const after = Date.now()
        // Redis's end is setStart + 300, late by at most the write's trip (PX counts from its
        // arrival); the read is never past it, and early by at most its own round trip.
        expect(read.expiresAt).toBeLessThanOrEqual(setEnd + 300 + 1)
        expect(read.expiresAt).toBeGreaterThanOrEqual(setStart + 300 - (after - before) - 1)
        expect(Entry.remainingMs(read, before)).toBeLessThanOrEqual(300 - (before - setEnd) + 1)
        yield* Effect.sleep(Math.max(0, setEnd + 320 - Date.now()))
        expect(yield* tier.get("short")).toEqual(Option.none())
      })
    )

    it.scoped("a lifetime measured on a skewed writer clock is corrected by PTTL", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        // Written by another machine whose clock is an hour ahead: the envelope says an hour
        // more, but Redis's countdown (2 s) is what counts.
        const skewed = Entry.make({ value: 1, now: Date.now() + 3_600_000, ttlMs: 2_000 })
        const setStart = Date.now()
        yield* Effect.promise(() => look.set("t:skew", Entry.serialize(skewed), "PX", 2_000))
        const setEnd = Date.now()
        const before = Date.now()
        const read = Option.getOrThrow(yield* tier.get("skew"))
        const after = Date.now()
        expect(read.staleUntil).toBeLessThanOrEqual(setEnd + 2_000 + 1)
        expect(read.staleUntil).toBeGreaterThanOrEqual(setStart + 2_000 - (after - before) - 1)
      })
    )

    it.scoped("an entry already gone is not written, and removes what was there", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        yield* tier.set("gone", entry("old", 10_000))
        yield* tier.set("gone", Entry.make({ value: "new", now: Date.now() - 10_000, ttlMs: 1_000 }))
        expect(yield* Effect.promise(() => look.exists("t:gone"))).toBe(0)
        expect(yield* tier.get("gone")).toEqual(Option.none())
      })
    )

    it.scoped("getMany and setMany keep order, report misses, and carry each key's lifetime", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        const written = Date.now()
        yield* tier.setMany([
          ["m1", Entry.make({ value: 1, now: written, ttlMs: 1_000 })],
          ["m2", Entry.make({ value: 2, now: written, ttlMs: 2_000 })],
          ["m3", Entry.make({ value: 3, now: written, ttlMs: 3_000, graceMs: 1_000 })],
          ["m4", Entry.make({ value: 4, now: written - 5_000, ttlMs: 1 })]
        ])
        const setEnd = Date.now()
        expect(yield* Effect.promise(() => look.exists("t:m4"))).toBe(0)
        const asked = Date.now()
        const ttls = yield* Effect.promise(() =>
          Promise.all(["t:m1", "t:m2", "t:m3"].map((k) => look.pttl(k)))
        )
        const answered = Date.now()
        // Each key's PX is its own staleUntil, so PTTL is what is left of it, within the timings.
        ;[1_000, 2_000, 4_000].forEach((lifetime, i) => {
          expect(ttls[i]).toBeLessThanOrEqual(lifetime - (asked - setEnd) + 1)
          expect(ttls[i]).toBeGreaterThanOrEqual(written + lifetime - answered - 1)
        })
        const [getMs, read] = yield* timed(tier.getMany(["m3", "missing", "m1", "m2", "m4"]))
        expect(read.map(Option.map((e) => e.value))).toEqual([
          Option.some(3),
          Option.none(),
          Option.some(1),
          Option.some(2),
          Option.none()
        ])
        const m3 = Option.getOrThrow(read[0]!)
        expect(m3.staleUntil).toBeLessThanOrEqual(written + 4_000 + (setEnd - written) + 1)
        expect(m3.staleUntil).toBeGreaterThanOrEqual(written + 4_000 - getMs - 1)
        expect(m3.staleUntil - m3.expiresAt).toBe(1_000)
        expect(yield* tier.getMany([])).toEqual([])
      })
    )

    it.scoped("a value that is not an entry (not JSON, wrong shape, not a string) is a miss", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const look = yield* observer
        yield* Effect.promise(() =>
          Promise.all([
            look.set("t:bad-json", "not json {"),
            look.set("t:bad-shape", JSON.stringify({ v: 1 })),
            look.set("t:bad-lifetimes", JSON.stringify({ v: 1, e: 2_000, s: 1_000, t: [], c: 0 })),
            look.set("t:bad-bytes", Buffer.from([0xff, 0xfe, 0x00, 0x80])),
            look.hset("t:bad-type", "field", "value"),
            look.rpush("t:bad-list", "a")
          ])
        )
        yield* tier.set("good", entry("fine", 10_000))
        for (const key of ["bad-json", "bad-shape", "bad-lifetimes", "bad-bytes", "bad-type", "bad-list"]) {
          expect(yield* tier.get(key)).toEqual(Option.none())
        }
        const many = yield* tier.getMany(["bad-json", "good", "bad-shape", "bad-type", "bad-list"])
        expect(many.map(Option.isSome)).toEqual([false, true, false, false, false])
        // The bad value can be overwritten by a good one.
        yield* tier.set("bad-json", entry("fixed", 10_000))
        expect(Option.map(yield* tier.get("bad-json"), (e) => e.value)).toEqual(Option.some("fixed"))
      })
    )

    it.scoped("keys with spaces, unicode, newlines and glob characters round trip and match literally", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const keys = [
          "with space",
          "ünïcödé ✓ 日本 🚀",
          "line\nbreak\r\n",
          "glob*?[x]\\y",
          "tab\tkey",
          "glob-other"
        ]
        yield* tier.setMany(keys.map((k, i) => [k, entry(i, 10_000)] as const))
        const read = yield* tier.getMany(keys)
        expect(read.map(Option.map((e) => e.value))).toEqual(keys.map((_, i) => Option.some(i)))
        expect(yield* tier.removeMatching(Glob.escape("glob*?[x]\\y"))).toBe(1)
        expect(yield* tier.get("glob*?[x]\\y")).toEqual(Option.none())
        expect(Option.isSome(yield* tier.get("glob-other"))).toBe(true)
        expect(yield* tier.removeMatching("line\n*")).toBe(1)
        yield* tier.remove(["with space", "ünïcödé ✓ 日本 🚀"])
        const after = yield* tier.getMany(keys)
        expect(after.map(Option.isSome)).toEqual([false, false, false, false, true, true])
      })
    )

    it.scoped("a 1 MB value round trips", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const big = "x".repeat(512 * 1024) + "é".repeat(256 * 1024)
        yield* tier.set("big", entry({ big }, 10_000))
        const read = Option.getOrThrow(yield* tier.get("big"))
        expect((read.value as { big: string }).big).toBe(big)
      })
    )

    it.scoped(
      "removeMatching and clear touch their own prefix only, even a prefix with glob characters",
      () =>
        Effect.gen(function* () {
          const look = yield* observer
          const bracket = yield* tierWith("app[1]:")
          const plain = yield* tierWith("app1:")
          const star = yield* tierWith("app*:")
          for (const t of [bracket, plain, star]) {
            yield* t.setMany([
              ["user:1", entry(1, 10_000)],
              ["user:2", entry(2, 10_000)],
              ["order:1", entry(3, 10_000)]
            ])
          }
          yield* Effect.promise(() => look.set("app1-unrelated", "x"))
          expect(yield* bracket.removeMatching("user:*")).toBe(2)
          expect((yield* bracket.getMany(["user:1", "user:2", "order:1"])).map(Option.isSome)).toEqual([
            false,
            false,
            true
          ])
          expect((yield* plain.getMany(["user:1", "user:2", "order:1"])).map(Option.isSome)).toEqual([
            true,
            true,
            true
          ])
          expect((yield* star.getMany(["user:1", "user:2", "order:1"])).map(Option.isSome)).toEqual([
            true,
            true,
            true
          ])

          yield* star.clear
          expect((yield* star.getMany(["user:1", "order:1"])).map(Option.isSome)).toEqual([false, false])
          expect((yield* bracket.getMany(["order:1"])).map(Option.isSome)).toEqual([true])
          expect((yield* plain.getMany(["user:1", "order:1"])).map(Option.isSome)).toEqual([true, true])

          yield* bracket.clear
          expect((yield* bracket.getMany(["order:1"])).map(Option.isSome)).toEqual([false])
          expect((yield* plain.getMany(["user:1", "user:2", "order:1"])).map(Option.isSome)).toEqual([
            true,
            true,
            true
          ])
          expect(yield* Effect.promise(() => look.get("app1-unrelated"))).toBe("x")
        })
    )

    it.scoped("removeMatching scans in batches (many keys) and answers how many it removed", () =>
      Effect.gen(function* () {
        const tier = yield* tierWith("many:")
        const n = 2_500
        yield* tier.setMany(Array.from({ length: n }, (_, i) => [`k${i}`, entry(i, 10_000)] as const))
        yield* tier.set("other", entry("o", 10_000))
        expect(yield* tier.removeMatching("k*")).toBe(n)
        expect(Option.isSome(yield* tier.get("other"))).toBe(true)
        yield* tier.setMany(Array.from({ length: n }, (_, i) => [`r${i}`, entry(i, 10_000)] as const))
        yield* tier.remove(Array.from({ length: n }, (_, i) => `r${i}`))
        expect((yield* tier.getMany(["r0", "r1234", "r2499"])).map(Option.isSome)).toEqual([
          false,
          false,
          false
        ])
      })
    )

    // README (Pattern invalidation): "Redis by SCAN, never KEYS, inside the tier's prefix".
    it.scoped("removeMatching and clear find keys with SCAN MATCH under the prefix, never KEYS", () =>
      Effect.gen(function* () {
        const tier = yield* tierWith("scan:")
        const look = yield* observer
        yield* tier.setMany(Array.from({ length: 300 }, (_, i) => [`k${i}`, entry(i, 60_000)] as const))
        yield* Effect.promise(() => look.set("scanner", "another app's"))
        const watcher = yield* observer
        const monitor = yield* Effect.promise(() => watcher.monitor())
        yield* Effect.addFinalizer(() => Effect.sync(() => monitor.disconnect()))
        const scans: Array<ReadonlyArray<string>> = []
        monitor.on("monitor", (_time: string, args: ReadonlyArray<string>) => {
          if (String(args[0]).toLowerCase() === "scan") scans.push(args)
        })
        yield* Effect.promise(() => look.config("RESETSTAT"))
        expect(yield* tier.removeMatching("k1*")).toBe(111)
        yield* tier.clear
        const calls = yield* commandCalls(look)
        expect(calls("keys")).toBe(0)
        expect(calls("scan")).toBeGreaterThanOrEqual(2)
        yield* eventually(
          Effect.suspend(() => (scans.length === calls("scan") ? Effect.void : Effect.fail("not yet"))),
          "2 seconds"
        )
        for (const args of scans) {
          const match = args.findIndex((arg) => String(arg).toLowerCase() === "match")
          expect(String(args[match + 1])).toMatch(/^scan:/)
        }
        expect(yield* Effect.promise(() => look.get("scanner"))).toBe("another app's")
        expect(yield* tier.getMany(["k0", "k299"])).toEqual([Option.none(), Option.none()])
      })
    )

    it.scoped("health answers with the PING latency", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const health = yield* tier.health
        expect(health.name).toBe("redis")
        expect(health.healthy).toBe(true)
        expect(health.detail).toMatch(/^PING \d+\.\d+ ms$/)
      })
    )

    it.scoped(
      "a server that stops answering: calls fail with TierError at the command timeout, never hang",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const look = yield* observer
          yield* tier.set("hung", entry("v", 10_000))
          // DEBUG SLEEP blocks the whole server: a stand-in for a hung connection. It lasts 5 s,
          // so that a call waiting for the server fails the 2 s bounds below by far.
          const sleeper = yield* Effect.fork(Effect.promise(() => look.debug("SLEEP", "5")))
          yield* Effect.sleep("50 millis")
          const [elapsed, result] = yield* timed(Effect.either(tier.get("hung")))
          expect(Either.isLeft(result)).toBe(true)
          if (Either.isLeft(result)) {
            expect(result.left._tag).toBe("TierError")
            expect(result.left.tier).toBe("redis")
            expect(result.left.operation).toBe("get")
          }
          expect(elapsed).toBeGreaterThanOrEqual(450)
          // The command timeout (500 ms) plus 1.5 s of room for a loaded host.
          expect(elapsed).toBeLessThan(2_000)
          const [healthElapsed, health] = yield* timed(tier.health)
          expect(health.healthy).toBe(false)
          expect(healthElapsed).toBeLessThan(2_000)
          yield* sleeper.await
          expect(Option.map(yield* tier.get("hung"), (e) => e.value)).toEqual(Option.some("v"))
        })
    )

    it.scoped(
      "Redis killed: every call fails with TierError quickly; after a restart the same layer works",
      () =>
        Effect.gen(function* () {
          const tier = yield* Tier.L2
          const server = yield* RedisServer.RedisServer
          yield* tier.set("k", entry("v", 10_000))
          yield* server.stop
          const calls = [
            tier.get("k"),
            tier.getMany(["k", "j"]),
            tier.set("k", entry("w", 10_000)),
            tier.setMany([["k", entry("w", 10_000)]]),
            tier.remove(["k"]),
            tier.removeMatching("*"),
            tier.clear
          ] as const
          for (const call of calls) {
            const [elapsed, result] = yield* timed(
              Effect.either(call as Effect.Effect<unknown, { _tag: string }>)
            )
            expect(Either.isLeft(result)).toBe(true)
            if (Either.isLeft(result)) expect(result.left._tag).toBe("TierError")
            // The command timeout (500 ms) plus 1 s of room; with the server down a hang still fails.
            expect(elapsed).toBeLessThan(1_500)
          }
          const health = yield* tier.health
          expect(health.healthy).toBe(false)

          yield* server.start
          // The restarted server is empty; the same tier reconnects in the background.
          yield* eventually(tier.set("k", entry("again", 10_000)), "3 seconds")
          expect(Option.map(yield* tier.get("k"), (e) => e.value)).toEqual(Option.some("again"))
          expect((yield* tier.health).healthy).toBe(true)
        })
    )

    // ioredis fails the commands a lost connection leaves unanswered with "Reached the max retries
    // per request limit (which is 0). Refer to "maxRetriesPerRequest" option for details.": an
    // option of the driver's that the tier sets, which the user can do nothing with.
    it.scoped("a call in flight when Redis dies fails with a reason that says so", () =>
      Effect.gen(function* () {
        const tier = yield* Tier.L2
        const server = yield* RedisServer.RedisServer
        const look = yield* observer
        yield* Effect.fork(Effect.promise(() => look.debug("SLEEP", "1").catch(() => undefined)))
        yield* Effect.sleep("50 millis")
        const call = yield* Effect.fork(Effect.either(tier.get("in-flight")))
        yield* Effect.sleep("50 millis")
        yield* server.stop
        const result = yield* Fiber.join(call)
        yield* server.start
        expect(Either.isLeft(result)).toBe(true)
        if (Either.isLeft(result)) {
          expect(result.left.reason).toBe(
            "connection lost before Redis answered (reconnecting in the background)"
          )
          expect(result.left.message).not.toMatch(/maxRetriesPerRequest/)
        }
        yield* eventually(tier.set("k", entry("again", 10_000)), "3 seconds")
      })
    )
  })
})
