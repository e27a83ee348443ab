/**
 * Closing a cache: a getOrCompute answers as soon as L1 holds the value; its lower-tier writes
 * and bus message follow. Closing the cache waits for those (each bounded by its tier's
 * timeout; all together by DRAIN_TIMEOUT), so a value computed before a graceful shutdown is in
 * L2 for the next process, and so for a computation that answers while the close waits.
 * Computations still running after that are interrupted.
 */
import { Effect, Exit, Fiber, Scope } from "effect"
import type { Registry } from "./flight.js"

/** Longest a closing cache waits for the lower-tier writes of values it already delivered. */
const DRAIN_TIMEOUT = "5 seconds"

/**
 * Adds the finalizer that awaits the flights writing the lower tiers (at most DRAIN_TIMEOUT),
 * then closes `flightScope`, interrupting the computations still running.
 */
export const onClose = (
  registry: Registry,
  flightScope: Scope.CloseableScope,
  cacheName: string
): Effect.Effect<void, never, Scope.Scope> =>
  Effect.addFinalizer(() => {
    // Until no flight writes: one that answered meanwhile has begun its writes.
    const drain: Effect.Effect<void> = Effect.suspend(() => {
      const writing = registry.writing()
      if (writing.length === 0) return Effect.void
      return Effect.zipRight(
        Effect.forEach(writing, Fiber.await, { concurrency: "unbounded", discard: true }),
        drain
      )
    })
    return Effect.suspend(() => {
      if (registry.writing().length === 0) return Effect.void
      return drain.pipe(
        Effect.timeoutTo({
          duration: DRAIN_TIMEOUT,
          onSuccess: () => Effect.void,
          onTimeout: () =>
            Effect.logWarning(
              "cache closed with lower-tier writes still in flight; they were interrupted"
            ).pipe(Effect.annotateLogs({ cache: cacheName }))
        }),
        Effect.flatten
      )
    }).pipe(Effect.zipRight(Scope.close(flightScope, Exit.void)))
  })
