/**
 * The default L1: a bounded in-process tier on lru-cache, bounded by entry count and
 * optionally by an estimate of bytes, with each entry's own lifetime read on the Effect Clock.
 *
 * Expired entries are dropped when read or when the LRU bound evicts them (no timers run).
 * Values are kept by reference: do not mutate a value after caching it or after reading it.
 *
 * @since 0.1.0
 */
import { Effect, Layer, Option } from "effect"
import { LRUCache } from "lru-cache"
import { CacheConfigError } from "./CacheError.js"
import type { Entry } from "./Entry.js"
import * as Glob from "./Glob.js"
import { type FastPath, FastPathTypeId, makeSlot, type Slot } from "./internal/fastPath.js"
import { withInputChecks } from "./internal/tierInput.js"
import {
  describe,
  given,
  isPositiveInteger,
  nonEmptyStringError,
  optionsObjectError
} from "./internal/validate.js"
import { isReservedKey, L1, type Tier } from "./Tier.js"

/**
 * Options of a memory tier. Only an absent (`undefined`) option takes its default: `null` from
 * plain JavaScript, or a value of the wrong type or out of range, fails the build with a
 * `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /**
   * The most entries kept (required, a positive integer of at most 2^24 = 16,777,216); the
   * least recently used go first. lru-cache reserves its slots when the tier is built, about
   * 36 bytes each (600 MB at the bound), so give the count you mean to hold: to bound a tier by
   * `maxBytes` alone, give a count it cannot reach, not `Number.MAX_SAFE_INTEGER` (refused with
   * a CacheConfigError).
   */
  readonly maxEntries: number
  /**
   * An optional bound on the estimated size in bytes of all entries (UTF-16 length of the
   * key, of the value's JSON and of the tags, plus a fixed overhead). An entry larger than the
   * bound is not kept.
   */
  readonly maxBytes?: number | undefined
  /** The tier's name in logs and metrics (default `memory`). */
  readonly name?: string | undefined
}

/**
 * A memory tier: a Tier with the synchronous fast path TieredCache uses for L1 hits.
 *
 * @category models
 * @since 0.1.0
 */
export interface MemoryTier extends Tier.Service {
  /** @internal */
  readonly [FastPathTypeId]: FastPath
  /** Entries held now (expired ones not yet dropped included). */
  readonly size: () => number
}

/**
 * The largest `maxEntries` a memory tier accepts (2^24 = 16,777,216). lru-cache allocates arrays
 * of `maxEntries` slots at construction: from 2^32 it throws a RangeError, and well below that it
 * reserves hundreds of megabytes before holding anything.
 */
const MAX_ENTRIES = 16_777_216

const ENTRY_OVERHEAD_BYTES = 96

/**
 * An entry's estimated size: the UTF-16 length of its key, of its value's JSON and of each of its
 * tags (an entry may carry many: a tag per user, per product), plus a fixed overhead.
 */
const estimateBytes = (key: string, entry: Entry): number => {
  let valueLength = 0
  try {
    valueLength = JSON.stringify(entry.value)?.length ?? 0
  } catch {
    valueLength = 0
  }
  let tagsLength = 0
  for (const tag of entry.tags) tagsLength += tag.length
  return ENTRY_OVERHEAD_BYTES + 2 * (key.length + valueLength + tagsLength)
}

