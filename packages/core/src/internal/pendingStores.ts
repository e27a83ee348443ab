/**
 * The lower-tier writes of computed values still under way. A getOrCompute answers once L1
 * holds its value and writes the lower tiers after; an invalidation that covers such a write
 * waits for it to land (at most `bound`) before removing, so that once the invalidation has
 * returned no tier holds the value, and so does a `set` or `update` of its key before writing,
 * so that the computed value cannot land over the newer one. A write that outlives the wait (a
 * hung tier) is marked, and removes what it wrote when it lands. Promoted values are registered
 * the same way, and so are the Updates received from other instances while they are stored into
 * an L1 (localWrites.ts), whose store is asynchronous unless it is a MemoryTier.
 */
import { type Clock, Duration, Effect, Exit } from "effect"
import * as Signal from "./signal.js"
import { startTimer } from "./timeout.js"

/** One computed value being written. */
export interface PendingStore {
  readonly key: string
  readonly tags: ReadonlyArray<string>
  readonly done: Signal.Signal<void>
  /** Set by an invalidation that covered this write. */
  invalidated: boolean
}

/** The pending stores of one cache. */
export interface PendingStores {
  /** Registers a store of `key` (call `finish` when it has landed or failed). */
  readonly begin: (key: string, tags: ReadonlyArray<string>) => PendingStore
  /** Ends a store's registration and wakes the invalidations waiting for it. */
  readonly finish: (store: PendingStore) => void
  /** Whether a store of `key` is under way (synchronous: a write pays no step when none is). */
  readonly has: (key: string) => boolean
  /** Marks the stores that `covers` selects as invalidated and waits for them (at most `bound`). */
  readonly settle: (covers: (store: PendingStore) => boolean) => Effect.Effect<void>
}

/**
 * An empty set of pending stores; an invalidation waits at most `bound` for them, on `clock`
 * (the cache's: not the invalidating caller's, which may run under another).
 */
export const make = (bound: Duration.Duration, clock: Clock.Clock): PendingStores => {
  const stores = new Set<PendingStore>()
  /** How many stores of each key are under way. */
  const perKey = new Map<string, number>()
  const boundMs = Duration.toMillis(bound)
  return {
    begin: (key, tags) => {
      const store: PendingStore = { key, tags, done: Signal.make(), invalidated: false }
      stores.add(store)
      perKey.set(key, (perKey.get(key) ?? 0) + 1)
      return store
    },
    finish: (store) => {
      if (stores.delete(store)) {
        const left = perKey.get(store.key)! - 1
        if (left === 0) perKey.delete(store.key)
        else perKey.set(store.key, left)
      }
      Signal.done(store.done, Exit.void)
    },
    has: (key) => perKey.has(key),
    settle: (covers) =>
      Effect.suspend(() => {
        if (stores.size === 0) return Effect.void
        const waits: Array<Signal.Signal<void>> = []
        for (const store of stores) {
          if (!covers(store)) continue
          store.invalidated = true
          waits.push(store.done)
        }
        if (waits.length === 0) return Effect.void
        // One wait for all, ended by the last store or by the bound, with no fiber of the
        // caller's: an invalidation runs uninterruptible to its end, and a race's fiber would
        // inherit that, so that its timeout could not end it.
        return Effect.async<void>((resume) => {
          let left = waits.length
          let ended = false
          const cancels: Array<() => void> = []
          const end = () => {
            if (ended) return
            ended = true
            for (const cancel of cancels) cancel()
            resume(Effect.void)
          }
          cancels.push(startTimer(clock, boundMs, end))
          for (const signal of waits) {
            if (ended) break
            cancels.push(
              Signal.onDone(signal, () => {
                if (--left === 0) end()
              })
            )
          }
          return Effect.sync(() => {
            for (const cancel of cancels) cancel()
          })
        })
      })
  }
}

/** The longest call of any of `tiers` (their `callTimeout`), or `fallback`. */
export const boundOf = (
  tiers: ReadonlyArray<{ readonly callTimeout?: Duration.Duration | undefined }>,
  fallback: Duration.DurationInput
): Duration.Duration => {
  let bound = Duration.decode(fallback)
  let found = false
  for (const tier of tiers) {
    if (tier.callTimeout === undefined) continue
    bound = found ? Duration.max(bound, tier.callTimeout) : tier.callTimeout
    found = true
  }
  return bound
}
