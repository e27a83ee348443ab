/**
 * Interrupts an effect at each step of its run, as a caller's timeout or a race does under load,
 * and checks what it leaves behind. Effect lets a fiber yield every so many steps (2,048 by
 * default) and an interruption lands while it waits to resume: code that sets a mark in one
 * step and enters the region that clears it in the next (`Effect.suspend` then
 * `Effect.ensuring`) leaves the mark set when the interruption falls in between. Tests written
 * with a plain `Fiber.interrupt` land it in one or two places; `atEachStep` lands it between
 * every two steps of the first few hundred.
 *
 * ```ts
 * const { failed } = yield* Interruptions.atEachStep(
 *   (run, padding) => Effect.zipRight(padding, cache.set(`k${run}`, 1)),
 *   (run) => Interruptions.cachesAgain(cache, `k${run}`)
 * )
 * expect(failed).toEqual([])
 * ```
 *
 * @since 0.1.0
 */
import type { TieredCache } from "@tiercache/core"
import { Effect, Fiber, FiberRef, Option } from "effect"

/**
 * How `atEachStep` varies the point of interruption.
 *
 * @category models
 * @since 0.1.0
 */
export interface Options<E = never, R = never> {
  /**
   * Runs with 0 to `pads - 1` no-op steps (two Effect steps each) before what is tested, which
   * moves the yields across it (default 24; 13 already reach every offset of the default
   * `yieldEvery`).
   */
  readonly pads?: number | undefined
  /** Interrupts after 0 to `waits - 1` yields of the interrupting fiber (default 16). */
  readonly waits?: number | undefined
  /** The fiber under test yields after this many steps (default 12; at least 10). */
  readonly yieldEvery?: number | undefined
  /** Runs before each run (given its name), in the interrupting fiber: sets up what it needs. */
  readonly prepare?: ((run: string) => Effect.Effect<void, E, R>) | undefined
}

/**
 * What `atEachStep` found.
 *
 * @category models
 * @since 0.1.0
 */
export interface Result {
  /** The runs (`pad:wait`) after which the check answered false. */
  readonly failed: ReadonlyArray<string>
  /** Runs that ended interrupted (or failed). */
  readonly interrupted: number
  /** Runs that completed before the interruption came. */
  readonly completed: number
}

/**
 * `pads` * `waits` runs: each forks `effect(run, padding)` in a fiber that yields after every
 * `yieldEvery` steps, interrupts it once the calling fiber has yielded `wait` times, then runs
 * `check(run)`. `effect` should run `padding` (the run's no-op steps) right before what is
 * tested, and use the run's name (`pad:wait`) for keys of its own. Answers the runs whose check
 * failed, and how many were interrupted or completed: a test should check both, so that it
 * knows the interruptions fell inside what it tests.
 *
 * `pads` and `waits` below 1 and a `yieldEvery` below 10 are refused (a die, as for any misuse
 * in a test): below 10, Effect's own yield takes every step and the fiber never advances.
 *
 * @category testing
 * @since 0.1.0
 */
export const atEachStep = <E = never, R = never, E2 = never, R2 = never>(
  effect: (run: string, padding: Effect.Effect<void>) => Effect.Effect<unknown, unknown, R>,
  check: (run: string) => Effect.Effect<boolean, E, R>,
  options: Options<E2, R2> = {}
): Effect.Effect<Result, E | E2, R | R2> =>
  Effect.gen(function* () {
    const { pads = 24, waits = 16, yieldEvery = 12, prepare } = options
    for (const [name, value, least] of [
      ["pads", pads, 1],
      ["waits", waits, 1],
      ["yieldEvery", yieldEvery, 10]
    ] as const) {
      if (!Number.isInteger(value) || value < least) {
        return yield* Effect.dieMessage(
          `Interruptions.atEachStep: ${name} must be an integer >= ${least}, got ${String(value)}`
        )
      }
    }
    if (prepare !== undefined && typeof prepare !== "function") {
      return yield* Effect.dieMessage(
        `Interruptions.atEachStep: prepare must be a function, got ${String(prepare)}`
      )
    }
    const failed: Array<string> = []
    let interrupted = 0
    let completed = 0
    for (let pad = 0; pad < pads; pad++) {
      for (let wait = 0; wait < waits; wait++) {
        const run = `${pad}:${wait}`
        if (prepare !== undefined) yield* prepare(run)
        const fiber = yield* Effect.fork(
          Effect.locally(effect(run, noOps(pad)), FiberRef.currentMaxOpsBeforeYield, yieldEvery)
        )
        for (let i = 0; i < wait; i++) yield* Effect.yieldNow()
        const exit = yield* Fiber.interrupt(fiber)
        if (exit._tag === "Success") completed++
        else interrupted++
        if (!(yield* check(run))) failed.push(run)
      }
    }
    return { failed, interrupted, completed }
  })

