/**
 * The plain-Effect floor of a cache, shared by misses.ts (its throughput) and steps.ts (its
 * Effect steps per miss).
 */
import { Deferred, Effect, Exit, FiberId } from "effect"
import type { Redis } from "ioredis"
import { LRUCache } from "lru-cache"

const TTL_MS = 3_600_000

/**
 * The same cache in plain Effect, as an Effect program would write it: lru-cache, GET and SET
 * through Effect.promise, and one forked fiber per key being computed, its callers awaiting
 * a Deferred. Run by fibers, it is the floor of what a cache built on Effect fibers pays (a
 * fiber, a Deferred and a few suspensions per miss) beside the promise limit.
 */
export const effectFloorCache = (
  raw: Redis,
  max: number,
  /**
   * With it, the floor also does what tiercache does on top of the cache above: each read from
   * Redis takes the value's remaining lifetime with it (GET and PTTL in one write), and each
   * write tells the other instances (`busWrite`: SET and a PUBLISH, workload.ts's
   * scriptedBusWrite).
   */
  busWrite?: (key: string, value: object) => Promise<unknown>
) => {
  const read = (key: string): Promise<string | null> =>
    busWrite === undefined
      ? raw.get(key)
      : Promise.all([raw.get(key), raw.pttl(key)]).then(([value]) => value)
  const write = (key: string, value: object): Promise<unknown> =>
    busWrite === undefined ? raw.set(key, JSON.stringify(value), "PX", TTL_MS) : busWrite(key, value)
  const lru = new LRUCache<string, object>({ max })
  const inflight = new Map<string, Deferred.Deferred<object>>()
  const getOrCompute = (key: string, compute: Effect.Effect<object>): Effect.Effect<object> =>
    Effect.suspend(() => {
      const hit = lru.get(key)
      if (hit !== undefined) return Effect.succeed(hit)
      const pending = inflight.get(key)
      if (pending !== undefined) return Deferred.await(pending)
      const deferred = Deferred.unsafeMake<object>(FiberId.none)
      inflight.set(key, deferred)
      const answer = (value: object) =>
        Effect.sync(() => {
          lru.set(key, value)
          Deferred.unsafeDone(deferred, Exit.succeed(value))
        })
      const flight = Effect.flatMap(
        Effect.promise(() => read(key)),
        (stored) =>
          stored !== null
            ? Effect.ensuring(
                answer(JSON.parse(stored) as object),
                Effect.sync(() => inflight.delete(key))
              )
            : Effect.flatMap(compute, (value) =>
                Effect.zipRight(
                  answer(value),
                  Effect.ensuring(
                    Effect.promise(() => write(key, value)),
                    Effect.sync(() => inflight.delete(key))
                  )
                )
              )
      )
      return Effect.zipRight(Effect.forkDaemon(flight), Deferred.await(deferred))
    })
  const set = (key: string, value: object) =>
    Effect.suspend(() => {
      lru.set(key, value)
      return Effect.promise(() => write(key, value))
    })
  return { getOrCompute, set }
}
