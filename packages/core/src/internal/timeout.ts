/**
 * A call bounded by a timeout, as `Effect.timeoutFail` bounds it: past the timeout the call is
 * interrupted, the caller waits for that and then fails with `onTimeout()`; a caller
 * interrupted meanwhile interrupts the call. On Effect's live clock this takes one fiber (the
 * call's) and a timer, where `Effect.timeoutFail` races two fibers: a guarded call of a tier
 * that does not bound its own calls cost 60-80 us of CPU through `Effect.timeoutFail`, about
 * twice what one fiber costs (bench/PROFILE.md, sixth round). On any other clock (TestClock, a
 * clock of the user's) it is `Effect.timeoutFail`, so that the clock drives the timeout. Unlike
 * `Effect.timeoutFail`, what the call changes in its FiberRefs stays in its fiber.
 */
import { Clock, Context, DefaultServices, Duration, Effect, type Exit, Fiber } from "effect"

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

/** Bounds calls by `timeout` on `clock` (the clock of the fiber that built the guard). */
export const bounder = (
  clock: Clock.Clock,
  timeout: Duration.Duration
): (<A, E, R>(effect: Effect.Effect<A, E, R>, onTimeout: () => E) => Effect.Effect<A, E, R>) => {
  const ms = Duration.toMillis(timeout)
  if (!timerStandsIn(clock, ms)) {
    return (effect, onTimeout) => Effect.timeoutFail(effect, { duration: timeout, onTimeout })
  }
  return <A, E, R>(effect: Effect.Effect<A, E, R>, onTimeout: () => E) =>
    Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(Effect.fork(restore(effect)), (call) =>
        restore(
          Effect.async<A, E>((resume) => {
            const settle = (exit: Exit.Exit<A, E>) => {
              clearTimeout(timer)
              resume(exit)
            }
            const timer = setTimeout(() => {
              call.removeObserver(settle)
              resume(Effect.uninterruptible(Effect.zipRight(Fiber.interrupt(call), Effect.fail(onTimeout()))))
            }, ms)
            call.addObserver(settle)
            return Effect.suspend(() => {
              clearTimeout(timer)
              call.removeObserver(settle)
              return Fiber.interrupt(call)
            })
          })
        )
      )
    )
}
