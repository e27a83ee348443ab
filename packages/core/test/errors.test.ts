/**
 * README's Errors section: every failure is a typed `Schema.TaggedError`, each imported from
 * `CacheError` under the name README gives it; `getOrCompute` fails with the computation's own
 * error, unchanged.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheError, MemoryTier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Effect, Exit, Layer, Schema } from "effect"

/** One instance of each error README's table lists for @tiercache/core, with its fields. */
const samples = {
  CacheInputError: new CacheError.CacheInputError({ problem: "EmptyKey", reason: "the key is empty" }),
  CacheWriteError: new CacheError.CacheWriteError({
    key: "k",
    operation: "set",
    failures: [new CacheError.TierError({ tier: "redis", operation: "set", reason: "down" })]
  }),
  TierError: new CacheError.TierError({ tier: "redis", operation: "get", reason: "down" }),
  CacheTimeoutError: new CacheError.CacheTimeoutError({ key: "k", timeoutMs: 50 }),
  CacheConfigError: new CacheError.CacheConfigError({ option: "maxEntries", reason: "must be positive" }),
  BusError: new CacheError.BusError({ operation: "publish", reason: "down" }),
  StreamError: new CacheError.StreamError({ operation: "publish", stream: "s", reason: "down" })
}

describe("errors (README Errors)", () => {
  it("each error of the table is a Schema.TaggedError exported from CacheError, tagged with its name", () => {
    for (const [name, error] of Object.entries(samples)) {
      const cls = (CacheError as unknown as Record<string, Schema.Schema<unknown, unknown, never>>)[name]!
      expect([name, Schema.isSchema(cls)]).toEqual([name, true])
      expect([name, error instanceof Error, (error as { _tag: string })._tag]).toEqual([name, true, name])
      // A Schema of the error: it is recognised, and encodes and decodes back to an equal error.
      expect([name, Schema.is(cls)(error)]).toEqual([name, true])
      const decoded = Schema.decodeUnknownSync(cls)(Schema.encodeSync(cls)(error))
      expect(decoded).toBeInstanceOf(cls as unknown as new (...args: never) => unknown)
      expect(decoded).toEqual(error)
    }
  })

  it.scoped("getOrCompute fails with the computation's own error, unchanged (the same object)", () =>
    Effect.gen(function* () {
      const cache = yield* TieredCache.make().pipe(
        Effect.provide(Layer.merge(MemoryTier.layer({ maxEntries: 10 }), TestTier.layer()))
      )
      class SourceDown extends Error {
        readonly _tag = "SourceDown"
      }
      const own = new SourceDown("source down")
      // A plain object and a string from plain JavaScript, too.
      const plain = { _tag: "Plain", detail: [1, 2] }
      for (const failure of [own, plain, "down"] as const) {
        const exit = yield* Effect.exit(cache.getOrCompute("k", Effect.fail(failure)))
        expect(exit).toEqual(Exit.fail(failure))
        if (Exit.isFailure(exit)) {
          const error = exit.cause._tag === "Fail" ? exit.cause.error : undefined
          expect(error).toBe(failure)
        }
      }
    })
  )
})
