/**
 * Tags, invalidated lazily. invalidateTag stores the tag's invalidation time under a reserved
 * key in the lower tiers and tells the other instances; an entry carrying a tag invalidated at
 * or after its creation is not usable. Each instance keeps the times of the tags it has met
 * recently (the last HALF to 2 * HALF used: a process tagging entries per user or per product
 * meets tags without end); a tag it has not met, or has forgotten, is read from every lower tier
 * before an entry carrying it is used, and the latest time any of them holds is kept: a tier may
 * hold a later time than the tiers above it (an invalidation whose write missed them). Forgetting
 * a tag is what a resync does to every tag: the lower tiers keep its time (the latest,
 * `writeIfNewer`) for `tagRetention`.
 */
import { Effect, Fiber } from "effect"
import type * as Entry from "../Entry.js"
import { reservedPrefix } from "../Tier.js"
import type { TierAccess } from "./tierAccess.js"

/** Where tag invalidation times live in the lower tiers (user keys may not start with it). */
export const TAG_PREFIX = `${reservedPrefix}tag:`

/** Tags read from a tier in one call when many are read at once. */
export const BATCH = 1024

/** The invalidation time of a tag never invalidated. */
const NEVER = Number.NEGATIVE_INFINITY

/** The tags an instance has met. */
export interface Tags {
  /** true: every tag of the entry known and valid; false: one invalidated; undefined: one unknown. */
  readonly valid: (entry: Entry.Entry) => boolean | undefined
  /**
   * Reads the times of the tags not met yet (all at once) from every lower tier, keeping the
   * latest. A tag one of the tiers could not be asked about stays unknown.
   */
  readonly load: (tags: ReadonlyArray<string>) => Effect.Effect<void>
  /** Notes that `tag` was invalidated at `at`. */
  readonly invalidated: (tag: string, at: number) => void
  /**
   * Whether every one of `tags` is known here as never invalidated (an undated Update carrying a
   * tag not known so, one invalidated or not met or forgotten, may be older than its invalidation).
   */
  readonly neverInvalidated: (tags: ReadonlyArray<string>) => boolean
  /**
   * Forgets every tag time (they are read again when met); a read of tag times under way then
   * notes nothing (its tags stay unknown: what it read may predate the reason to forget).
   */
  readonly forget: () => void
  /** The tag times held (for tests of the bound). */
  readonly size: () => number
}

/** Tags per generation of kept times: between HALF and 2 * HALF tags are kept. */
export const HALF = 65_536

/**
 * How far ahead of this instance's clock a tag's time may be: another instance's clock may run
 * ahead (its time is then kept, so that the entries it dated are refused), but a time further
 * ahead (a broken clock, foreign data) would refuse the tag's entries until then.
 */
export const MAX_AHEAD_MS = 60_000

/** A tag's time as this instance keeps it: at most {@link MAX_AHEAD_MS} past `now`. */
export const bounded = (at: number, now: number): number => Math.min(at, now + MAX_AHEAD_MS)

