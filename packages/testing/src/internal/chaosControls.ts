/**
 * The controls of a chaos tier, per operation: failing (until healed, or for a number of
 * calls), failing at random, a delay, dropping; the decision whether a call fails by injection;
 * and the counts of calls and injected failures.
 *
 * @internal
 */
import { CacheError } from "@tiercache/core"
import { Duration, Effect, Random } from "effect"
import type { ChaosTier, Operation, Operations } from "../ChaosTier.js"

/** The start of every injected failure's reason. */
export const injectedReason = "failure injected by ChaosTier"

interface Failing {
  readonly reason: string
  /** Injected failures left; `undefined` = until healed. */
  remaining: number | undefined
}

interface Flaky {
  readonly probability: number
  readonly next: Effect.Effect<number>
}

/** The controls of one operation. */
export interface State {
  failing: Failing | undefined
  flaky: Flaky | undefined
  delay: Duration.Duration
  dropping: boolean
}

const counters = (): Record<Operation, number> => ({
  get: 0,
  getMany: 0,
  set: 0,
  setMany: 0,
  remove: 0,
  removeMatching: 0,
  clear: 0,
  health: 0
})

/** The controls of the `operations` of one chaos tier, all off. */
export const make = (operations: ReadonlyArray<Operation>) => {
  const select = (ops: Operations): ReadonlyArray<Operation> =>
    ops === "all" ? operations : typeof ops === "string" ? [ops] : ops
  const state = {} as Record<Operation, State>
  const reset = () => {
    for (const op of operations) {
      state[op] = { failing: undefined, flaky: undefined, delay: Duration.zero, dropping: false }
    }
  }
  reset()
  const calls = counters()
  const injected = counters()

  /** Decides whether this call fails by injection; answers the reason if so. */
  const decide = (operation: Operation): Effect.Effect<string | undefined> =>
    Effect.suspend(() => {
      const s = state[operation]
      const failing = s.failing
      if (failing !== undefined) {
        if (failing.remaining !== undefined && --failing.remaining <= 0) s.failing = undefined
        injected[operation]++
        return Effect.succeed(failing.reason)
      }
      const flaky = s.flaky
      if (flaky === undefined) return Effect.succeed(undefined)
      return Effect.map(flaky.next, (n) => {
        if (n >= flaky.probability) return undefined
        injected[operation]++
        return `${injectedReason} (failRate ${flaky.probability})`
      })
    })

  const controls: Pick<
    ChaosTier.Service,
    "fail" | "delay" | "drop" | "failRate" | "heal" | "calls" | "injected"
  > = {
    fail: (ops, failOptions = {}) =>
      Effect.suspend(() => {
        const times = failOptions.times
        if (times !== undefined && !(Number.isInteger(times) && times > 0)) {
          return Effect.fail(
            new CacheError.CacheConfigError({
              option: "times",
              reason: `must be a positive integer, got ${times}`
            })
          )
        }
        const reason =
          failOptions.reason === undefined ? injectedReason : `${injectedReason}: ${failOptions.reason}`
        for (const op of select(ops)) state[op].failing = { reason, remaining: times }
        return Effect.void
      }),
    delay: (ops, duration) =>
      Effect.sync(() => {
        const decoded = Duration.decode(duration)
        for (const op of select(ops)) state[op].delay = decoded
      }),
    drop: (ops) =>
      Effect.sync(() => {
        for (const op of select(ops)) state[op].dropping = true
      }),
    failRate: (ops, probability, rateOptions = {}) =>
      Effect.suspend(() => {
        if (!(probability >= 0 && probability <= 1)) {
          return Effect.fail(
            new CacheError.CacheConfigError({
              option: "probability",
              reason: `must be in [0, 1], got ${probability}`
            })
          )
        }
        const flaky: Flaky | undefined =
          probability === 0
            ? undefined
            : {
                probability,
                next: rateOptions.seed === undefined ? Random.next : Random.make(rateOptions.seed).next
              }
        for (const op of select(ops)) state[op].flaky = flaky
        return Effect.void
      }),
    heal: Effect.sync(reset),
    calls: Effect.sync(() => ({ ...calls })),
    injected: Effect.sync(() => ({ ...injected }))
  }
  return { state, calls, decide, controls }
}
