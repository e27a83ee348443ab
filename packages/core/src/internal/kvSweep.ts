/**
 * The sweep of a KeyValueStore tier: a KeyValueStore has no expiry, so every `sweepInterval`
 * the sweep reads every indexed key, removes the gone entries and drops from the index the keys
 * no longer stored. It leaves alone the keys being written, and those written while it ran
 * (`markWriting` notes them): they may hold a new value it did not see. It asks so again under
 * each key's lock just before removing it, so a write that ends while it removes other keys is
 * not lost, and one that begins then waits for the removal.
 */
import type { KeyValueStore } from "@effect/platform"
import { type Duration, Effect, Schedule, type Scope } from "effect"
import type { TierError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import type { Guard, KvIndex } from "./kvIndex.js"
import type { KvKeys } from "./kvKeys.js"

/** What the sweep needs. */
export interface Deps {
  readonly store: KeyValueStore.KeyValueStore
  readonly keys: KvKeys
  readonly name: string
  readonly now: () => number
  readonly sweepInterval: Duration.Duration
  readonly guard: Guard
  readonly index: KvIndex
  /**
   * Removes stored keys, then drops them from the index, each under its key's lock, sparing
   * those `keep` (asked under the lock) answers true for.
   */
  readonly removeStored: (
    operation: string,
    keys: ReadonlyArray<string>,
    keep: (key: string) => boolean
  ) => Effect.Effect<void, TierError>
}

/** Builds the sweep of one tier. */
export const make = (deps: Deps) => {
  const { store, keys, name, now, sweepInterval, guard, index, removeStored } = deps
  const { untrack, indexed, persistAll } = index

  // Writes in flight, and keys written while a sweep ran: the sweep leaves them alone.
  const writing = new Map<string, number>()
  let sweeping = false
  const writtenDuringSweep = new Set<string>()
  const markWriting = <A, E>(
    entries: ReadonlyArray<readonly [string, Entry.Entry]>,
    write: Effect.Effect<A, E>
  ): Effect.Effect<A, E> =>
    Effect.acquireUseRelease(
      Effect.sync(() => {
        for (const [key] of entries) {
          writing.set(key, (writing.get(key) ?? 0) + 1)
          if (sweeping) writtenDuringSweep.add(key)
        }
      }),
      () => write,
      () =>
        Effect.sync(() => {
          for (const [key] of entries) {
            const n = (writing.get(key) ?? 1) - 1
            if (n === 0) writing.delete(key)
            else writing.set(key, n)
            if (sweeping) writtenDuringSweep.add(key)
          }
        })
    )

  const sweepOnce = Effect.gen(function* () {
    const t = now()
    const gone: Array<string> = []
    const absent: Array<string> = []
    for (const key of indexed()) {
      const raw = yield* guard("sweep", store.get(keys.storeKey(key)))
      if (raw._tag === "None" || !keys.owns(key, raw.value)) absent.push(key)
      else {
        const entry = Entry.deserialize(raw.value)
        if (entry === undefined || Entry.isGone(entry, t)) gone.push(key)
      }
    }
    // A key written while the sweep ran may hold a new value the sweep did not see. Asked
    // again under each key's lock, just before its removal: a write that began or ended while
    // the sweep removed other keys spares the key (and one that begins later waits for the
    // removal, then writes).
    const touched = (key: string) => writing.has(key) || writtenDuringSweep.has(key)
    untrack(absent.filter((key) => !touched(key)))
    let removed = 0
    yield* removeStored("sweep", gone, (key) => {
      if (touched(key)) return true
      removed++
      return false
    })
    yield* persistAll
    if (removed > 0) {
      yield* Effect.logDebug("swept gone entries").pipe(Effect.annotateLogs({ tier: name, removed }))
    }
  })
  const sweep = Effect.suspend(() => {
    sweeping = true
    return sweepOnce
  }).pipe(
    Effect.ensuring(
      Effect.sync(() => {
        sweeping = false
        writtenDuringSweep.clear()
      })
    )
  )
  /** Sweeps every `sweepInterval` (the first after one interval) in a fiber of the scope. */
  const start: Effect.Effect<unknown, never, Scope.Scope> = sweep.pipe(
    Effect.catchAll((error) =>
      Effect.logWarning("sweep failed").pipe(Effect.annotateLogs({ tier: name, reason: error.reason }))
    ),
    Effect.repeat(Schedule.spaced(sweepInterval)),
    Effect.delay(sweepInterval),
    Effect.interruptible,
    Effect.forkScoped
  )

  return { markWriting, start }
}
