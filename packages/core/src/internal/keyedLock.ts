/**
 * A lock per key: effects run under the lock of one key one at a time, and effects under
 * different keys do not wait for each other. A key's lock exists while an effect holds it or
 * waits for it, so the locks take room for the keys in use only.
 */
import { Effect } from "effect"

/** The lock of one key, and how many effects hold it or wait for it. */
interface Held {
  readonly semaphore: Effect.Semaphore
  users: number
}

/** Locks by key. */
export interface KeyedLock {
  /** Runs `effect` holding the lock of `key` (waiting for it first, interruptibly). */
  readonly withLock: <A, E, R>(key: string, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
}

/** Builds an empty set of locks. */
export const make = (): KeyedLock => {
  const locks = new Map<string, Held>()
  const acquire = (key: string) =>
    Effect.sync(() => {
      let held = locks.get(key)
      if (held === undefined) {
        held = { semaphore: Effect.unsafeMakeSemaphore(1), users: 0 }
        locks.set(key, held)
      }
      held.users++
      return held
    })
  const release = (key: string, held: Held) =>
    Effect.sync(() => {
      if (--held.users === 0) locks.delete(key)
    })
  return {
    withLock: (key, effect) =>
      Effect.acquireUseRelease(
        acquire(key),
        (held) => held.semaphore.withPermits(1)(effect),
        (held) => release(key, held)
      )
  }
}
