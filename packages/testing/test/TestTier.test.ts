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
})
