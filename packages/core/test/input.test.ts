import { runInNewContext } from "node:vm"
import { KeyValueStore } from "@effect/platform"
import { describe, expect, it, vi } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { MultiInstance, TestBus, TestTier } from "@tiercache/testing"
import { Deferred, type Duration, Effect, Fiber, Layer, Option, Schema, type Scope, TestClock } from "effect"
import { hubWorld } from "./hubWorld.js"

/** A cache with a MemoryTier L1, a TestTier L2 and a bus hub, to see that nothing was written. */
const setup = Effect.gen(function* () {
  const { cache, l1, l2, hub } = yield* hubWorld
  const nothingWritten = Effect.gen(function* () {
    expect((yield* l2.snapshot).size).toBe(0)
    expect(yield* hub.published).toEqual([])
  })
  return { cache, l1, l2, hub, nothingWritten }
})

/** A key list `[5, "b"]` whose iterator answers "x" and "y": checked through it, it passes. */
const lyingIterator = (): Array<unknown> => {
  const list: Array<unknown> = [5, "b"]
  Object.defineProperty(list, Symbol.iterator, {
    value: function* () {
      yield "x"
      yield "y"
    }
  })
  return list
}

/** A key list of one element whose getter answers `key` on its first read and 5 after. */
const changingKey = (key: string): Array<unknown> => {
  let reads = 0
  const list: Array<unknown> = ["placeholder"]
  Object.defineProperty(list, 0, { get: () => (reads++ === 0 ? key : 5), enumerable: true })
  return list
}

