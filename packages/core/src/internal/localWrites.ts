/**
 * The local primitives: changes of this instance's L1 only (and of its flights), each with its
 * keys marked changing (changes.ts). The bus applies received messages with them (busSubscriber.ts).
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import * as Glob from "../Glob.js"
import { bracketSync } from "./bracket.js"
import type { Changes, Deps } from "./changes.js"

/** Builds the local primitives. */
export const make = (deps: Deps, changes: Changes) => {
  const { access, registry, tags, lateUpdates, now, versions, pending } = deps
  const { changing } = changes
  /**
   * Applies an Update of `key` from `origin` to L1 with `body`, the key marked changing, its
   * flight forgotten, and the Update noted (lateUpdates.ts: to a later Update of the key from
   * another instance, it counts as a removal does), whether it is stored or refused.
   */
  const applying = (
    key: string,
    origin: string,
    body: () => Effect.Effect<void, TierError>
  ): Effect.Effect<void, TierError> =>
    changing(
      [key],
      Effect.suspend(() => {
        registry.forget(key)
        lateUpdates.updated(key, now(), origin)
        return body()
      })
    )
  /**
   * `body`, storing an Update's `entry` of `key` in L1, as a pending store (pendingStores.ts): an
   * L1 that is not a MemoryTier stores asynchronously, and a change of the key that this instance
   * begins meanwhile (an invalidation, a set or update) would otherwise find nothing to wait for
   * and let the older value land over it. Such a change marks the store and waits for it (at
   * most its bound): landed, a marked store removes what it stored.
   */
  const pendingStore = (
    key: string,
    entry: Entry.Entry,
    body: () => Effect.Effect<void, TierError>
  ): Effect.Effect<void, TierError> =>
    bracketSync(
      () => pending.begin(key, entry.tags),
      (store) =>
        Effect.zipRight(
          body(),
          Effect.suspend(() => (store.invalidated ? access.removeL1([key]) : Effect.void))
        ),
      (store) => pending.finish(store)
    )
  /**
   * Stores `entry`, an Update's from `origin`, in L1, or drops the copy L1 holds when that copy
   * is dated after it. A copy dated later whose change refused nothing (this instance's own
   * write, or an Update of another instance applied here, would have refused this one) was read
   * from the lower tiers, dated by its writer's clock, which may run ahead: this Update's write,
   * whose message follows it, may have landed after the read, so the copy is not kept over the
   * lower tiers' value.
   */
  const unlessNewer = (key: string, entry: Entry.Entry, origin: string): Effect.Effect<void, TierError> =>
    applying(key, origin, () =>
      pendingStore(key, entry, () =>
        Effect.flatMap(access.readL1(key), (held) =>
          held._tag === "Some" && held.value.createdAt > entry.createdAt
            ? access.removeL1([key])
            : Effect.asVoid(access.storeL1(key, entry))
        )
      )
    )
  /**
   * Drops the copy L1 holds of an Update's key that is refused, whenever that copy was created:
   * the lower tiers hold what landed last, which neither copy's date tells (lateUpdates.ts).
   */
  const refused = (key: string, origin: string): Effect.Effect<void, TierError> =>
    applying(key, origin, () => access.removeL1([key]))
  /** Whether a change of `key` is under way on this instance. */
  const changeUnderWay = (key: string): boolean => !versions.current(key, versions.seq())
  return {
    /**
     * Drops keys from this instance's L1 (and their flights); with the `origin` of the removal
     * (a message applied), a late Update will not undo it.
     */
    remove: (keys: ReadonlyArray<string>, origin?: string): Effect.Effect<void, TierError> =>
      changing(
        keys,
        Effect.suspend(() => {
          for (const key of keys) registry.forget(key)
          if (origin !== undefined) lateUpdates.removed(keys, now(), origin)
          return access.removeL1(keys)
        })
      ),
    /** Drops the keys matching a glob from this instance's L1; a late Update will not undo it. */
    removeMatching: (glob: string, origin: string): Effect.Effect<void, TierError> =>
      changing(
        undefined,
        Effect.suspend(() => {
          const matches = Glob.matcher(glob)
          registry.forgetMatching(matches)
          lateUpdates.removedMatching(matches, now(), origin)
          return access.removeL1Matching(glob, matches)
        })
      ),
    /** Notes a tag invalidated at `at` and drops its entries from this instance's L1. */
    removeTag: (tag: string, at: number): Effect.Effect<void, TierError> =>
      changing(
        undefined,
        Effect.suspend(() => {
          registry.forgetMatching(() => true)
          tags.invalidated(tag, at)
          return access.removeL1Tagged(tag)
        })
      ),
    /**
     * Stores an undated entry (an Update without `created_ms`, from `origin`) in this instance's
     * L1, unless a change of its key is under way here, or a removal of it by another instance
     * than `origin` is remembered (or was forgotten), or it carries a tag not known here as never
     * invalidated: it may have been created before either (dated from its arrival, it would pass
     * the tag's time), and the lower tiers may no longer hold it, so only an older copy is
     * dropped, as storeUnlessNewer does (lateUpdates.ts).
     */
    store: (key: string, entry: Entry.Entry, origin: string): Effect.Effect<void, TierError> =>
      Effect.suspend(() =>
        changeUnderWay(key) ||
        lateUpdates.refuses(key, undefined, origin, now()) ||
        (entry.tags.length > 0 && !tags.neverInvalidated(entry.tags))
          ? refused(key, origin)
          : applying(key, origin, () =>
              pendingStore(key, entry, () => Effect.asVoid(access.storeL1(key, entry)))
            )
      ),
    /**
     * Stores an entry (an Update's from `origin`) in this instance's L1, unless the key changed
     * here since the entry was created, or within WINDOW_MS of its arrival, or L1 holds a copy of
     * it dated later: then it only drops the copy L1 holds, whenever that was created
     * (lateUpdates.ts).
     */
    storeUnlessNewer: (key: string, entry: Entry.Entry, origin: string): Effect.Effect<void, TierError> =>
      Effect.suspend(() =>
        // Created before this instance's last removal of the key, or while a change of it is
        // under way here: the lower tiers may no longer hold it (lateUpdates.ts).
        lateUpdates.refuses(key, entry.createdAt, origin, now()) || changeUnderWay(key)
          ? refused(key, origin)
          : unlessNewer(key, entry, origin)
      ),
    /**
     * Empties this instance's L1 and forgets every tag time; with the `origin` of the clear (a
     * message applied, or a resync's stand-in), a late Update will not undo it.
     */
    clear: (origin?: string): Effect.Effect<void, TierError> =>
      changing(
        undefined,
        Effect.suspend(() => {
          registry.forgetMatching(() => true)
          tags.forget()
          if (origin !== undefined) lateUpdates.removedAll(now(), origin)
          return access.clearL1
        })
      )
  }
}

/** The local primitives of one cache. */
export type LocalWrites = ReturnType<typeof make>
