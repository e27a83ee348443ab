/**
 * Promotion: a fresh entry found below L1 is written into every tier above it, with the
 * entry's own remaining lifetime, unless its key changed since the read began (counted as a
 * discarded write). Into MemoryTier's L1 that is one synchronous step. Any other write (a tier
 * below L1, found in a third tier or lower; an L1 that is not a MemoryTier, whose write may land
 * before it is acknowledged) is a pending store (pendingStores.ts) while it writes, so an
 * invalidation that covers it waits for it; it checks again once written, and takes back what
 * it wrote if the key changed meanwhile, telling the other instances (which may have read it
 * from the shared tier), so an invalidation that overlapped it never leaves the old value behind.
 */
import { Effect } from "effect"
import type * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import { bracketSync } from "./bracket.js"
import type { AnySchema } from "./codec.js"
import type { Counters } from "./counters.js"
import type { Slot } from "./fastPath.js"
import type { Lookup } from "./lookup.js"
import type { PendingStore, PendingStores } from "./pendingStores.js"
import type { TierAccess } from "./tierAccess.js"

/** Promotion of one cache. */
export interface Promotion {
  /**
   * Promotes `entry`, found in tier `foundAt` (>= 1) by a read that began at `since`, into
   * every tier above it; `decoded` is memoized in the L1 slot for `schema`.
   */
  readonly promote: (
    key: string,
    entry: Entry.Entry,
    foundAt: number,
    since: number,
    schema: AnySchema | undefined,
    decoded: unknown
  ) => Effect.Effect<void>
  /**
   * The synchronous promotion of an entry found in the one lower tier into MemoryTier's L1:
   * answers the new slot, or undefined when nothing was stored (key changed, entry gone).
   */
  readonly promoteNow: (key: string, entry: Entry.Entry, at: number, since: number) => Slot | undefined
}

/** What promotion needs. */
export interface Deps {
  readonly access: TierAccess
  readonly lookup: Lookup
  readonly counters: Counters
  readonly pending: PendingStores
  readonly send: (message: InvalidationMessage) => Effect.Effect<boolean>
  readonly instanceId: string
}

/** Builds promotion. */
export const make = ({ access, lookup, counters, pending, send, instanceId }: Deps): Promotion => {
  const fast = access.fast
  const promoteNow: Promotion["promoteNow"] = (key, entry, at, since) => {
    if (!lookup.current(key, since)) {
      counters.discardedWrites++
      return undefined
    }
    const slot = fast!.store(key, access.l1Entry(entry, at))
    // Counted once L1 holds it: L1 may refuse it (larger than its maxBytes, or gone already).
    if (slot !== undefined) counters.promotions++
    return slot
  }

  const promote: Promotion["promote"] = (key, entry, foundAt, since, schema, decoded) =>
    Effect.suspend(() => {
      if (!lookup.current(key, since)) {
        counters.discardedWrites++
        return Effect.void
      }
      // With the fast path and the entry found in the first lower tier, one synchronous step.
      const storeNow = access.storeL1Now
      if (storeNow !== undefined && foundAt === 1) {
        const slot = storeNow(key, entry)
        if (slot === undefined) return Effect.void
        counters.promotions++
        if (schema !== undefined) slot.memoizeTyped(schema, decoded)
        return Effect.void
      }
      const above = Array.from({ length: foundAt - 1 }, (_, i) => i + 1)
      const promoted = (store: PendingStore | undefined) =>
        Effect.gen(function* () {
          // Whether some tier above holds the entry now: MemoryTier's L1 may refuse it (no
          // slot), and any tier's write may fail.
          let held = false
          const slot = yield* access.storeL1(key, entry).pipe(
            Effect.tap((slot) => {
              held = slot !== undefined || access.fast === undefined
            }),
            Effect.catchAll((error) => Effect.as(access.recordError(0, error), undefined))
          )
          if (slot !== undefined && schema !== undefined) slot.memoizeTyped(schema, decoded)
          yield* Effect.forEach(
            above,
            (i) =>
              access.write(i, key, entry).pipe(
                Effect.tap(() => {
                  held = true
                }),
                Effect.catchAll((error) => access.recordError(i, error))
              ),
            { concurrency: "unbounded", discard: true }
          )
          // Counted once it holds, as the synchronous way counts it (a promotion whose every
          // write failed copied nothing): a promotion taken back is a discarded write only.
          if (lookup.current(key, since) && !store?.invalidated) {
            if (held) counters.promotions++
            return
          }
          // The key changed while this promotion waited for a tier: take back what it wrote, and
          // tell the instances that may have read it from a shared tier meanwhile.
          counters.discardedWrites++
          yield* access.removeL1([key]).pipe(Effect.catchAll((error) => access.recordError(0, error)))
          yield* Effect.forEach(above, (i) => access.removeFrom(i, [key]), {
            concurrency: "unbounded",
            discard: true
          })
          if (above.length > 0) yield* send({ type: "Remove", key, origin: instanceId })
        })
      // Uninterruptible, as a write is: a reader interrupted half-way would end the pending store
      // while its write may still land, after an invalidation that waited for it.
      return Effect.uninterruptible(
        bracketSync(
          () => pending.begin(key, entry.tags),
          promoted,
          (store) => pending.finish(store)
        )
      )
    })

  return { promote, promoteNow }
}
