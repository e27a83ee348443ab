/**
 * A one-shot result that fibers wait for: what a flight's callers and an invalidation waiting
 * for a pending store need of a Deferred. Effect 3's `Deferred.unsafeMake` copies the whole
 * Effect prototype into each Deferred (about 5 us and a large object apiece, measured), and a
 * cold miss needs two: a Signal is a plain record, and a waiter's callback is allocated only
 * when someone waits before the result is there.
 */
import { Effect, Exit } from "effect"

/** A result to come: `exit` once done, and the callbacks of the fibers waiting for it. */
export interface Signal<A, E = never> {
  exit: Exit.Exit<A, E> | undefined
  waiters: Array<(exit: Exit.Exit<A, E>) => void> | undefined
}

/** A signal not done yet. */
export const make = <A, E = never>(): Signal<A, E> => ({ exit: undefined, waiters: undefined })

/** Completes the signal with `exit` and wakes its waiters; a signal already done stays as it is. */
export const done = <A, E>(signal: Signal<A, E>, exit: Exit.Exit<A, E>): void => {
  if (signal.exit !== undefined) return
  signal.exit = exit
  const waiters = signal.waiters
  signal.waiters = undefined
  if (waiters !== undefined) for (const wake of waiters) wake(exit)
}

/** Adds `wake` to the signal's waiters. */
const addWaiter = <A, E>(signal: Signal<A, E>, wake: (exit: Exit.Exit<A, E>) => void): void => {
  const waiters = signal.waiters ?? []
  signal.waiters = waiters
  waiters.push(wake)
}

/**
 * Calls `wake` once the signal is done (at once when it is); answers the cancel of that call.
 */
export const onDone = <A, E>(signal: Signal<A, E>, wake: (exit: Exit.Exit<A, E>) => void): (() => void) => {
  if (signal.exit !== undefined) {
    wake(signal.exit)
    return () => {}
  }
  addWaiter(signal, wake)
  return () => removeWaiter(signal, wake)
}

/** Removes `wake` from the signal's waiters (an ended wait). */
const removeWaiter = <A, E>(signal: Signal<A, E>, wake: (exit: Exit.Exit<A, E>) => void): void => {
  const at = signal.waiters?.indexOf(wake) ?? -1
  if (at >= 0) signal.waiters!.splice(at, 1)
}

/**
 * Waits for the signal's result, mapped by `f` when it is a success (in the waiter's wake-up:
 * no Effect step of its own); an interrupted wait leaves the other waiters in place.
 */
export const wait: {
  <A, E>(signal: Signal<A, E>): Effect.Effect<A, E>
  <A, E, B>(signal: Signal<A, E>, f: (a: A) => B): Effect.Effect<B, E>
} = <A, E, B>(signal: Signal<A, E>, f?: (a: A) => B): Effect.Effect<A | B, E> =>
  waitFor<A, E, A | B, never, never>(signal, f, undefined, undefined)

/**
 * Like `wait` with `f`, for at most `ms` milliseconds of real time (a Node timer: only where
 * that stands in for the fiber's clock, see timeout.ts `timerStandsIn`): past them the wait
 * ends and `onTimeout()` answers instead. No fiber is forked, where `Effect.timeoutFail` forks
 * two per waiter.
 */
export const waitWithin = <A, E, B, C, E2>(
  signal: Signal<A, E>,
  f: (a: A) => B,
  ms: number,
  onTimeout: () => Effect.Effect<C, E2>
): Effect.Effect<B | C, E | E2> => waitFor(signal, f, ms, onTimeout)

/** `wait`, and with `ms` given, `waitWithin`. */
const waitFor = <A, E, B, C, E2>(
  signal: Signal<A, E>,
  f: ((a: A) => B) | undefined,
  ms: number | undefined,
  onTimeout: (() => Effect.Effect<C, E2>) | undefined
): Effect.Effect<B | C, E | E2> => {
  const settle = (exit: Exit.Exit<A, E>): Exit.Exit<B, E> =>
    f === undefined || exit._tag === "Failure"
      ? (exit as unknown as Exit.Exit<B, E>)
      : Exit.succeed(f(exit.value))
  return signal.exit !== undefined
    ? settle(signal.exit)
    : Effect.async<B | C, E | E2>((resume) => {
        if (signal.exit !== undefined) return resume(settle(signal.exit))
        let timer: ReturnType<typeof setTimeout> | undefined
        const wake = (exit: Exit.Exit<A, E>) => {
          if (timer !== undefined) clearTimeout(timer)
          resume(settle(exit))
        }
        if (ms !== undefined) {
          timer = setTimeout(() => {
            removeWaiter(signal, wake)
            resume(Effect.suspend(onTimeout!))
          }, ms)
        }
        addWaiter(signal, wake)
        return Effect.sync(() => {
          if (timer !== undefined) clearTimeout(timer)
          removeWaiter(signal, wake)
        })
      })
}