/**
 * Builds a memory tier.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<MemoryTier, CacheConfigError> =>
  Effect.gen(function* () {
    const notObject = optionsObjectError(options)
    if (notObject) return yield* notObject
    if (!isPositiveInteger(options.maxEntries)) {
      return yield* new CacheConfigError({
        option: "maxEntries",
        reason: `must be a positive integer, got ${describe(options.maxEntries)}`
      })
    }
    if (options.maxEntries > MAX_ENTRIES) {
      return yield* new CacheConfigError({
        option: "maxEntries",
        reason: `must be at most ${MAX_ENTRIES} (2^24; lru-cache reserves its slots up front), got ${options.maxEntries}`
      })
    }
    const maxBytes = options.maxBytes
    if (maxBytes !== undefined && !isPositiveInteger(maxBytes)) {
      return yield* new CacheConfigError({
        option: "maxBytes",
        reason: `must be a positive integer, got ${describe(maxBytes)}`
      })
    }
    const name = given(options.name, "memory")
    const badName = nonEmptyStringError(name, "name")
    if (badName) return yield* badName
    const clock = yield* Effect.clock
    const lru = new LRUCache<string, Slot>(
      maxBytes === undefined
        ? { max: options.maxEntries }
        : {
            max: options.maxEntries,
            maxSize: maxBytes,
            maxEntrySize: maxBytes,
            sizeCalculation: (slot, key) => estimateBytes(key, slot)
          }
    )

    const lookup = (key: string, now: number): Slot | undefined => {
      const slot = lru.get(key)
      if (slot === undefined) return undefined
      // A fresh slot (the usual hit) is not asked for its staleUntil, which is computed.
      if (now >= slot.expiresAt && now >= slot.staleUntil) {
        lru.delete(key)
        return undefined
      }
      return slot
    }
    const store = (key: string, entry: Entry): Slot | undefined => {
      if (clock.unsafeCurrentTimeMillis() >= entry.staleUntil) {
        lru.delete(key)
        return undefined
      }
      const slot = makeSlot(entry)
      lru.set(key, slot)
      // With maxBytes, an entry larger than it is refused (and the key's older copy dropped).
      if (maxBytes !== undefined && lru.peek(key) !== slot) return undefined
      return slot
    }
    const removeWhere = (predicate: (key: string, slot: Slot) => boolean): number => {
      const doomed: Array<string> = []
      for (const [key, slot] of lru.entries()) if (predicate(key, slot)) doomed.push(key)
      for (const key of doomed) lru.delete(key)
      return doomed.length
    }
    const fastPath: FastPath = {
      lookup,
      store,
      remove: (key) => {
        lru.delete(key)
      },
      removeWhere,
      clear: () => lru.clear()
    }

    const tier: MemoryTier = {
      [FastPathTypeId]: fastPath,
      name,
      size: () => lru.size,
      get: (key) =>
        Effect.sync(() =>
          Option.fromNullable<Entry | undefined>(lookup(key, clock.unsafeCurrentTimeMillis())?.toEntry())
        ),
      getMany: (keys) =>
        Effect.sync(() =>
          keys.map((key) =>
            Option.fromNullable<Entry | undefined>(lookup(key, clock.unsafeCurrentTimeMillis())?.toEntry())
          )
        ),
      set: (key, entry) =>
        Effect.sync(() => {
          store(key, entry)
        }),
      setMany: (entries) =>
        Effect.sync(() => {
          for (const [key, entry] of entries) store(key, entry)
        }),
      remove: (keys) =>
        Effect.sync(() => {
          for (const key of keys) lru.delete(key)
        }),
      removeMatching: (glob) =>
        Effect.sync(() => {
          const matches = Glob.matcher(glob)
          return removeWhere((key) => matches(key) && !isReservedKey(key))
        }),
      clear: Effect.sync(() => lru.clear()),
      health: Effect.sync(() => ({ name, healthy: true, detail: `${lru.size} entries` }))
    }
    // Arguments from plain JavaScript are checked before the tier runs (Tier.withInputChecks).
    return withInputChecks(tier)
  })

/**
 * A memory tier as the cache's L1.
 *
 * @example
 * ```ts
 * import { MemoryTier, TieredCache } from "@tiercache/core"
 * import { TestTier } from "@tiercache/testing"
 * import { Layer } from "effect"
 *
 * // At most 50,000 entries and about 64 MiB of encoded values; least recently used go first.
 * const L1Live = MemoryTier.layer({ maxEntries: 50_000, maxBytes: 64 * 1024 * 1024 })
 *
 * const CacheLive = TieredCache.layer().pipe(Layer.provide(L1Live), Layer.provide(TestTier.layer()))
 * ```
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<L1, CacheConfigError> => Layer.effect(L1, make(options))

/**
 * Whether a tier is a memory tier (has the synchronous fast path).
 *
 * @category guards
 * @since 0.1.0
 */
export const isMemoryTier = (tier: Tier.Service): tier is MemoryTier => FastPathTypeId in tier
