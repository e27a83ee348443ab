/**
 * The tests of `TierSuite.run` for a tier's `setNow` (a write started at once, which the cache's
 * one-step write uses; see `Tier.Service`), and its `removeThen` and `removeNow` (a removal
 * followed by the bus message, and started at once): each skipped for a tier without it.
 *
 * @internal
 */
import { expect, type Vitest } from "@effect/vitest"
import { Entry } from "@tiercache/core"
import { Clock, Effect, Option } from "effect"
import { type Context, freshKey } from "./suiteContext.js"

// biome-ignore lint/suspicious/noExplicitAny: the point is to ignore the types
const js = (u: unknown): any => u

/** An answer of a call started at once: whether it failed, and whether the call had returned. */
interface Answer {
  readonly failed: boolean
  readonly afterReturn: boolean
}

/**
 * Calls `start` with a `done` that records each answer; when it started, waits (at most 500
 * turns) for the first answer. Answers whether it started and the answers recorded (a list that
 * later answers would still grow).
 */
const startedNow = (start: (done: (error: unknown) => void) => boolean, live: boolean) =>
  Effect.gen(function* () {
    const answers: Array<Answer> = []
    let returned = false
    const started = start((error) => answers.push({ failed: error !== undefined, afterReturn: returned }))
    returned = true
    for (let i = 0; started && i < 500 && answers.length === 0; i++) {
      yield* live ? Effect.sleep("2 millis") : Effect.yieldNow()
    }
    return { started, answers }
  })

/** Registers the test with `it` (from `layer(...)` of @effect/vitest). */
export const registerWriteNowTests = <R>(
  it: Vitest.MethodsNonLive<R, boolean>,
  { instances, live }: Context<R>
): void => {
  it.scoped(
    "setNow, when the tier has it, writes as set does and answers once, after returning; a bad argument starts nothing",
    () =>
      Effect.gen(function* () {
        const { l2 } = yield* instances(1)
        const setNow = l2.setNow
        if (setNow === undefined) return
        const now = yield* Clock.currentTimeMillis
        const key = freshKey("now")
        const entry = Entry.make({ value: { a: [1, 2] }, now, ttlMs: 60_000, tags: ["t"] })
        const { started, answers } = yield* startedNow((done) => setNow(key, entry, done), live)
        if (started) {
          expect(answers).toEqual([{ failed: false, afterReturn: true }])
          const stored = yield* l2.get(key)
          expect(Option.map(stored, (e) => [e.value, e.tags, e.createdAt])).toEqual(
            Option.some([{ a: [1, 2] }, ["t"], entry.createdAt])
          )
        }
        // Bad arguments, as from plain JS: not started, never answered, nothing written.
        let badAnswers = 0
        const bad = () => void badAnswers++
        const fresh = `${key}:fresh`
        expect([
          setNow(js(42), entry, bad),
          setNow(js(undefined), entry, bad),
          setNow(fresh, js(null), bad),
          setNow(fresh, js({ ...entry, staleUntil: Number.NaN }), bad)
        ]).toEqual([false, false, false, false])
        for (let i = 0; i < 5; i++) yield* live ? Effect.sleep("2 millis") : Effect.yieldNow()
        expect(badAnswers).toBe(0)
        expect(Option.isNone(yield* l2.get(fresh))).toBe(true)
        // Later answers never come.
        expect(answers.length).toBe(started ? 1 : 0)
      })
  )
  it.scoped(
    "removeThen and removeNow, when the tier has them, remove as remove does; then runs once, done is called once after returning",
    () =>
      Effect.gen(function* () {
        const { l2 } = yield* instances(1)
        const now = yield* Clock.currentTimeMillis
        const entry = Entry.make({ value: "gone soon", now, ttlMs: 60_000 })
        const removeThen = l2.removeThen
        if (removeThen !== undefined) {
          const keys = [freshKey("removeThen"), freshKey("removeThen")]
          for (const key of keys) yield* l2.set(key, entry)
          let ran = 0
          const [error, value] = yield* removeThen(
            keys,
            Effect.sync(() => ++ran)
          )
          expect([error, value, ran]).toEqual([undefined, 1, 1])
          for (const key of keys) expect(Option.isNone(yield* l2.get(key))).toBe(true)
        }
        const removeNow = l2.removeNow
        if (removeNow !== undefined) {
          const key = freshKey("removeNow")
          yield* l2.set(key, entry)
          const { started, answers } = yield* startedNow((done) => removeNow([key], done), live)
          if (started) {
            expect(answers).toEqual([{ failed: false, afterReturn: true }])
            expect(Option.isNone(yield* l2.get(key))).toBe(true)
          }
          // Later answers never come.
          for (let i = 0; i < 5; i++) yield* live ? Effect.sleep("2 millis") : Effect.yieldNow()
          expect(answers.length).toBe(started ? 1 : 0)
        }
      })
  )
}
