/**
 * Calls made all at once and answered in order, without `Effect.forEach`'s concurrent mode: each
 * call runs in a fiber forked from the caller's, and the caller joins them one after another.
 * Effect 3.22's concurrent forEach (and `Effect.all` with concurrency) never ends when the fiber
 * running it is interrupted while it yields inside forEach's own uninterruptible steps (a fiber
 * yields every 2,048 steps by default), so a caller cut by a timeout at that step hung for good,
 * with whatever waited for it. A forked fiber is interrupted with its parent, as any child is.
 * For calls that do not fail (a failure is only seen once the calls before it are joined).
 */
import { Effect, Fiber } from "effect"

/** `f` of every item, started at once; the answers in the items' order. */
export const allAtOnce = <A, B, R>(
  items: ReadonlyArray<A>,
  f: (item: A) => Effect.Effect<B, never, R>
): Effect.Effect<Array<B>, never, R> =>
  Effect.flatMap(
    Effect.forEach(items, (item) => Effect.fork(f(item))),
    (fibers) => Effect.forEach(fibers, Fiber.join)
  )
