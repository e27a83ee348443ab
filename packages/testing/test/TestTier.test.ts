/**
 * TestTier holds what is written in its wire form, as RedisTier does (the cache-level cases,
 * two instances over it, are in packages/core/test/input.test.ts "values JSON does not carry").
 */
import { describe, expect, it } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { Effect, Either, Option } from "effect"
import { TestTier } from "../src/index.js"

describe("TestTier", () => {
  it.effect("a value changed by a reader is not changed in the tier; each read is a copy", () =>
    Effect.gen(function* () {
      const tier = yield* TestTier.make()
      yield* tier.setMany([["k", Entry.make({ value: { list: [1] }, now: 0, ttlMs: 60_000 })]])
      const read = Option.getOrThrow(yield* tier.get("k")).value as { list: Array<number> }
      read.list.push(2)
      const [again] = yield* tier.getMany(["k"])
      expect(Option.getOrThrow(again!).value).toEqual({ list: [1] })
    })
  )

  // From plain JavaScript: a getter that passes the tier's input check and throws when the entry
  // is encoded. RedisTier answers a TierError (it encodes in Effect.try); TestTier died.
  it.effect("an entry that throws when encoded is a TierError; setMany then writes none", () =>
    Effect.gen(function* () {
      const tier = yield* TestTier.make()
      let reads = 0
      const value = Object.defineProperty({}, "n", {
        enumerable: true,
        get: () => {
          if (++reads > 1) throw new Error("second read")
          return 1
        }
      })
      const ok = Entry.make({ value: "ok", now: 0, ttlMs: 60_000 })
      const result = yield* Effect.either(
        tier.setMany([
          ["ok", ok],
          ["bad", Entry.make({ value, now: 0, ttlMs: 60_000 })]
        ])
      )
      expect(Either.isLeft(result) && result.left._tag).toBe("TierError")
      expect([...(yield* tier.snapshot).keys()]).toEqual([])
    })
  )

  // As RedisTier (RedisTier.test.ts): Redis holds keys as UTF-8, where "k\uD800" and "k\uDBFF"
  // would be one key, so a lone surrogate is refused; TestTier held them apart.
  it.effect("keys and globs with a lone surrogate are a TierError, as RedisTier's; nothing written", () =>
    Effect.gen(function* () {
      const tier = yield* TestTier.make()
      const entry = Entry.make({ value: "v", now: 0, ttlMs: 60_000 })
      const calls: ReadonlyArray<Effect.Effect<unknown, { readonly _tag: string; readonly reason: string }>> =
        [
          tier.set("k\uD800", entry),
          tier.get("k\uDBFF"),
          tier.getMany(["ok", "k\uD800"]),
          tier.setMany([["k\uDC00", entry]]),
          tier.remove(["k\uD800"]),
          tier.removeMatching("k\uD800*")
        ]
      for (const call of calls) {
        const result = yield* Effect.either(call)
        expect(Either.isLeft(result) && result.left.reason).toMatch(/must be well-formed UTF-16/)
      }
      expect((yield* tier.snapshot).size).toBe(0)
    })
  )
})
