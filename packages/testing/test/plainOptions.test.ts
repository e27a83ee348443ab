import { describe, expect, it } from "@effect/vitest"
import { Cause, Effect, Exit, Option, type Scope } from "effect"
import { ChaosTier, Interruptions, MultiInstance, RedisServer, TestTier } from "../src/index.js"

// The test layers read options from plain JavaScript by the cache's rule (TieredCache.Options):
// only an absent (`undefined`) option takes its default; `null` or a value of the wrong type is
// an error naming the option. Where the layer has a typed error (RedisServer, MultiInstance.make)
// it is that error; TestTier, ChaosTier and MultiInstance.settle promise no failure, so a bad
// option is a defect (a mistake in the test) carrying a CacheConfigError that names it. Before,
// `name: null` was the default name, a name of 5 was taken as it came, RedisServer took `null`
// as the default (command, startTimeout, users, args) or passed it to redis-server (password),
// and `settle` with `rounds: "5"` compared against the string.

// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const js = (options: unknown): any => options

/** The option the error (or the defect) names, "built", or what else it was. */
const outcome = <E>(built: Effect.Effect<unknown, E, Scope.Scope>) =>
  Effect.map(Effect.exit(Effect.scoped(built)), (exit) => {
    if (Exit.isSuccess(exit)) return "built"
    const failure = Option.orElse(Cause.failureOption(exit.cause), () => Cause.dieOption(exit.cause))
    const error = Option.getOrUndefined(failure) as
      | { _tag?: string; option?: string; reason?: string }
      | undefined
    if (error?._tag === "CacheConfigError") return error.option
    if (error?._tag === "RedisServerError") return `RedisServerError: ${error.reason?.split(" ")[0]}`
    return `neither: ${Cause.pretty(exit.cause).split("\n")[0]}`
  })

const check = <E>(
  cases: ReadonlyArray<readonly [unknown, string]>,
  build: (options: unknown) => Effect.Effect<unknown, E, Scope.Scope>
) =>
  Effect.forEach(cases, ([options, option]) =>
    Effect.map(outcome(build(options)), (got) => expect([options, got]).toEqual([options, option]))
  )

describe("test layers' options from plain JavaScript", () => {
  it.effect("TestTier and ChaosTier: a name that is null or no non-empty string is a defect naming it", () =>
    Effect.gen(function* () {
      const names: ReadonlyArray<readonly [unknown, string]> = [
        [null, "options"],
        [{ name: null }, "name"],
        [{ name: 5 }, "name"],
        [{ name: ["t"] }, "name"],
        [{ name: "" }, "name"],
        [{ name: undefined }, "built"]
      ]
      yield* check(names, (options) => TestTier.make(js(options)))
      const inner = yield* TestTier.make()
      yield* check(names, (options) => ChaosTier.wrap(inner, js(options)))
      expect((yield* TestTier.make(js({ name: undefined }))).name).toBe("test")
      expect((yield* ChaosTier.wrap(inner, js({ name: undefined }))).name).toBe("test")
    })
  )

  it.effect("RedisServer: null and wrong types are a RedisServerError naming the option", () =>
    check(
      [
        [null, "RedisServerError: options"],
        [{ command: null }, "RedisServerError: command"],
        [{ command: 5 }, "RedisServerError: command"],
        [{ startTimeout: null }, "RedisServerError: startTimeout"],
        [{ startTimeout: "10" }, "RedisServerError: startTimeout"],
        [{ startTimeout: Number.NaN }, "RedisServerError: startTimeout"],
        [{ startTimeout: -1 }, "RedisServerError: startTimeout"],
        [{ startTimeout: Number.POSITIVE_INFINITY }, "RedisServerError: startTimeout"],
        [{ password: null }, "RedisServerError: password"],
        [{ password: 1234 }, "RedisServerError: password"],
        [{ users: null }, "RedisServerError: users"],
        [{ users: "cache on >pw +@all" }, "RedisServerError: users"],
        [{ users: [5] }, "RedisServerError: users"],
        [{ args: null }, "RedisServerError: args"],
        [{ args: "--maxmemory 1mb" }, "RedisServerError: args"],
        [{ appendonly: null }, "RedisServerError: appendonly"],
        [{ appendonly: "yes" }, "RedisServerError: appendonly"]
      ],
      (options) => RedisServer.make(js(options))
    )
  )

  it.effect("MultiInstance: null and wrong types are an error naming the option", () =>
    Effect.gen(function* () {
      yield* check(
        [
          [{ cache: null }, "cache"],
          [{ cache: "fast" }, "cache"],
          [{ l1: null }, "l1"],
          [{ l1: [] }, "l1"],
          [{ shared: null }, "shared"],
          [{ shared: {} }, "shared"],
          [{ cache: undefined, l1: undefined, shared: undefined }, "built"]
        ],
        (options) => MultiInstance.make(1, js(options))
      )
      const { caches } = yield* MultiInstance.make(1)
      yield* check(
        [
          [{ rounds: null }, "rounds"],
          [{ rounds: "5" }, "rounds"],
          [{ rounds: Number.NaN }, "rounds"],
          [{ rounds: -1 }, "rounds"],
          [{ rounds: Number.POSITIVE_INFINITY }, "rounds"],
          [{ pause: null }, "pause"],
          [{ pause: () => undefined }, "pause"],
          [{ hub: null }, "hub"],
          [{ rounds: undefined, pause: undefined, hub: undefined }, "built"]
        ],
        (options) => MultiInstance.settle(caches, js(options))
      )
    }).pipe(Effect.scoped)
  )

  // Interruptions dies on misuse, naming it (its `pads`, `waits` and `yieldEvery` already did,
  // `null` included); a `prepare` of `null` was called, a TypeError.
  it.effect("Interruptions: null and wrong types are a defect naming the option", () =>
    Effect.forEach(
      [
        [{ pads: null }, "pads"],
        [{ waits: "3" }, "waits"],
        [{ yieldEvery: Number.NaN }, "yieldEvery"],
        [{ pads: Number.POSITIVE_INFINITY }, "pads"],
        [{ prepare: null }, "prepare"],
        [{ prepare: "setup" }, "prepare"]
      ] as const,
      ([options, option]) =>
        Effect.map(
          Effect.exit(
            Interruptions.atEachStep(
              () => Effect.void,
              () => Effect.succeed(true),
              js(options)
            )
          ),
          (exit) => {
            const defect = Exit.isFailure(exit)
              ? Option.getOrUndefined(Cause.dieOption(exit.cause))
              : undefined
            expect([options, String(defect)]).toEqual([options, expect.stringContaining(`${option} must be`)])
          }
        )
    )
  )
})
