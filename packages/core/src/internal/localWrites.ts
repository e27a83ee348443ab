/**
 * The local primitives: changes of this instance's L1 only (and of its flights), each with its
 * keys marked changing (changes.ts). The bus applies received messages with them (bus.ts).
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import * as Glob from "../Glob.js"
import type { Changes, Deps } from "./changes.js"

/** Builds the local primitives. */
export const make = (deps: Deps, changes: Changes) => {
  const { access, registry, tags } = deps
  const { changing } = changes
  return {
    /** Drops keys from this instance's L1 (and their flights). */
    remove: (keys: ReadonlyArray<string>): Effect.Effect<void, TierError> =>
      changing(
        keys,
        Effect.suspend(() => {
          for (const key of keys) registry.forget(key)
          return access.removeL1(keys)
        })
      ),
    /** Drops the keys matching a glob from this instance's L1. */
    removeMatching: (glob: string): Effect.Effect<void, TierError> =>
      changing(
        undefined,
        Effect.suspend(() => {
          const matches = Glob.matcher(glob)
          registry.forgetMatching(matches)
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
    /** Stores an entry in this instance's L1. */
    store: (key: string, entry: Entry.Entry): Effect.Effect<void, TierError> =>
      changing(
        [key],
        Effect.suspend(() => {
          registry.forget(key)
          return Effect.asVoid(access.storeL1(key, entry))
        })
      ),
    /**
     * Stores an entry in this instance's L1 unless L1 holds one of its key created later (a
     * message that arrived late must not replace this instance's newer value).
     */
    storeUnlessNewer: (key: string, entry: Entry.Entry): Effect.Effect<void, TierError> =>
      changing(
        [key],
        Effect.suspend(() => {
          registry.forget(key)
          return Effect.flatMap(access.readL1(key), (held) =>
            held._tag === "Some" && held.value.createdAt > entry.createdAt
              ? Effect.void
              : Effect.asVoid(access.storeL1(key, entry))
          )
        })
      ),
    /** Empties this instance's L1 and forgets every tag time. */
    clear: changing(
      undefined,
      Effect.suspend(() => {
        registry.forgetMatching(() => true)
        tags.forget()
        return access.clearL1
      })
    )
  }
}

/** The local primitives of one cache. */
export type LocalWrites = ReturnType<typeof make>
