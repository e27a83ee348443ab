/**
 * Closing a cache: a getOrCompute answers as soon as L1 holds the value; its lower-tier writes
 * and bus message follow. Closing the cache waits for those (each bounded by its tier's
 * timeout; all together by DRAIN_TIMEOUT), so a value computed before a graceful shutdown is in
 * L2 for the next process, and so for a computation that answers while the close waits.
 * Computations still running after that are interrupted.
 */
import { type Clock, Duration, Effect, Exit, Fiber, Scope } from "effect"
import type { Registry } from "./flight.js"
import { bounder } from "./timeout.js"

/** Longest a closing cache waits for the lower-tier writes of values it already delivered. */
const DRAIN_TIMEOUT = Duration.seconds(5)

/** What the bounded wait fails with when DRAIN_TIMEOUT has passed. */
const timedOut = { _tag: "DrainTimedOut" } as const

/**
 * Adds the finalizer that awaits the flights writing the lower tiers (at most DRAIN_TIMEOUT on
 * `clock`, the cache's), then closes `flightScope`, interrupting the computations still running.
 */
export const onClose = (
  registry: Registry,
  flightScope: Scope.CloseableScope,
  cacheName: string,
  clock: Clock.Clock
): Effect.Effect<void, never, Scope.Scope> => {
  // A finalizer runs uninterruptible: `Effect.timeoutTo` there could not interrupt the wait it
  // races (it waited for it instead, so a hung write kept the close from ending). The bounder
  // runs the wait in a fiber of its own, interruptible, and times it on `clock` itself (a Node
  // timer on the live clock, a fiber sleeping on any other), not on a fiber's Clock service.
  const bound = bounder(clock, DRAIN_TIMEOUT)
  // Until no flight writes: one that answered meanwhile has begun its writes. The flights run
  // on their own, so awaiting them one after another ends when the last ends, and it takes no
  // concurrent forEach, which never ends when interrupted at one of its own steps (allAtOnce.ts):
  // the bound interrupts this wait.
  const drain: Effect.Effect<void> = Effect.suspend(() => {
    const writing = registry.writing()
    if (writing.length === 0) return Effect.void
    return Effect.zipRight(Effect.forEach(writing, Fiber.await, { discard: true }), drain)
  })
  return Effect.addFinalizer(() =>
    Effect.suspend(() => {
      if (registry.writing().length === 0) return Effect.void
      return bound<void, typeof timedOut, never>(drain, () => timedOut).pipe(
        Effect.catchAll(() =>
          Effect.logWarning(
            "cache closed with lower-tier writes still in flight; they were interrupted"
          ).pipe(Effect.annotateLogs({ cache: cacheName }))
        )
      )
    }).pipe(Effect.zipRight(Scope.close(flightScope, Exit.void)))
  )
}
