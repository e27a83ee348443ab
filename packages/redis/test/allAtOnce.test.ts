import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit } from "effect"
import { forEachAtOnce } from "../src/internal/allAtOnce.js"

describe("forEachAtOnce", () => {
  it.live("answers in the items' order, at most `concurrency` calls at a time", () =>
    Effect.gen(function* () {
      let running = 0
      let most = 0
      const answers = yield* forEachAtOnce(
        [30, 10, 20, 5, 15],
        (ms) =>
          Effect.gen(function* () {
            running++
            most = Math.max(most, running)
            yield* Effect.sleep(`${ms} millis`)
            running--
            return ms * 10
          }),
        2
      )
      expect([answers, most]).toEqual([[300, 100, 200, 50, 150], 2])
      // Unbounded: every call at once.
      most = 0
      yield* forEachAtOnce([10, 10, 10], (ms) =>
        Effect.gen(function* () {
          running++
          most = Math.max(most, running)
          yield* Effect.sleep(`${ms} millis`)
          running--
        })
      )
      expect(most).toBe(3)
    })
  )

  it.live("after a failure no call starts; those under way end; the failure is the answer", () =>
    Effect.gen(function* () {
      const ended: Array<number> = []
      const started: Array<number> = []
      const exit = yield* Effect.exit(
        forEachAtOnce(
          [1, 2, 3, 4, 5],
          (n) =>
            Effect.gen(function* () {
              started.push(n)
              yield* Effect.sleep(n === 1 ? "10 millis" : "30 millis")
              if (n === 1) return yield* Effect.fail(`failed ${n}`)
              ended.push(n)
              return n
            }),
          2
        )
      )
      expect(exit).toEqual(Exit.fail("failed 1"))
      expect([started, ended]).toEqual([[1, 2], [2]])
    })
  )
})
