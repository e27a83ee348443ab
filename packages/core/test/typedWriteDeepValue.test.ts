/**
 * A typed write (set, update, or a computation of getOrComputeTyped) of a value that does not
 * encode with its schema is a CacheInputError (README, Typed reads), whatever the value: one
 * whose offending field is nested thousands deep (hostile JSON, from plain JavaScript) too. The
 * error's reason was Schema's message, whose formatter prints the offending value whole and
 * recursively: nested about 3,000 deep, it overflowed the stack, and the call died with a
 * RangeError instead of failing with the typed error (an untyped write of such a value is
 * refused with a CacheInputError: nested deeper than 1,000 levels).
 */
import { describe, expect, it } from "@effect/vitest"
import { CacheError, MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Cause, Effect, Exit, Option, Schema } from "effect"

const Named = Schema.Struct({ name: Schema.String })

/** `{ name: [[[...1...]]] }`, the array nested `depth` deep: `name` is no string. */
const deepName = (depth: number) => {
  let nested: unknown = 1
  for (let i = 0; i < depth; i++) nested = [nested]
  return { name: nested }
}

/** The typed failure of `exit` (a defect or a success fails the test, naming it). */
const failureOf = <A, E>(what: string, exit: Exit.Exit<A, E>): E => {
  if (Exit.isSuccess(exit)) throw new Error(`${what}: succeeded`)
  const failure = Cause.failureOption(exit.cause)
  if (Option.isNone(failure)) throw new Error(`${what}: ${Cause.pretty(exit.cause).slice(0, 300)}`)
  return failure.value
}

describe("a typed write of a value whose offending field is nested thousands deep", () => {
  it.scoped("is a CacheInputError (UnencodableValue), not a defect; nothing is stored", () =>
    Effect.gen(function* () {
      const cache = yield* TieredCache.make().pipe(
        Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
        Effect.provideService(Tier.L2, yield* TestTier.make())
      )
      for (const depth of [10, 10_000, 100_000]) {
        const value = deepName(depth) as unknown as typeof Named.Type
        const calls: ReadonlyArray<readonly [string, Exit.Exit<unknown, unknown>]> = [
          ["set", yield* Effect.exit(cache.set("k", value, { schema: Named }))],
          ["update", yield* Effect.exit(cache.update("k", value, { schema: Named }))],
          [
            "getOrComputeTyped",
            yield* Effect.exit(cache.getOrComputeTyped("k", Named, Effect.succeed(value)))
          ]
        ]
        for (const [what, exit] of calls) {
          const error = failureOf(`${what} at depth ${depth}`, exit)
          expect([what, depth, error instanceof CacheError.CacheInputError && error.problem]).toEqual([
            what,
            depth,
            "UnencodableValue"
          ])
          expect((error as CacheError.CacheInputError).reason).toMatch(
            /^value does not encode with the schema: /
          )
        }
      }
      expect(yield* cache.get("k")).toEqual(Option.none())
    })
  )
})