/** Nested arrays, `depth` levels deep, built without recursion. */
const nested = (depth: number): unknown => {
  let value: unknown = "leaf"
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

/** A plain-JS caller: the cache seen through `any`, as code without TypeScript calls it. */
// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const untyped = (cache: TieredCache.TieredCache.Service): any => cache

/** The error of an Effect a plain-JS call returned. */
const run = (effect: unknown) => Effect.flip(effect as Effect.Effect<unknown, unknown>)

const expectInputError = (error: unknown, problem: string, mention: string) => {
  expect(error).toMatchObject({ _tag: "CacheInputError", problem })
  expect((error as Error).message).toContain(mention)
}

describe("input that used to be a defect is a CacheInputError; nothing is written", () => {
  it.scoped("a value with a throwing getter, at any depth", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      const bad = {
        a: [
          1,
          {
            get b(): unknown {
              throw new Error("boom")
            }
          }
        ]
      }
      const effects: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
        cache.set("k", bad),
        cache.update("k", bad),
        cache.getOrCompute("k", Effect.succeed(bad))
      ]
      for (const effect of effects) {
        const error = yield* Effect.flip(effect)
        expectInputError(error, "UnencodableValue", "value.a[1].b could not be read")
        expect((error as Error).message).toContain("boom")
      }
      // A proxy whose traps throw is refused too.
      const proxy = new Proxy(
        {},
        {
          ownKeys: () => {
            throw new Error("no keys")
          }
        }
      )
      expectInputError(yield* Effect.flip(cache.set("k", proxy)), "UnencodableValue", "no keys")
      yield* nothingWritten
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )

  // DESIGN, Bad input: "values that cannot be encoded: a typed error naming the problem, before
  // anything is written". A schema whose transformation throws on the value (JSON.stringify of a
  // bigint) made Schema's encoder throw: set, update and getOrComputeTyped died with a defect.
  it.scoped("a value the schema's encoder throws on", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      const Json = Schema.transform(Schema.String, Schema.Unknown, {
        decode: (text) => JSON.parse(text) as unknown,
        encode: (value) => JSON.stringify(value)
      })
      const value = { n: 1n }
      const effects: ReadonlyArray<Effect.Effect<unknown, unknown>> = [
        cache.set("k", value, { schema: Json }),
        cache.update("k", value, { schema: Json }),
        cache.getOrComputeTyped("k", Json, Effect.succeed(value))
      ]
      for (const effect of effects) {
        expectInputError(yield* Effect.flip(effect), "UnencodableValue", "BigInt")
      }
      yield* nothingWritten
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )

  it.scoped("an array nested 100,000 deep is refused without a stack overflow; 1,000 levels are stored", () =>
    Effect.gen(function* () {
      const { cache, l2, nothingWritten } = yield* setup
      const deep = nested(100_000)
      const error = yield* Effect.flip(cache.set("k", deep))
      expectInputError(error, "UnencodableValue", "nested deeper than 1000 levels")
      expectInputError(
        yield* Effect.flip(cache.getOrCompute("k", Effect.succeed(deep))),
        "UnencodableValue",
        "deeper than 1000"
      )
      expectInputError(yield* Effect.flip(cache.set("k", nested(1001))), "UnencodableValue", "deeper")
      // A circular value is still named as such, wherever the cycle starts.
      const loop: Array<unknown> = []
      loop.push({ x: loop })
      expectInputError(
        yield* Effect.flip(cache.set("k", [loop])),
        "UnencodableValue",
        "value[0][0].x is a circular"
      )
      yield* nothingWritten

      // At the bound, the value is stored and read back from the L2 as it was.
      yield* cache.set("k", nested(1000))
      expect(Option.getOrThrow(yield* l2.get("k")).value).toEqual(nested(1000))
      expect(yield* cache.get("k")).toEqual(Option.some(nested(1000)))
    })
  )

  it.scoped("a compute that is not an Effect (a function, a promise, undefined) from plain JS", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      const js = untyped(cache)
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [() => 1, "a function"],
        [async () => 1, "a function"],
        [Promise.resolve(1), "a Promise"],
        [undefined, "undefined"],
        [null, "null"],
        [{ value: 1 }, "object"]
      ]
      for (const [compute, mention] of cases) {
        expectInputError(yield* run(js.getOrCompute("k", compute)), "InvalidOption", mention)
        expectInputError(
          yield* run(js.getOrComputeTyped("k", Schema.Number, compute)),
          "InvalidOption",
          "compute must be an Effect"
        )
      }
      yield* nothingWritten
      expect((yield* cache.stats).inFlight).toBe(0)
      // A real Effect afterwards computes as usual.
      expect(yield* cache.getOrCompute("k", Effect.succeed(7))).toBe(7)
    })
  )

  it.scoped("options that are not an object (null, a string, a number) from plain JS", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      const js = untyped(cache)
      for (const [opts, mention] of [
        [null, "null"],
        ["1 hour", "1 hour"],
        [42, "42"]
      ] as const) {
        const errors = [
          yield* run(js.set("k", 1, opts)),
          yield* run(js.update("k", 1, opts)),
          yield* run(js.getOrCompute("k", Effect.succeed(1), opts)),
          yield* run(js.getOrComputeTyped("k", Schema.Number, Effect.succeed(1), opts)),
          // A read's options too: null was "Cannot read properties of null", a string was ignored.
          yield* run(js.get("k", opts)),
          yield* run(js.getTyped("k", Schema.Number, opts))
        ]
        for (const error of errors) expectInputError(error, "InvalidOption", `options must be an object, got`)
        for (const error of errors) expectInputError(error, "InvalidOption", mention)
      }
      yield* nothingWritten
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )

  // README (What a read accepts): a stale entry answers only get/getTyped with `{ allowStale:
  // true }`. From plain JS, `allowStale: "yes"` or `1` (a query string's, a flag's) was read as
  // false without a word: misses where stale answers were asked for. The cache's own switches
  // that are not a boolean are refused; so is a read's.
  it.scoped("a read's allowStale that is not a boolean (from plain JS) is refused, naming it", () =>
    Effect.gen(function* () {
      const { cache } = yield* setup
      yield* cache.set("k", "v", { ttl: "1 second", grace: "1 hour" })
      yield* TestClock.adjust("2 seconds")
      const js = untyped(cache)
      for (const allowStale of ["yes", "true", 1, 0, null, {}]) {
        for (const read of [js.get("k", { allowStale }), js.getTyped("k", Schema.String, { allowStale })])
          expectInputError(yield* run(read), "InvalidOption", "allowStale must be a boolean, got")
      }
      expect(yield* cache.get("k", { allowStale: true })).toEqual(Option.some("v"))
      expect(yield* cache.get("k", { allowStale: undefined })).toEqual(Option.none())
      expect(yield* cache.getTyped("k", Schema.String, { allowStale: false })).toEqual(Option.none())
    })
  )

  // README (getOrCompute) said options were validated "when a computation starts, not on L1
  // hits": they are on every call an L1 hit does not answer (the README now says so), so that a
  // lower-tier hit and a wait for a running computation refuse them too, as does `compute`.
  it.scoped("getOrCompute refuses bad options on a lower-tier hit and when joining, not on an L1 hit", () =>
    Effect.gen(function* () {
      const { cache, l1 } = yield* setup
      const bad = { ttl: -5 }
      yield* cache.set("k", 1)
      expect(yield* cache.getOrCompute("k", Effect.succeed(2), bad)).toBe(1)
      expect(yield* untyped(cache).getOrCompute("k", null) as Effect.Effect<unknown>).toBe(1)
      yield* l1.remove(["k"])
      expectInputError(
        yield* Effect.flip(cache.getOrCompute("k", Effect.succeed(2), bad)),
        "InvalidTtl",
        "ttl"
      )
      expectInputError(yield* run(untyped(cache).getOrCompute("k", null)), "InvalidOption", "compute")
      const gate = yield* Deferred.make<void>()
      const lead = yield* Effect.fork(cache.getOrCompute("j", Effect.as(Deferred.await(gate), 1)))
      yield* Effect.yieldNow()
      expect((yield* cache.stats).inFlight).toBe(1)
      expectInputError(
        yield* Effect.flip(cache.getOrCompute("j", Effect.succeed(2), bad)),
        "InvalidTtl",
        "ttl"
      )
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(lead)).toBe(1)
    })
  )

  it.scoped(
    "a schema that is not an Effect Schema (null, a string, an object, a function) from plain JS",
    () =>
      Effect.gen(function* () {
        const { cache, nothingWritten } = yield* setup
        const js = untyped(cache)
        for (const schema of [null, "number", { ast: 1 }, () => 1]) {
          const errors = [
            yield* run(js.getTyped("k", schema)),
            yield* run(js.getMany(["k"], schema)),
            yield* run(js.getOrComputeTyped("k", schema, Effect.succeed(1))),
            yield* run(js.set("k", 1, { schema })),
            yield* run(js.update("k", 1, { schema }))
          ]
          for (const error of errors)
            expectInputError(error, "InvalidOption", "schema must be an Effect Schema")
          // A real schema in between: a bad one after it is still refused.
          expect(yield* cache.getTyped("other", Schema.Number)).toEqual(Option.none())
        }
        yield* nothingWritten
        expect(yield* cache.getOrComputeTyped("k", Schema.Number, Effect.succeed(7))).toBe(7)
      })
  )

  // README (Typed reads): getTyped and getOrComputeTyped decode with a Schema. A schema known
  // good is checked by identity alone, and the one remembered started as `undefined`: until a
  // process's first typed call with a real schema, `getTyped(key, undefined)` (an import that
  // resolved to nothing) answered the stored value undecoded, typed as the schema's, and
  // getOrComputeTyped stored and answered it the same way.
  it.effect("a typed read's missing schema is refused before any schema was ever checked", () =>
    Effect.gen(function* () {
      vi.resetModules()
      const fresh = yield* Effect.promise(() => import("../src/internal/validate.js"))
      expect(fresh.checkSchema(undefined)).toMatchObject({
        _tag: "CacheInputError",
        problem: "InvalidOption"
      })
      const { cache } = yield* setup
      yield* cache.set("k", { since: "2020-01-01" })
      const js = untyped(cache)
      for (const typed of [
        js.getTyped("k", undefined),
        js.getOrComputeTyped("k", undefined, Effect.succeed(1))
      ])
        expectInputError(yield* run(typed), "InvalidOption", "schema must be an Effect Schema, got undefined")
    }).pipe(Effect.scoped)
  )

  it.scoped(
    "input that throws when inspected (a Proxy, a throwing getter) is a CacheInputError, not a throw",
    () =>
      Effect.gen(function* () {
        const { cache, nothingWritten } = yield* setup
        const js = untyped(cache)
        const boom = () => {
          throw new Error("boom")
        }
        const proxy = new Proxy({}, { get: boom, has: boom, ownKeys: boom, getPrototypeOf: boom })
        const proxyArray = new Proxy(["a"], { get: boom })
        const getter = {
          get ttl() {
            return boom()
          }
        }
        // Each call returns an Effect (nothing is thrown at the call) that fails with the error.
        const calls: ReadonlyArray<() => unknown> = [
          () => js.get(proxy),
          () => js.get("k", proxy),
          () => js.getTyped("k", proxy),
          () => js.getMany(proxyArray),
          () => js.getMany(["k"], proxy),
          () => js.set(proxy, 1),
          () => js.set("k", 1, proxy),
          () => js.set("k", 1, getter),
          () => js.set("k", 1, { tags: proxyArray }),
          () => js.set("k", 1, { schema: proxy }),
          () => js.update("k", 1, getter),
          () => js.getOrCompute("k", proxy),
          () => js.getOrCompute("k", Effect.succeed(1), proxy),
          () => js.getOrCompute("k", Effect.succeed(1), { timeouts: proxy }),
          () => js.getOrComputeTyped("k", proxy, Effect.succeed(1)),
          () => js.invalidate(proxy),
          () => js.invalidateMany(proxyArray),
          () => js.invalidatePattern(proxy),
          () => js.invalidateTag(proxy)
        ]
        for (const call of calls) {
          const error = yield* Effect.flip(call() as Effect.Effect<unknown, unknown>)
          expect(error).toMatchObject({ _tag: "CacheInputError" })
        }
        yield* nothingWritten
      })
  )

  // Before: the key list was checked through its iterator (for...of) and then read by index, so
  // an array whose iterator or index getters answer other keys than its elements (plain JS that
  // reuses a buffer behind a getter, a wrapper over another list) passed the check and a number
  // key reached the tiers; now the list is read once, each key by index, and that copy is checked
  // and read.
  it.scoped("getMany reads its key list once: the keys checked are the keys read", () =>
    Effect.gen(function* () {
      const l1 = yield* MemoryTier.make({ maxEntries: 100 })
      const l2 = yield* TestTier.make()
      const asked: Array<unknown> = []
      const spy: Tier.Tier.Service = {
        ...l2,
        getMany: (keys) => {
          asked.push(...keys)
          return l2.getMany(keys)
        }
      }
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, l1),
        Effect.provideService(Tier.L2, spy)
      )
      const js = untyped(cache)
      yield* cache.set("ok", 1)
      yield* l1.clear
      const iterated = lyingIterator()
      expectInputError(yield* run(js.getMany(iterated)), "InvalidKey", "key must be a string")
      const changing = changingKey("ok")
      expect(yield* js.getMany(changing) as Effect.Effect<unknown>).toEqual([Option.some(1)])
      expect(asked.every((key) => typeof key === "string")).toBe(true)
    })
  )

  it.scoped("invalidateMany reads its key list once: the keys checked are the keys removed", () =>
    Effect.gen(function* () {
      const { cache, l2, hub } = yield* setup
      const js = untyped(cache)
      yield* cache.set("ok", 1)
      const before = (yield* hub.published).length
      const iterated = lyingIterator()
      expectInputError(yield* run(js.invalidateMany(iterated)), "InvalidKey", "key must be a string")
      const changing = changingKey("ok")
      yield* js.invalidateMany(changing) as Effect.Effect<unknown>
      expect(yield* cache.get("ok")).toEqual(Option.none())
      expect((yield* l2.snapshot).has("ok")).toBe(false)
      // The one message sent names the key removed, not the number a second read of it answers.
      const messages = (yield* hub.published)
        .slice(before)
        .map((payload) => JSON.parse(payload) as Record<string, unknown>)
      const removed = messages.flatMap((m) =>
        m.type === "Remove" ? [m.key] : m.type === "RemoveBulk" ? m.keys : []
      )
      expect(removed.flat()).toEqual(["ok"])
    })
  )

  it.scoped(
    "values JSON would encode as something else (a toJSON method, an array subclass) are refused",
    () =>
      Effect.gen(function* () {
        const { cache, l2, nothingWritten } = yield* setup
        class Ids extends Array<number> {
          toJSON() {
            return { ids: "secret" }
          }
        }
        class Plain extends Array<number> {}
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          // An own toJSON on an array, inherited from a subclass, non-enumerable on an object, nested.
          [Object.assign([1, 2, 3], { toJSON: () => "not the array" }), "value has a toJSON method"],
          [Ids.from([1, 2]), "value is a Ids, not a plain array"],
          [Plain.from([1, 2]), "value is a Plain, not a plain array"],
          [
            Object.defineProperty({ price: 10 }, "toJSON", { value: () => ({ price: 0 }) }),
            "value has a toJSON"
          ],
          [{ a: [{ toJSON: () => 1 }] }, "value.a[0] has a toJSON method"],
          [Object.create({ toJSON: () => 1 }), "not a plain object"],
          // Inheriting data from a null-prototype object that names Object.prototype's methods.
          [
            Object.create(
              Object.assign(Object.create(null), {
                hasOwnProperty: 1,
                isPrototypeOf: 2,
                propertyIsEnumerable: 3,
                role: "admin"
              })
            ),
            "not a plain object"
          ],
          // The same with Object.prototype's own methods copied onto it.
          [
            Object.create(
              Object.assign(Object.create(null), {
                hasOwnProperty: Object.prototype.hasOwnProperty,
                isPrototypeOf: Object.prototype.isPrototypeOf,
                propertyIsEnumerable: Object.prototype.propertyIsEnumerable,
                role: "admin"
              })
            ),
            "not a plain object"
          ],
          // A Proxy hiding toJSON from `in` but answering it to a read, as JSON.stringify reads it.
          [
            new Proxy(
              { a: 1 },
              { get: (t, p) => (p === "toJSON" ? () => ({ evil: true }) : Reflect.get(t, p)) }
            ),
            "value has a toJSON method"
          ]
        ]
        for (const [value, mention] of cases) {
          for (const effect of [
            cache.set("k", value),
            cache.update("k", value),
            cache.getOrCompute("k", Effect.succeed(value))
          ]) {
            expectInputError(
              yield* Effect.flip(effect as Effect.Effect<unknown, unknown>),
              "UnencodableValue",
              mention
            )
          }
        }
        yield* nothingWritten
        expect(yield* cache.get("k")).toEqual(Option.none())
        // Plain arrays and objects with data merely named like it are fine, and so is an array
        // made in another realm (node:vm), which JSON encodes as any other.
        const data = { list: [1, 2], note: "toJSON", toJSON: "a field" }
        yield* cache.set("k", data)
        expect(Option.map(yield* l2.get("k"), (e) => e.value)).toEqual(Option.some(data))
        yield* cache.set("realm", runInNewContext("[1, [2, 3], { a: 4 }]"))
        expect(Option.map(yield* l2.get("realm"), (e) => JSON.stringify(e.value))).toEqual(
          Option.some('[1,[2,3],{"a":4}]')
        )
      })
  )

  it.scoped("a duration string whose number is malformed is named as such, not as negative", () =>
    Effect.gen(function* () {
      const { cache, nothingWritten } = yield* setup
      // As plain JS passes them: the type only admits well-formed duration strings.
      for (const ttl of [
        "1.2.3 seconds",
        ". seconds",
        "1..5 minutes"
      ] as unknown as Array<Duration.DurationInput>) {
        const errors = [
          yield* Effect.flip(cache.set("k", 1, { ttl })),
          yield* Effect.flip(cache.getOrCompute("k", Effect.succeed(1), { ttl }))
        ]
        for (const error of errors) {
          expectInputError(error, "InvalidTtl", 'ttl must be a duration such as "5 minutes"')
          expect(error.message).not.toContain("negative")
        }
      }
      // A negative one still says so.
      expectInputError(yield* Effect.flip(cache.set("k", 1, { ttl: "-1 seconds" })), "InvalidTtl", "negative")
      yield* nothingWritten
    })
  )

  it.scoped("reserved keys (__tiercache:) are refused by every operation, reads included", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* setup
      yield* cache.invalidateTag("t")
      const record = yield* l2.get("__tiercache:tag:t")
      expect(Option.isSome(record)).toBe(true)
      for (const key of ["__tiercache:tag:t", "__tiercache:x"]) {
        for (const effect of [
          cache.get(key),
          cache.getTyped(key, Schema.Number),
          cache.getMany(["ok", key]),
          cache.getOrCompute(key, Effect.succeed("mine")),
          cache.getOrComputeTyped(key, Schema.String, Effect.succeed("mine")),
          cache.set(key, 1),
          cache.update(key, 1),
          cache.invalidate(key),
          cache.invalidateMany([key])
        ]) {
          expectInputError(
            yield* Effect.flip(effect as Effect.Effect<unknown, unknown>),
            "InvalidKey",
            "reserved"
          )
        }
      }
      // Nothing computed or stored: the tag's record is as it was.
      expect((yield* cache.stats).computations).toBe(0)
      expect(yield* l2.get("__tiercache:tag:t")).toEqual(record)
      // Keys that merely start with "_" are ordinary.
      yield* cache.set("__tiercache", 1)
      yield* cache.set("_tiercache:x", 2)
      expect(yield* cache.getMany(["__tiercache", "_tiercache:x"])).toEqual([Option.some(1), Option.some(2)])
      expect(yield* cache.getOrCompute("_k", Effect.succeed(3))).toBe(3)
    })
  )

  it.scoped("keys, patterns and tags that are not well-formed UTF-16 (lone surrogates)", () =>
    Effect.gen(function* () {
      const { cache, l1, nothingWritten } = yield* setup
      const lone = ["k\uD800", "k\uDBFF", "\uDC00k", "a\uDC00\uD800b"]
      for (const key of lone) {
        for (const effect of [
          cache.set(key, 1),
          cache.update(key, 1),
          cache.get(key),
          cache.getTyped(key, Schema.Number),
          cache.getMany(["ok", key]),
          cache.getOrCompute(key, Effect.succeed(1)),
          cache.getOrComputeTyped(key, Schema.Number, Effect.succeed(1)),
          cache.invalidate(key),
          cache.invalidateMany([key]),
          cache.invalidatePattern(`${key}*`),
          cache.invalidateTag(key),
          cache.set("ok", 1, { tags: [key] })
        ]) {
          const error = yield* Effect.flip(effect as Effect.Effect<unknown, unknown>)
          expect(error).toMatchObject({ _tag: "CacheInputError" })
          expect((error as Error).message).toContain("well-formed UTF-16: it has a lone surrogate")
        }
      }
      yield* nothingWritten
      expect(Option.isNone(yield* l1.get("ok"))).toBe(true)
      // Well-formed pairs are fine.
      yield* cache.set("emoji:\uD83D\uDE00", 1)
      expect(yield* cache.get("emoji:\uD83D\uDE00")).toEqual(Option.some(1))
    })
  )

  it.scoped("defaults whose TTL plus grace exceed 2^52 ms are a CacheConfigError at build", () =>
    Effect.gen(function* () {
      const build = (options: TieredCache.Options) =>
        Effect.flip(
          TieredCache.make(options).pipe(
            Effect.provideServiceEffect(Tier.L1, MemoryTier.make({ maxEntries: 1 })),
            Effect.provideServiceEffect(Tier.L2, TestTier.make())
          )
        )
      expect(yield* build({ defaultTtl: 2 ** 52, defaultGrace: 1 })).toMatchObject({
        _tag: "CacheConfigError",
        option: "defaultGrace"
      })
      expect(yield* build({ defaultTtl: 1e300 })).toMatchObject({
        _tag: "CacheConfigError",
        option: "defaultTtl"
      })
      expect(yield* build({ tagRetention: 1e300 })).toMatchObject({
        _tag: "CacheConfigError",
        option: "tagRetention"
      })
    })
  )
})

