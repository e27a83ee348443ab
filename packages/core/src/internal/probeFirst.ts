/**
 * Calls through a breaker that may be half-open, as recovery's replay makes right after an
 * outage (replay.ts probes every breaker then): the first call goes alone, as the breaker's
 * probe, and the others follow `concurrency` at a time once it has answered. Made all at once,
 * the others were refused while the first one probed, and the replay failed with them (its
 * changes kept until the next retry, or, when a refused read interrupted the probe, until some
 * other call closed the breaker).
 */
import { Effect } from "effect"

/** `Effect.forEach(items, f, { concurrency })`, the first item's call made before the others. */
export const forEachProbingFirst = <A, B, E, R>(
  items: ReadonlyArray<A>,
  f: (item: A) => Effect.Effect<B, E, R>,
  concurrency: number
): Effect.Effect<Array<B>, E, R> =>
  items.length <= 1
    ? Effect.forEach(items, f)
    : Effect.flatMap(f(items[0]!), (first) =>
        Effect.map(Effect.forEach(items.slice(1), f, { concurrency }), (rest) => [first, ...rest])
      )
