/**
 * Whether an entry is usable: the one decision every read path (get, getTyped, getMany,
 * getOrCompute, the flights, the L2 read shortcut) takes here. An entry is
 *  - MISS when it is gone (past `staleUntil`), tag-invalidated, carries a tag whose time could
 *    not be read, or does not decode with the reader's schema (counted as a decode error);
 *  - NEEDS_TAGS when it carries a tag this instance has not met yet: read the tags
 *    (`tags.load`), then ask again with `tagsRead`;
 *  - FRESH before `expiresAt`, STALE after it (inside the grace window).
 * A value found below L1 (or computed) is stored above only while `current(key, since)`: no
 * write or invalidation of that key overlapped the read (versions.ts).
 */
import { Effect } from "effect"
import * as Entry from "../Entry.js"
import { type AnySchema, decode, NOT_DECODED } from "./codec.js"
import type { Counters } from "./counters.js"
import type { Slot } from "./fastPath.js"
import type { Tags } from "./tags.js"
import type { Versions } from "./versions.js"

/** Usable and fresh. */
export const FRESH = 0
/** Usable only where stale data is allowed (inside the grace window). */
export const STALE = 1
/** Not usable. */
export const MISS = 2
/** Unknown until the entry's tags are read. */
export const NEEDS_TAGS = 3

/** The decision on an entry. */
export type Verdict = typeof FRESH | typeof STALE | typeof MISS | typeof NEEDS_TAGS

/** A usable entry's decoded value, and whether it is fresh. */
export interface Accepted {
  readonly fresh: boolean
  readonly value: unknown
}

/** The lookup of one cache. */
export interface Lookup {
  /**
   * The decision on `entry` at `now` for `schema`; when FRESH or STALE, the decoded value is in
   * `decoded` (read it at once, before any other Effect step).
   */
  readonly judge: (
    entry: Entry.Entry,
    now: number,
    schema: AnySchema | undefined,
    tagsRead: boolean
  ) => Verdict
  /** The last value `judge` decoded. */
  readonly decoded: () => unknown
  /**
   * The decision on an L1 slot; when FRESH or STALE with a schema, the decoded value is memoized
   * in the slot (`typedValue`, `typedSome`, `typedExit`). A tag-invalidated slot is dropped.
   */
  readonly judgeSlot: (
    key: string,
    slot: Slot,
    now: number,
    schema: AnySchema | undefined,
    tagsRead: boolean
  ) => Verdict
  /** `judge` with the tags read when needed: the accepted value, or undefined (a miss). */
  readonly accept: (entry: Entry.Entry, schema: AnySchema | undefined) => Effect.Effect<Accepted | undefined>
  /** Whether nothing changed `key` since `since` (a value read then may still be stored). */
  readonly current: (key: string, since: number) => boolean
}

/** What lookup needs. */
export interface Deps {
  readonly tags: Tags
  readonly versions: Versions
  readonly counters: Counters
  readonly now: () => number
  /** Drops a tag-invalidated L1 slot. */
  readonly dropL1: (key: string) => void
}

/** Builds the lookup. */
export const make = (deps: Deps): Lookup => {
  const { tags, counters, now } = deps
  let decoded: unknown

  const tagVerdict = (entry: Entry.Entry, tagsRead: boolean): Verdict | undefined => {
    if (entry.tags.length === 0) return undefined
    const valid = tags.valid(entry)
    if (valid === true) return undefined
    if (valid === false) return MISS
    return tagsRead ? MISS : NEEDS_TAGS
  }

  const judge: Lookup["judge"] = (entry, t, schema, tagsRead) => {
    if (Entry.isGone(entry, t)) return MISS
    const byTags = tagVerdict(entry, tagsRead)
    if (byTags !== undefined) return byTags
    const value = decode(schema, entry.value)
    if (value === NOT_DECODED) {
      counters.decodeErrors++
      return MISS
    }
    decoded = value
    return t < entry.expiresAt ? FRESH : STALE
  }

  const judgeSlot: Lookup["judgeSlot"] = (key, slot, t, schema, tagsRead) => {
    if (t >= slot.staleUntil) return MISS
    if (slot.tags.length > 0) {
      const byTags = tagVerdict(slot, tagsRead)
      if (byTags === MISS && tags.valid(slot) === false) deps.dropL1(key)
      if (byTags !== undefined) return byTags
    }
    if (schema !== undefined && slot.typedSchema !== schema) {
      const value = decode(schema, slot.value)
      if (value === NOT_DECODED) {
        counters.decodeErrors++
        return MISS
      }
      slot.memoizeTyped(schema, value)
    }
    return t < slot.expiresAt ? FRESH : STALE
  }

  const accept: Lookup["accept"] = (entry, schema) =>
    Effect.suspend(() => {
      const verdict = judge(entry, now(), schema, false)
      if (verdict !== NEEDS_TAGS) return Effect.succeed(accepted(verdict))
      return Effect.map(tags.load(entry.tags), () => accepted(judge(entry, now(), schema, true)))
    })
  const accepted = (verdict: Verdict): Accepted | undefined =>
    verdict === FRESH || verdict === STALE ? { fresh: verdict === FRESH, value: decoded } : undefined

  return { judge, decoded: () => decoded, judgeSlot, accept, current: deps.versions.current }
}
