/**
 * A call bounded by a timeout, as `Effect.timeoutFail` bounds it: past the timeout the call is
 * interrupted, the caller waits for that and then fails with `onTimeout()`; a caller
 * interrupted meanwhile interrupts the call. This takes one fiber (the call's) and a timer,
 * where `Effect.timeoutFail` races two fibers: a guarded call of a tier that does not bound its
 * own calls cost 60-80 us of CPU through `Effect.timeoutFail`, about twice what one fiber costs
 * (bench/PROFILE.md, sixth round). On Effect's live clock the timer is a Node timer; on any
 * other clock (TestClock, a clock of the user's) a fiber sleeping on that clock, so that the
 * clock drives it. Unlike `Effect.timeoutFail`, what the call changes in its FiberRefs stays in
 * its fiber, and an uninterruptible caller's interruption does not reach the call.
 */
import { Clock, Context, DefaultServices, Duration, Effect, type Exit, Fiber, FiberId } from "effect"

/** The clock every fiber has unless a layer or a test provides another. */
const liveClock = Context.get(DefaultServices.liveServices, Clock.Clock)

/** The longest delay a Node timer keeps (a longer one fires at once). */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * Whether a Node timer of `ms` may stand in for `clock`: it is Effect's live clock (nothing but
 * real time can move it) and the delay is one a timer keeps.
 */
export const timerStandsIn = (clock: Clock.Clock, ms: number): boolean =>
  clock === liveClock && ms <= MAX_TIMER_MS

/**
 * Starts a timer of `ms` on `clock` that calls `onTimer` (a Node timer on the live clock, else a
 * fiber of its own sleeping on `clock`, so that a TestClock drives it); answers its cancel. No
 * fiber of the caller's is involved: an uninterruptible caller's interruption, which Effect
 * passes on to the caller's child fibers at once, cannot end it early.
 */
export const startTimer = (clock: Clock.Clock, ms: number, onTimer: () => void): (() => void) => {
  if (timerStandsIn(clock, ms)) {
    const timer = setTimeout(onTimer, ms)
    return () => clearTimeout(timer)
  }
  const fiber = Effect.runFork(Effect.zipRight(clock.sleep(Duration.millis(ms)), Effect.sync(onTimer)))
  return () => fiber.unsafeInterruptAsFork(FiberId.none)
}

/**
 * Bounds calls by `timeout` on `clock` (the clock of the fiber that built the guard). The call
 * runs in a daemon fiber, interruptible whatever its caller's region: a write runs
 * uninterruptible to its end (tieredCache.ts), and its tier calls must still end at their
 * timeout, not at the caller's interruption (which Effect would pass on to a child fiber).
 */
export const bounder = (
  clock: Clock.Clock,
  timeout: Duration.Duration
): (<A, E, R>(effect: Effect.Effect<A, E, R>, onTimeout: () => E) => Effect.Effect<A, E, R>) => {
  const ms = Duration.toMillis(timeout)
  return <A, E, R>(effect: Effect.Effect<A, E, R>, onTimeout: () => E) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.forkDaemon(Effect.interruptible(effect)), (call) =>
        restore(
          Effect.async<A, E>((resume) => {
            const settle = (exit: Exit.Exit<A, E>) => {
              cancel()
              resume(exit)
            }
            const cancel = startTimer(clock, ms, () => {
              call.removeObserver(settle)
              resume(Effect.uninterruptible(Effect.zipRight(Fiber.interrupt(call), Effect.fail(onTimeout()))))
            })
            call.addObserver(settle)
            return Effect.suspend(() => {
              cancel()
              call.removeObserver(settle)
              return Fiber.interrupt(call)
            })
          })
        )
      )
    )
}
