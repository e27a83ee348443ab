/**
 * The pause before a long-lived stream the cache listens to is run again once it ended while
 * the cache lives (the bus subscription: busSubscriber.ts; a tier's `ready` stream:
 * readyWatch.ts).
 */
import { Duration } from "effect"

/**
 * The pause before the `attempt`-th run in a row (from 1): 100 ms, then twice as long after
 * each run that ended without handing over anything (or could not be opened), up to 30 seconds,
 * so that a stream that ends at once is not run in a busy loop.
 */
export const rerunDelay = (attempt: number): Duration.Duration =>
  Duration.millis(Math.min(100 * 2 ** (attempt - 1), 30_000))