describe("options resolved once per options object stay exact when the object changes", () => {
  it.scoped(
    "one options object, changed between getOrCompute calls: each call sees its fields of the moment",
    () =>
      Effect.gen(function* () {
        const { cache, l1 } = yield* setup
        // biome-ignore lint/suspicious/noExplicitAny: options as plain JS changes them in place
        const opts: any = {
          ttl: "1 hour",
          tags: ["a"]
        }
        // L1 holds a computed value before its caller gets it.
        const entryOf = (key: string) => Effect.map(l1.get(key), Option.getOrThrow)
        const ttlOf = (key: string) => Effect.map(entryOf(key), (entry) => entry.expiresAt - entry.createdAt)
        yield* cache.getOrCompute("k1", Effect.succeed(1), opts)
        expect(yield* ttlOf("k1")).toBe(3_600_000)
        opts.ttl = "2 hours"
        yield* cache.getOrCompute("k2", Effect.succeed(2), opts)
        expect(yield* ttlOf("k2")).toBe(7_200_000)
        opts.tags.push("b")
        yield* cache.getOrCompute("k3", Effect.succeed(3), opts)
        expect((yield* entryOf("k3")).tags).toEqual(["a", "b"])
        // An element changed in place to something that is not a tag: refused, as on a first call.
        opts.tags[1] = 42
        const badTag = yield* Effect.flip(cache.getOrCompute("k4", Effect.succeed(4), opts))
        expectInputError(badTag, "InvalidOption", "tag")
        opts.tags = ["a"]
        opts.timeouts = { hard: "a while" }
        const badTimeout = yield* Effect.flip(cache.getOrCompute("k5", Effect.succeed(5), opts))
        expectInputError(badTimeout, "InvalidTtl", "timeouts.hard")
        expect(Option.isNone(yield* l1.get("k4")) && Option.isNone(yield* l1.get("k5"))).toBe(true)
      })
  )
  it.scoped(
    "a [seconds, nanos] duration changed in place between getOrCompute calls: each call sees its figures",
    () =>
      Effect.gen(function* () {
        const { cache, l1 } = yield* setup
        const ttlOf = (key: string) =>
          Effect.map(l1.get(key), (e) => Option.getOrThrow(e).expiresAt - Option.getOrThrow(e).createdAt)
        // biome-ignore lint/suspicious/noExplicitAny: options as plain JS changes them in place
        const opts: any = { ttl: [60, 0], tags: ["a"] }
        yield* cache.getOrCompute("k1", Effect.succeed(1), opts)
        opts.ttl[0] = 120
        yield* cache.getOrCompute("k2", Effect.succeed(2), opts)
        expect([yield* ttlOf("k1"), yield* ttlOf("k2")]).toEqual([60_000, 120_000])
        // Changed in place to a negative duration: refused, as on a first call.
        opts.ttl[0] = -5
        const bad = yield* Effect.flip(cache.getOrCompute("k3", Effect.succeed(3), opts))
        expectInputError(bad, "InvalidTtl", "ttl")
        expect(Option.isNone(yield* l1.get("k3"))).toBe(true)
      })
  )
  it.scoped(
    "options whose getters answer otherwise on a second read do not leak into later calls with the same text",
    () =>
      Effect.gen(function* () {
        const { cache, l1 } = yield* setup
        // Before: the first call's text ("1 hour", no tags) was resolved by reading the options
        // again, tags ["t"] included, and that was kept for every later `{ ttl: "1 hour" }`.
        let tagReads = 0
        let ttlReads = 0
        // biome-ignore lint/suspicious/noExplicitAny: plain JS options with getters
        const odd: any = {
          get ttl() {
            return ttlReads++ === 0 ? "1 hour" : "2 hours"
          },
          get tags() {
            return tagReads++ === 0 ? undefined : ["t"]
          }
        }
        yield* cache.set("odd", 0, odd)
        const entryOf = (key: string) => Effect.map(l1.get(key), Option.getOrThrow)
        for (const [key, write] of [
          ["set", cache.set("set", 1, { ttl: "1 hour" })],
          ["computed", cache.getOrCompute("computed", Effect.succeed(2), { ttl: "1 hour" })]
        ] as const) {
          yield* write
          const entry = yield* entryOf(key)
          expect([key, entry.tags, entry.expiresAt - entry.createdAt]).toEqual([key, [], 3_600_000])
        }
      })
  )
  it.scoped(
    "durations as text, a new object per call: each text keeps its own figures, a bad one fails every time",
    () =>
      Effect.gen(function* () {
        const { cache, l1 } = yield* setup
        const ttlOf = (key: string) =>
          Effect.map(l1.get(key), (e) => Option.getOrThrow(e).expiresAt - Option.getOrThrow(e).createdAt)
        for (const [i, ttl, ms] of [
          [1, "1 hour", 3_600_000],
          [2, "2 hours", 7_200_000],
          [3, "1 hour", 3_600_000]
        ] as const) {
          yield* cache.set(`s${i}`, i, { ttl })
          yield* cache.getOrCompute(`c${i}`, Effect.succeed(i), { ttl })
          expect([yield* ttlOf(`s${i}`), yield* ttlOf(`c${i}`)]).toEqual([ms, ms])
        }
        // With a grace and timeouts given as text too, still a new object per call: each
        // combination resolves to its own figures.
        const lifetimeOf = (key: string) =>
          Effect.map(l1.get(key), (e) => {
            const entry = Option.getOrThrow(e)
            return [entry.expiresAt - entry.createdAt, entry.staleUntil - entry.expiresAt]
          })
        for (const [i, grace, graceMs] of [
          [4, "1 minute", 60_000],
          [5, 500, 500],
          [6, "1 minute", 60_000]
        ] as const) {
          yield* cache.getOrCompute(`g${i}`, Effect.succeed(i), {
            ttl: "1 hour",
            grace,
            timeouts: { hard: "1 minute" }
          })
          expect(yield* lifetimeOf(`g${i}`)).toEqual([3_600_000, graceMs])
        }
        const softOverHard = yield* Effect.flip(
          cache.getOrCompute("t", Effect.succeed(1), {
            ttl: "1 hour",
            timeouts: { soft: "2 minutes", hard: "1 minute" }
          })
        )
        expectInputError(softOverHard, "InvalidTtl", "timeouts.soft")
        // Timeouts that are not an object stay refused after `{}` (no timeouts given) resolved.
        yield* cache.getOrCompute("t", Effect.succeed(1), { ttl: "1 hour", timeouts: {} })
        const notTimeouts = yield* run(
          untyped(cache).getOrCompute("u", Effect.succeed(1), { ttl: "1 hour", timeouts: "x" })
        )
        expectInputError(notTimeouts, "InvalidOption", "timeouts must be an object")
        for (let i = 0; i < 2; i++) {
          const bad = yield* Effect.flip(cache.set("bad", 1, { ttl: "0 hours" }))
          expectInputError(bad, "InvalidTtl", "ttl")
          const badCompute = yield* Effect.flip(
            cache.getOrCompute("bad", Effect.succeed(1), { ttl: "0 hours" })
          )
          expectInputError(badCompute, "InvalidTtl", "ttl")
        }
      })
  )
})

