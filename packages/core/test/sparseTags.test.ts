/**
 * A write's `tags` as plain JavaScript may hand them: a sparse array (`new Array(n)`, or
 * `a.length = n`) is refused at its first hole, as getMany's and invalidateMany's key lists are
 * (getManyHunt.test.ts), not copied element by element through every hole first.
 */
import { describe, expect, it } from "@effect/vitest"
import { MemoryTier, Tier, TieredCache } from "@tiercache/core"
import { TestTier } from "@tiercache/testing"
import { Cause, Effect, Exit } from "effect"

const cacheOf = Effect.gen(function* () {
  const l2 = yield* TestTier.make()
  const cache = yield* TieredCache.make({ breaker: false }).pipe(
    Effect.provideService(Tier.L1, yield* MemoryTier.make({ maxEntries: 100 })),
    Effect.provideService(Tier.L2, l2)
  )
  return { cache, l2 }
})

/**
 * A real array (Array.isArray says so) behind a Proxy that counts the elements read, `length`
 * long, holding `first` at index 0 and nothing after it.
 */
const countingSparse = (length: number, first: unknown) => {
  const target: Array<unknown> = []
  target.length = length
  target[0] = first
  let read = 0
  const tags = new Proxy(target, {
    get: (t, p, r) => {
      if (typeof p === "string" && /^\d+$/.test(p)) read++
      return Reflect.get(t, p, r)
    }
  })
  return { tags: tags as unknown as Array<string>, read: () => read }
}

type Write = (cache: TieredCache.TieredCache.Service, tags: Array<string>) => Effect.Effect<unknown, unknown>

const writes: ReadonlyArray<readonly [string, Write]> = [
  ["set", (cache, tags) => cache.set("k", 1, { tags })],
  ["update", (cache, tags) => cache.update("k", 1, { tags })],
  ["getOrCompute", (cache, tags) => cache.getOrCompute("k", Effect.succeed(1), { tags })]
]

const refused = (exit: Exit.Exit<unknown, unknown>) => Exit.isFailure(exit) && Cause.squash(exit.cause)

describe("a write's tags from plain JavaScript: a sparse array", () => {
  it.scoped("is refused at its first hole, the rest of the array never read", () =>
    Effect.gen(function* () {
      const { cache, l2 } = yield* cacheOf
      for (const [name, write] of writes) {
        const list = countingSparse(1_000_000, "a")
        const exit = yield* Effect.exit(write(cache, list.tags))
        expect([name, refused(exit)]).toMatchObject([
          name,
          { _tag: "CacheInputError", problem: "InvalidOption" }
        ])
        // "a", then the hole at index 1.
        expect([name, list.read()]).toEqual([name, 2])
      }
      expect((yield* l2.calls).set).toBe(0)
    })
  )

  it.scoped(
    "the longest sparse array JavaScript makes: refused at once, not read through 4 billion holes",
    () =>
      Effect.gen(function* () {
        const { cache } = yield* cacheOf
        const tags: Array<string> = []
        tags.length = 2 ** 32 - 1
        for (const [name, write] of writes) {
          const exit = yield* Effect.exit(write(cache, tags))
          expect([name, refused(exit)]).toMatchObject([name, { problem: "InvalidOption" }])
        }
      }),
    60_000
  )
})