/**
 * A check for `atEachStep`: whether `cache` caches `key` again, i.e. whether nothing an
 * interrupted call left behind keeps it from it. It invalidates `key` and computes it twice with
 * getOrCompute: true when the computation ran once (it was stored) and `get` finds the value.
 *
 * @category testing
 * @since 0.1.0
 */
export const cachesAgain = (
  cache: TieredCache.TieredCache.Service,
  key: string
): Effect.Effect<boolean, unknown> =>
  Effect.gen(function* () {
    yield* cache.invalidate(key)
    let computed = 0
    const compute = Effect.sync(() => ++computed)
    yield* cache.getOrCompute(key, compute)
    yield* cache.getOrCompute(key, compute)
    return computed === 1 && Option.isSome(yield* cache.get(key))
  })

/**
 * The runs (`pad:wait`, as `atEachStep` names them) after which `effect`, interrupted at that
 * point, never ended within `withinMs` of real time (default 2,000). Each run is forked as a
 * daemon (a hung fiber must not hold up the test's end), yields every `yieldEvery` steps
 * (default 12) after `pad` no-op steps, and is interrupted once the calling fiber has yielded
 * `wait` times; the wait for its end does not need the clock to move (it works under the
 * TestClock). Effect 3.22's concurrent forEach (and `Effect.all` with concurrency) never ends
 * when interrupted while it yields inside its own uninterruptible steps: code that uses it where
 * a caller can interrupt it shows up here.
 *
 * @category testing
 * @since 0.1.0
 */
export const hungRuns = <R>(
  effect: () => Effect.Effect<unknown, unknown, R>,
  options: { readonly pads?: number; readonly waits?: number; readonly withinMs?: number } = {}
): Effect.Effect<ReadonlyArray<string>, never, R> =>
  Effect.gen(function* () {
    const { pads = 8, waits = 24, withinMs = 2_000 } = options
    const hung: Array<string> = []
    for (let pad = 0; pad < pads; pad++) {
      for (let wait = 0; wait < waits; wait++) {
        const fiber = yield* Effect.forkDaemon(
          Effect.locally(Effect.zipRight(noOps(pad), effect()), FiberRef.currentMaxOpsBeforeYield, 12)
        )
        for (let i = 0; i < wait; i++) yield* Effect.yieldNow()
        yield* Fiber.interruptFork(fiber)
        // Steps first (an in-memory effect ends within them), then real time (one with I/O).
        for (let i = 0; i < 500 && Option.isNone(yield* Fiber.poll(fiber)); i++) yield* Effect.yieldNow()
        const until = Date.now() + withinMs
        while (Option.isNone(yield* Fiber.poll(fiber)) && Date.now() < until) yield* realPause
        if (Option.isNone(yield* Fiber.poll(fiber))) hung.push(`${pad}:${wait}`)
      }
    }
    return hung
  })

/** A few milliseconds of real time, whatever the Effect clock. */
const realPause: Effect.Effect<void> = Effect.promise(
  () => new Promise<void>((resolve) => setTimeout(resolve, 5))
)

/** `n` no-op steps. */
const noOps = (n: number): Effect.Effect<void> => {
  let effect: Effect.Effect<void> = Effect.void
  for (let i = 0; i < n; i++) effect = Effect.zipRight(effect, Effect.void)
  return effect
}
