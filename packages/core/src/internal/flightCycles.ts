/**
 * Flights waiting for themselves: the flights whose computation a fiber runs (a fiber-ref the
 * flight's fiber starts with, inherited by the fibers its computation forks and the flights it
 * starts) and the flights each computation waits for, so that a getOrCompute that would wait for
 * its own flight, directly or around a cycle of computations, is refused instead of hanging.
 */
import { Effect, Fiber, FiberRef, FiberRefs } from "effect"
import { CacheInputError } from "../CacheError.js"
import type { Flight } from "./flight.js"

/**
 * The flights whose computation the current fiber runs (a fiber it forks inherits them, and so
 * does a flight it starts): a getOrCompute there that would join one of them waits for itself.
 */
const computing = FiberRef.unsafeMake<ReadonlyArray<Flight>>([])

/** The flights whose computation the running fiber is part of (called while an effect runs). */
export const computingHere = (): ReadonlyArray<Flight> => {
  const fiber = Fiber.getCurrentFiber()
  return fiber._tag === "Some" ? fiber.value.getFiberRef(computing) : noFlights
}
/** Outside every computation. */
export const noFlights: ReadonlyArray<Flight> = []

/**
 * Whether waiting for `flight` from inside the computations `inside` closes a cycle: `flight`
 * is one of them, or waits (through the flights it waits for) for one of them.
 */
export const closesCycle = (flight: Flight, inside: ReadonlyArray<Flight>): boolean => {
  const seen = new Set<Flight>()
  const next = [flight]
  while (next.length > 0) {
    const f = next.pop()!
    if (inside.includes(f)) return true
    if (seen.has(f)) continue
    seen.add(f)
    if (f.waitsOn !== undefined) next.push(...f.waitsOn)
  }
  return false
}

/**
 * `wait` for `flight` from inside the computation of `waiter`, noted while it lasts (so that a
 * wait for `waiter`'s flight from `flight`'s computation is refused).
 */
export const waitingFrom = <A, E, R>(
  waiter: Flight | undefined,
  flight: Flight,
  wait: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  waiter === undefined
    ? wait
    : Effect.acquireUseRelease(
        Effect.sync(() => {
          const waits = waiter.waitsOn ?? []
          waiter.waitsOn = waits
          waits.push(flight)
        }),
        () => wait,
        () =>
          Effect.sync(() => {
            const at = waiter.waitsOn!.indexOf(flight)
            if (at >= 0) waiter.waitsOn!.splice(at, 1)
          })
      )

/** The refusal of a getOrCompute from inside the computation of the flight it would join. */
export const reentrant = () =>
  new CacheInputError({
    problem: "ReentrantComputation",
    reason:
      "a computation called getOrCompute of its own key (directly or through other keys' computations): it would wait for itself"
  })

/** The flights whose computation `caller` is part of. */
export const computingIn = (caller: Fiber.RuntimeFiber<unknown, unknown>): ReadonlyArray<Flight> =>
  caller.getFiberRef(computing)

/**
 * The fiber refs a flight's fiber starts with: `caller`'s, and `flight` added to the flights it
 * computes for (`inside`, `caller`'s). The flight's fiber is its own, so they are set there once,
 * no Effect step: a scoped FiberRef around the computation cost a miss 26 steps.
 */
export const refsComputing = (
  caller: Fiber.RuntimeFiber<unknown, unknown>,
  inside: ReadonlyArray<Flight>,
  flight: Flight
): FiberRefs.FiberRefs =>
  FiberRefs.updateAs(caller.getFiberRefs(), {
    fiberId: caller.id(),
    fiberRef: computing,
    value: inside.length === 0 ? [flight] : [...inside, flight]
  })