/** Tag times of one instance, read through `access`. */
export const make = (
  access: TierAccess,
  now: () => number,
  sizes: { readonly half: number } = { half: HALF }
): Tags => {
  // Two generations: tags used lately, and those used in the generation before, moved back into
  // the recent one when used again. Once the recent one holds `half` tags it becomes the older
  // one, and the older one's tags (not used since) are forgotten.
  let recent = new Map<string, number>()
  let older = new Map<string, number>()
  /**
   * Counts `forget`s: a read of tag times begun before one (a resync, whose bus lost messages:
   * the read may predate an invalidation this instance never heard of) notes nothing.
   */
  let forgotten = 0
  const put = (tag: string, at: number) => {
    recent.set(tag, at)
    if (recent.size >= sizes.half) {
      older = recent
      recent = new Map()
    }
  }
  const timeOf = (tag: string): number | undefined => {
    const t = recent.get(tag)
    if (t !== undefined || older.size === 0) return t
    const before = older.get(tag)
    if (before === undefined) return undefined
    older.delete(tag)
    put(tag, before)
    return before
  }
  const note = (tag: string, at: number) => put(tag, Math.max(timeOf(tag) ?? NEVER, at))
  /** The time a tier's record of a tag holds. */
  const timeOfRecord = (record: Entry.Entry): number => {
    // A record whose value is not a time (foreign data; JSON's 1e400 reads as Infinity, which
    // would refuse the tag's entries for good) counts from the record's creation.
    const v = record.value
    const created = record.createdAt
    const at = Number.isFinite(v) ? (v as number) : Number.isFinite(created) ? created : undefined
    return at === undefined ? NEVER : bounded(at, now())
  }
  /** Tier `i`'s records of `batch` (undefined: it did not answer): a get for one tag, a getMany for more. */
  const readBatch = (i: number, batch: ReadonlyArray<string>) =>
    batch.length === 1
      ? Effect.map(access.tryRead(i, TAG_PREFIX + batch[0]!), (found) =>
          found === undefined ? undefined : [found]
        )
      : access.tryReadMany(
          i,
          batch.map((tag) => TAG_PREFIX + tag)
        )
  /**
   * Reads the tags not met yet: every tier is asked for each of them, in batches of at most
   * BATCH, several batches at once (a hung tier costs one timeout, not one per batch), and the
   * latest time found is kept. A tier that did not answer a batch (or answered it short) leaves
   * its tags unknown, whatever the other tiers hold (the tiers below it are not asked about them):
   * stale data is worse than a miss. A tag no tier holds was never invalidated.
   */
  const loadTags = (unmet: ReadonlyArray<string>): Effect.Effect<void> =>
    Effect.gen(function* () {
      const since = forgotten
      /** The latest time the tiers asked so far hold, for each tag all of them answered. */
      const latest = new Map<string, number>()
      for (const tag of unmet) latest.set(tag, NEVER)
      for (let i = 1; i <= access.lower.length && latest.size > 0; i++) {
        const left = [...latest.keys()]
        const batches: Array<ReadonlyArray<string>> = []
        for (let from = 0; from < left.length; from += BATCH) batches.push(left.slice(from, from + BATCH))
        const answers =
          batches.length === 1
            ? [yield* readBatch(i, batches[0]!)]
            : yield* Effect.forEach(batches, (batch) => readBatch(i, batch), { concurrency: "unbounded" })
        for (let b = 0; b < batches.length; b++) {
          const batch = batches[b]!
          const found = answers[b]
          for (let j = 0; j < batch.length; j++) {
            const tag = batch[j]!
            const record = found?.[j]
            if (record === undefined) latest.delete(tag)
            else if (record._tag === "Some")
              latest.set(tag, Math.max(latest.get(tag)!, timeOfRecord(record.value)))
          }
        }
      }
      // Forgotten meanwhile: what was read may predate what the forgetting stood for; the tags
      // stay unknown (their entries misses), read again when met.
      if (since !== forgotten) return
      for (const [tag, at] of latest) note(tag, at)
    })
  return {
    valid: (entry) => {
      const tags = entry.tags
      for (let i = 0; i < tags.length; i++) {
        const t = timeOf(tags[i]!)
        if (t === undefined) return undefined
        if (t >= entry.createdAt) return false
      }
      return true
    },
    // All at once: an entry (or a batch) with several tags not met yet waits for one read per
    // tier (in batches read at once, loadTags), not one after the other (a hung tier would cost
    // a timeout per tag), nor a fiber and a read per tag (40,000 tags took 18 s). The reads run in a fiber of
    // their own, which the reader only waits for: Effect's concurrent forEach never ends when the
    // fiber running it is interrupted while it yields inside forEach's own steps, so a read cut by
    // a timeout there would hang for good. An interrupted reader stops waiting; the reads end at
    // their tier's timeout and keep what they read.
    load: (tags) => {
      const unmet = tags.filter((tag) => timeOf(tag) === undefined)
      if (unmet.length === 0) return Effect.void
      // One tag: in the reader's fiber (one get of each tier, no concurrent step).
      if (unmet.length === 1) return loadTags(unmet)
      return Effect.flatMap(Effect.forkDaemon(loadTags(unmet)), Fiber.join)
    },
    neverInvalidated: (tags) => {
      for (let i = 0; i < tags.length; i++) if (timeOf(tags[i]!) !== NEVER) return false
      return true
    },
    invalidated: note,
    forget: () => {
      recent = new Map()
      older = new Map()
      forgotten++
    },
    size: () => recent.size + older.size
  }
}
