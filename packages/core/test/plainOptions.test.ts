import { KeyValueStore } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { type CacheError, CircuitBreaker, MemoryTier } from "@tiercache/core"
import * as KeyValueStoreTier from "@tiercache/core/KeyValueStoreTier"
import { Effect, Exit, type Scope } from "effect"

// Options from plain JavaScript follow the cache's own rule (TieredCache.Options): only an absent
// (`undefined`) option takes its default; `null` or a value of the wrong type is a CacheConfigError
// naming the option. Before, a tier's `name: null` was read as the default name, a `name` of 5
// was taken as the name (a number in metric tags), and KeyValueStoreTier read `sweepInterval:
// null` as 1 minute.

// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const js = (options: unknown): any => options

/** How building with `options` ended: the failing option's name, "built", or the defect. */
const outcome = <E>(built: Effect.Effect<unknown, E, Scope.Scope>) =>
  Effect.map(Effect.exit(Effect.scoped(built)), (exit) =>
    Exit.match(exit, {
      onSuccess: () => "built",
      onFailure: (cause) =>
        cause._tag === "Fail" && (cause.error as { _tag?: string })._tag === "CacheConfigError"
          ? (cause.error as CacheError.CacheConfigError).option
          : `not a CacheConfigError: ${String(cause).split("\n")[0]}`
    })
  )

const store = KeyValueStore.layerMemory

describe("options from plain JavaScript", () => {
  it.effect("MemoryTier: null, wrong types and bad numbers are a CacheConfigError naming the option", () =>
    Effect.gen(function* () {
      const cases: ReadonlyArray<readonly [unknown, string]> = [
        [{ maxEntries: null }, "maxEntries"],
        [{ maxEntries: "10" }, "maxEntries"],
        [{ maxEntries: [10] }, "maxEntries"],
        [{ maxEntries: Number.NaN }, "maxEntries"],
        [{ maxEntries: -1 }, "maxEntries"],
        [{ maxEntries: Number.POSITIVE_INFINITY }, "maxEntries"],
        [{ maxEntries: 10, maxBytes: null }, "maxBytes"],
        [{ maxEntries: 10, maxBytes: "1000" }, "maxBytes"],
        [{ maxEntries: 10, maxBytes: Number.NaN }, "maxBytes"],
        [{ maxEntries: 10, maxBytes: -1 }, "maxBytes"],
        [{ maxEntries: 10, maxBytes: Number.POSITIVE_INFINITY }, "maxBytes"],
        [{ maxEntries: 10, name: null }, "name"],
        [{ maxEntries: 10, name: 5 }, "name"],
        [{ maxEntries: 10, name: ["l1"] }, "name"],
        [{ maxEntries: 10, name: "" }, "name"]
      ]
      for (const [options, option] of cases) {
        expect([options, yield* outcome(MemoryTier.make(js(options)))]).toEqual([options, option])
      }
      // Absent options take their defaults.
      const tier = yield* MemoryTier.make(js({ maxEntries: 10, name: undefined, maxBytes: undefined }))
      expect(tier.name).toBe("memory")
    })
  )

  it.effect(
    "KeyValueStoreTier: null, wrong types and bad durations are a CacheConfigError naming the option",
    () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          [{ name: null }, "name"],
          [{ name: 5 }, "name"],
          [{ name: ["kv"] }, "name"],
          [{ name: "" }, "name"],
          [{ sweepInterval: null }, "sweepInterval"],
          [{ sweepInterval: "60" }, "sweepInterval"],
          [{ sweepInterval: [60] }, "sweepInterval"],
          [{ sweepInterval: Number.NaN }, "sweepInterval"],
          [{ sweepInterval: -1 }, "sweepInterval"],
          [{ sweepInterval: Number.POSITIVE_INFINITY }, "sweepInterval"],
          [{ prefix: null }, "prefix"],
          [{ prefix: 5 }, "prefix"]
        ]
        for (const [options, option] of cases) {
          const built = KeyValueStoreTier.make(js(options)).pipe(Effect.provide(store))
          expect([options, yield* outcome(built)]).toEqual([options, option])
        }
        const tier = yield* Effect.scoped(
          KeyValueStoreTier.make(js({ name: undefined, sweepInterval: undefined })).pipe(
            Effect.provide(store)
          )
        )
        expect(tier.name).toBe("kv")
      })
  )

  it.effect(
    "CircuitBreaker: null, wrong types and bad numbers are a CacheConfigError naming the option",
    () =>
      Effect.gen(function* () {
        const cases: ReadonlyArray<readonly [unknown, string]> = [
          [{ timeout: null }, "timeout"],
          [{ timeout: [1] }, "timeout"],
          [{ timeout: Number.POSITIVE_INFINITY }, "timeout"],
          [{ openFor: null }, "openFor"],
          [{ openFor: "10" }, "openFor"],
          [{ openFor: Number.POSITIVE_INFINITY }, "openFor"],
          [{ failureThreshold: null }, "failureThreshold"],
          [{ failureThreshold: "5" }, "failureThreshold"],
          [{ failureThreshold: Number.NaN }, "failureThreshold"],
          [{ failureThreshold: -1 }, "failureThreshold"],
          [{ failureThreshold: Number.POSITIVE_INFINITY }, "failureThreshold"]
        ]
        for (const [options, option] of cases) {
          expect([options, yield* outcome(CircuitBreaker.make("b", js(options)))]).toEqual([options, option])
        }
        const breaker = yield* CircuitBreaker.make("b", js({ timeout: undefined, openFor: undefined }))
        expect(breaker.state()).toBe("closed")
      })
  )
})
