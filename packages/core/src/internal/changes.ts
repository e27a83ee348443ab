/**
 * What every change of the cache shares (the writes of writes.ts, the invalidations of
 * invalidations.ts, the local primitives of localWrites.ts): what they need, the marking of the
 * keys a change is changing in versions.ts from its start to its end (so that no read
 * overlapping it stores an older value above it), the rule that a change fails only when every
 * tier failed it, and the lower-tier writes of computed values still under way
 * (pendingStores.ts), which invalidations wait for. Built once per cache.
 */
import { Effect } from "effect"
import { type CacheInputError, CacheWriteError, type TierError } from "../CacheError.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import { bracketSync } from "./bracket.js"
import type { Publisher } from "./bus.js"
import type { Defaults } from "./callOptions.js"
import type { Counters } from "./counters.js"
import type { Registry } from "./flight.js"
import type { LateUpdates } from "./lateUpdates.js"
import type * as PendingStores from "./pendingStores.js"
import type { Recovery } from "./replay.js"
import type { Tags } from "./tags.js"
import type { TierAccess } from "./tierAccess.js"
import type { Versions } from "./versions.js"

/** What the changes need. */
export interface Deps {
  readonly access: TierAccess
  readonly versions: Versions
  readonly registry: Registry
  readonly tags: Tags
  readonly counters: Counters
  readonly defaults: Defaults
  readonly tagRetention: number
  readonly instanceId: string
  /** Sends each change's bus message and keeps the changes that missed a lower tier or the bus. */
  readonly recovery: Recovery
  /** Publishes a bus message; answers whether it was delivered (true without a bus). */
  readonly send: (message: InvalidationMessage) => Effect.Effect<boolean>
  /**
   * The lower-tier writes of computed and promoted values under way, and the L1 stores of
   * received Updates (pendingStores.ts).
   */
  readonly pending: PendingStores.PendingStores
  /** The ordered stream the bus publishes on (its `sequence`), if it names one. */
  readonly busSequence: unknown
  /** The bus's publish started at once, when it has one (oneStepWrite.ts). */
  readonly sendNow: Publisher["now"]
  readonly now: () => number
  /** When this instance last removed each key: what a late Update must not undo. */
  readonly lateUpdates: LateUpdates
}

/** How a write or an invalidation fails. */
export type WriteError = CacheInputError | CacheWriteError

/** A change's failure (when every tier failed), then its recovery step; no step for a success. */
export const thenSettle = (
  failed: Effect.Effect<void, WriteError>,
  settle: Effect.Effect<void>
): Effect.Effect<void, WriteError> => (failed === Effect.void ? settle : Effect.zipRight(failed, settle))

/**
 * `run` (everyTier's `storeThen` or `removeThen`) when the one lower tier names the same ordered
 * stream as the bus (e.g. one Redis connection): a change and its bus message are then sent
 * together, the message after the change, so a receiver that re-reads the key finds the change.
 */
export const onBusStream = <T extends { readonly sequence: unknown }>(
  deps: Deps,
  run: T | undefined
): T | undefined =>
  run !== undefined && deps.busSequence !== undefined && run.sequence === deps.busSequence ? run : undefined

/** Builds what the changes of one cache share. */
export const make = (deps: Deps) => {
  const { access, versions, counters } = deps
  const allTiers = access.lower.length + 1

  /** Fails the change when every tier failed it (counted as a write failure). */
  const failIfAllFailed = (key: string, operation: string, failures: ReadonlyArray<TierError>) => {
    if (failures.length < allTiers) return Effect.void
    counters.writeFailures++
    return Effect.fail(new CacheWriteError({ key, operation, failures }))
  }

  /** Runs `body` while `keys` are marked changing (undefined: every key), however it ends. */
  const changing = <A, E>(keys: ReadonlyArray<string> | undefined, body: Effect.Effect<A, E>) =>
    bracketSync(
      () => {
        if (keys === undefined) versions.changingAll()
        else for (const key of keys) versions.changing(key)
      },
      () => body,
      () => {
        if (keys === undefined) versions.changedAll()
        else for (const key of keys) versions.changed(key)
      }
    )

  return {
    failIfAllFailed,
    changing,
    // An invalidation waits for the computed values being written below L1 (see pendingStores.ts),
    // at most as long as the slowest tier's call may take.
    pending: deps.pending
  }
}

/** What the changes of one cache share. */
export type Changes = ReturnType<typeof make>