/**
 * Two instances and one bus over a lower tier holding the entries' wire form, as Redis does: a
 * KeyValueStoreTier over a memory store, and MultiInstance's default TestTier.
 */
const overWireForm: ReadonlyArray<
  readonly [string, Effect.Effect<ReadonlyArray<TieredCache.TieredCache.Service>, unknown, Scope.Scope>]
> = [
  [
    "KeyValueStoreTier",
    Effect.gen(function* () {
      const store = yield* Effect.provide(KeyValueStore.KeyValueStore, KeyValueStore.layerMemory)
      const tier = KeyValueStoreTier.layer().pipe(
        Layer.provide(Layer.succeed(KeyValueStore.KeyValueStore, store))
      )
      const hub = yield* TestBus.makeHub
      return (yield* MultiInstance.make(2, { shared: Layer.merge(tier, TestBus.layer(hub)) })).caches
    })
  ],
  ["TestTier", Effect.map(MultiInstance.make(2), (instances) => instances.caches)]
]

/** The README's list of what JSON does not carry, written by `a` and read by `b` (and `a`). */
const whatJsonDoesNotCarry = (
  tier: string,
  a: TieredCache.TieredCache.Service,
  b: TieredCache.TieredCache.Service
) =>
  Effect.gen(function* () {
    const named = Object.assign([1, 2], { label: "x" })
    const cases: ReadonlyArray<readonly [string, () => unknown, unknown]> = [
      ["negative zero", () => ({ n: -0 }), { n: 0 }],
      ["symbol-keyed", () => ({ [Symbol("s")]: 1, b: 1 }), { b: 1 }],
      ["non-enumerable", () => Object.defineProperty({ b: 1 }, "hidden", { value: 1 }), { b: 1 }],
      ["named array property", () => named, [1, 2]],
      ["undefined property", () => ({ a: undefined, b: 1 }), { b: 1 }],
      ["null prototype", () => Object.assign(Object.create(null), { b: 1 }), { b: 1 }]
    ]
    for (const [name, make, elsewhere] of cases) {
      // Through the store (set) and through the bus's update message (update).
      const written = make()
      yield* a.set(`set:${name}`, written)
      const updated = make()
      yield* a.update(`update:${name}`, updated)
      yield* MultiInstance.settle([a, b])
      expect(yield* a.get(`set:${name}`)).toEqual(Option.some(written))
      expect(Option.getOrThrow(yield* a.get(`update:${name}`))).toBe(updated)
      for (const key of [`set:${name}`, `update:${name}`]) {
        const there = Option.getOrThrow(yield* b.get(key))
        expect(there, `${name} (${key}) over ${tier}`).toStrictEqual(elsewhere)
        expect(Object.getPrototypeOf(there)).toBe(Array.isArray(there) ? Array.prototype : Object.prototype)
      }
    }
    // What the writer's L1 answers is the object as written: undefined and null prototype kept.
    const kept = Option.getOrThrow(yield* a.get("set:undefined property")) as object
    expect(Object.keys(kept)).toEqual(["a", "b"])
    expect(Object.getPrototypeOf(Option.getOrThrow(yield* a.get("set:null prototype")))).toBe(null)
  })

describe("values JSON does not carry", () => {
  // README (Semantics, Values): "L1 keeps values by reference: do not mutate what you cache or
  // read". A value changed after its set is seen changed by the writer's L1 hits only.
  it.scoped(
    "L1 keeps values by reference: a value mutated after its set reaches the writer's L1 hits only",
    () =>
      Effect.gen(function* () {
        for (const [tier, instances] of overWireForm) {
          const [a, b] = yield* instances
          const value = { n: 1 }
          yield* a!.set("k", value)
          expect(Option.getOrThrow(yield* a!.get("k"))).toBe(value)
          value.n = 2
          expect(yield* a!.get("k")).toEqual(Option.some({ n: 2 }))
          // The lower tier holds what was written.
          expect(yield* b!.get("k"), tier).toEqual(Option.some({ n: 1 }))
        }
      })
  )

  it.scoped("what JSON does not carry reaches only the writer's L1, as the README lists it", () =>
    Effect.gen(function* () {
      for (const [tier, instances] of overWireForm) {
        const [a, b] = yield* instances
        yield* whatJsonDoesNotCarry(tier, a!, b!)
      }
    })
  )
})
