/**
 * A schema whose decoder or encoder throws while Schema builds it (a `Schema.declare` whose
 * factory throws; from plain JavaScript, an object that carries Schema's TypeId but no AST) is
 * taken as a schema whose transformation throws (README, Typed reads): stored data is a miss
 * (counted in `stats.decodeErrors`), a value to store a `CacheInputError` (UnencodableValue),
 * never a defect. The decoders were built outside the guard that turns a throw into a parse
 * error (codec.ts `total`), so every typed read of a stored value, typed write and typed
 * computation died.
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheError, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Cause, Effect, Exit, Option, Schema } from "effect"

/** Its factory throws when Schema builds its decoder or encoder (on first use). */
const declared = Schema.declare([Schema.String], {
  decode: () => {
    throw new Error("factory broke")
  },
  encode: () => {
    throw new Error("factory broke")
  }
})
/** From plain JavaScript: Schema's mark, and an `ast` that is none. */
const marked = {
  [Schema.TypeId]: { _A: (a: unknown) => a, _I: (i: unknown) => i, _R: (r: never) => r },
  ast: {}
}

const cacheWithValue = Effect.gen(function* () {
  const cache = yield* TieredCache.make().pipe(
    Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, yield* TestTier.make())
  )
  yield* cache.set("k", "v")
  return cache
})

/** The typed failure of `exit` (a defect or a success fails the test, naming it). */
const failureOf = <A, E>(what: string, exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`${what}: succeeded`)
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`${what}: ${Cause.pretty(exit.cause)}`)
  return failure.value
}

describe("a schema that throws when Schema builds its decoder or encoder", () => {
  for (const [name, schema] of [
    ["a Schema.declare whose factory throws", declared],
    ["an object with Schema's TypeId and no AST (plain JS)", marked]
  ] as const) {
    it.scoped(`${name}: reads miss (counted), writes and computations fail typed`, () =>
      Effect.gen(function* () {
        const cache = yield* cacheWithValue
        const typed = schema as unknown as Schema.Schema<string>
        expect(yield* cache.getTyped("k", typed)).toEqual(Option.none())
        expect(yield* cache.getMany(["k"], typed)).toEqual([Option.none()])
        expect(yield* cache.getOrComputeTyped("k", Schema.String, Effect.die("stored"))).toBe("v")
        for (const [what, exit] of [
          ["set", yield* Effect.exit(cache.set("w", "v", { schema: typed }))] as const,
          ["update", yield* Effect.exit(cache.update("w", "v", { schema: typed }))] as const,
          [
            "getOrComputeTyped",
            yield* Effect.exit(cache.getOrComputeTyped("c", typed, Effect.succeed("v")))
          ] as const
        ] as ReadonlyArray<readonly [string, Exit.Exit<unknown, unknown>]>) {
          const error = failureOf(what, exit)
          expect([what, error instanceof CacheError.CacheInputError && error.problem]).toEqual([
            what,
            "UnencodableValue"
          ])
          expect((error as CacheError.CacheInputError).reason).toContain(
            "value does not encode with the schema: threw: "
          )
        }
        // Nothing was stored; the key read untyped is still the untyped write's.
        expect(yield* cache.get("w")).toEqual(Option.none())
        expect(yield* cache.get("c")).toEqual(Option.none())
        const s = yield* cache.stats
        // getTyped: L1's copy and L2's; getMany: L1's and L2's.
        expect([s.decodeErrors, s.computations]).toEqual([4, 1])
      })
    )
  }
})
