/**
 * Any `@effect/platform` KeyValueStore as a cache tier: with `KeyValueStore.layerFileSystem`
 * an embedded, persistent L2 without Redis (entries survive a restart), with
 * `KeyValueStore.layerMemory` an in-process one.
 *
 * Each key is stored as `<prefix><key>` holding the entry's wire envelope (as in Redis). A key
 * that a file system could not keep apart (the file-system store names a file
 * `encodeURIComponent(<prefix><key>)`) is stored as `<prefix>__tiercache:kv-hash:<SHA-256 hex>`,
 * its envelope starting with a `"k"` field naming the key, so that a record under the same hash
 * for another key reads as a miss: a key whose name would pass 200 bytes (a file name ends at
 * 255), and one with an ASCII capital letter or a `*`, or ending with a dot (macOS and Windows
 * ignore case in file names, Windows drops trailing dots and refuses `*`); kvKeys.ts.
 * A KeyValueStore has no expiry and cannot list its keys, so the tier:
 * - checks lifetimes on the Effect Clock when reading (a gone entry is a miss and is removed),
 *   and sweeps gone entries every `sweepInterval`;
 * - keeps an index of the keys it wrote, in the store itself (16 shards, each in two records
 *   under `<prefix>__tiercache:kv-index:`, written in turn), for `removeMatching`, `clear` and
 *   the sweep. The index is written before a new key's value, so after a crash it may name keys
 *   that are no longer there (harmless), never miss one that is: a pattern invalidation or a
 *   clear after a restart still reaches every entry, also when the crash (or a full disk) cut
 *   short the write of a record of the index (the shard's other record is whole). A key's value and its place in the index change under a
 *   lock of the key, so however a set, a remove, a clear and the sweep of one key overlap, a
 *   key whose value is stored is in the index.
 *
 * One process should own a prefix of a store: two processes writing the same prefix each keep
 * their own index and would overwrite each other's. Every failure of the store is a
 * {@link TierError}. Keys starting with `__tiercache:kv-index:` are refused.
 *
 * @since 0.1.0
 */
import { KeyValueStore } from "@effect/platform"
import { Duration, Effect, Layer, Metric, Option, type Scope } from "effect"
import { CacheConfigError, TierError } from "./CacheError.js"
import * as CacheMetrics from "./CacheMetrics.js"
import * as Entry from "./Entry.js"
import * as Glob from "./Glob.js"
import * as KeyedLock from "./internal/keyedLock.js"
import { describe, isNotFound, withoutPath } from "./internal/kvErrors.js"
import * as KvIndex from "./internal/kvIndex.js"
import * as KvKeys from "./internal/kvKeys.js"
import * as KvSweep from "./internal/kvSweep.js"
import { withInputChecks } from "./internal/tierInput.js"
import {
  configMillis,
  given,
  isWellFormed,
  nonEmptyStringError,
  optionsObjectError
} from "./internal/validate.js"
import { isReservedKey, L2, type Tier } from "./Tier.js"

/**
 * Options of a KeyValueStore tier. Only an absent (`undefined`) option takes its default: `null`
 * from plain JavaScript, or a value of the wrong type or out of range, fails the build with a
 * `CacheConfigError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface Options {
  /** The tier's name in logs, metrics and errors (default `kv`). */
  readonly name?: string | undefined
  /** The namespace of this tier inside the store (default `tiercache:`). */
  readonly prefix?: string | undefined
  /** How often gone entries are removed from the store (default 1 minute). */
  readonly sweepInterval?: Duration.DurationInput | undefined
}

/**
 * Records under the tier's prefix that are no cache entry (written by something else), each read
 * as a miss and counted here, tagged `tier` with the tier's name, once per read that meets one
 * (`get`, each key of a `getMany`, and the read `writeIfNewer` makes before it overwrites);
 * another key's record under a hashed key's name is no foreign value (a plain miss). The metric
 * `tiercache_tier_foreign_values_total`, the same as `CacheMetrics.foreignValues` and
 * `RedisTier.foreignValues`: one fact about a tier, one series per tier name.
 *
 * @category metrics
 * @since 0.2.0
 */
export const foreignValues: Metric.Metric.Counter<number> = CacheMetrics.foreignValues

/**
 * Builds a KeyValueStore tier on the store in context; its sweeper runs in the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<Tier.Service, TierError | CacheConfigError, KeyValueStore.KeyValueStore | Scope.Scope> =>
  Effect.gen(function* () {
    const badOptions = optionsObjectError(options)
    if (badOptions) return yield* badOptions
    const store = yield* KeyValueStore.KeyValueStore
    const clock = yield* Effect.clock
    const name = given(options.name, "kv")
    const badName = nonEmptyStringError(name, "name")
    if (badName) return yield* badName
    const prefix: unknown = options.prefix === undefined ? "tiercache:" : options.prefix
    // A prefix that is no string would be stored as its text ("null", "5"); one with a lone
    // surrogate has no encoding (the file-system store died of a URIError on every key).
    if (typeof prefix !== "string" || !isWellFormed(prefix)) {
      return yield* new CacheConfigError({
        option: "prefix",
        reason: "must be a string of well-formed UTF-16"
      })
    }
    // Zero or less would sweep without pause, for good.
    const sweepMs = configMillis(given(options.sweepInterval, "1 minute"), "sweepInterval")
    if (typeof sweepMs !== "number") return yield* sweepMs
    const sweepInterval = Duration.millis(sweepMs)
    const now = () => clock.unsafeCurrentTimeMillis()
    const foreign = Metric.increment(Metric.tagged(foreignValues, "tier", name))

    const fail = (operation: string) => (cause: unknown) =>
      new TierError({ tier: name, operation, ...withoutPath(cause) })
    const guard = <A, E>(operation: string, effect: Effect.Effect<A, E>): Effect.Effect<A, TierError> =>
      Effect.mapError(effect, fail(operation))

    // ---- the index: the keys this tier wrote (kvIndex.ts) ----------------------------------
    const kvKeys = KvKeys.make(prefix)
    const { storeKey, owns } = kvKeys
    const index = yield* KvIndex.make(store, prefix, guard)
    const { track, untrack, indexed, persistAll } = index

    const checkKey = (operation: string, key: string): Effect.Effect<void, TierError> =>
      key.startsWith(KvIndex.INDEX)
        ? Effect.fail(
            new TierError({
              tier: name,
              operation,
              reason: `keys starting with ${KvIndex.INDEX} are reserved`
            })
          )
        : Effect.void

    // ---- one key at a time: a value and its place in the index change together ----------
    // A key's value is written, and removed, under the key's lock, with its index step: a set
    // records the key again if a remove dropped it meanwhile, a remove drops it after deleting
    // the value. So a key whose value is in the store is in the index, however a set and a
    // remove (or a clear, or the sweep) of it overlap.
    const keyLock = KeyedLock.make()

    /**
     * Removes stored keys, then drops them from the index, one key at a time under its lock;
     * `keep` (asked under the lock) spares a key. A key that is not stored is already removed:
     * stores that report it (the file system's NotFound) are not failing.
     */
    const removeStored = (
      operation: string,
      keys: ReadonlyArray<string>,
      keep?: (key: string) => boolean
    ): Effect.Effect<void, TierError> =>
      Effect.forEach(
        keys,
        (key) =>
          keyLock.withLock(
            key,
            Effect.suspend(() => (keep?.(key) ? Effect.void : removeHeld(operation, key)))
          ),
        { discard: true }
      )
    /** Removes a key's value, then drops it from the index; the key's lock is held. */
    const removeHeld = (operation: string, key: string): Effect.Effect<void, TierError> =>
      guard(operation, store.remove(storeKey(key)).pipe(Effect.catchIf(isNotFound, () => Effect.void))).pipe(
        Effect.tap(() => untrack([key]))
      )

    /**
     * Writes the value of a key under its lock, recording the key in the index first if a
     * remove dropped it since `setMany` recorded it (`track` is then a write of its shard;
     * otherwise nothing).
     */
    const writeValue = (key: string, envelope: string): Effect.Effect<void, TierError> =>
      keyLock.withLock(key, writeHeld("set", key, envelope))
    /** `writeValue` with the key's lock held. */
    const writeHeld = (operation: string, key: string, envelope: string): Effect.Effect<void, TierError> => {
      const [at, text] = kvKeys.record(key, envelope)
      return Effect.zipRight(track([key]), guard(operation, store.set(at, text)))
    }
    const sweeper = KvSweep.make({
      store,
      keys: kvKeys,
      name,
      now,
      sweepInterval,
      guard,
      index,
      removeStored
    })

    // ---- reads -----------------------------------------------------------------------------
    const get = (key: string): Effect.Effect<Option.Option<Entry.Entry>, TierError> =>
      Effect.flatMap(guard("get", store.get(storeKey(key))), (raw) => {
        if (raw._tag === "Some") return decode(key, raw.value)
        // A tag's time an earlier version stored under the tag's own name (kvKeys.ts); a name
        // the store cannot read (Windows refuses `*`) holds nothing.
        const legacy = kvKeys.legacyStoreKey(key)
        if (legacy === undefined) return Effect.succeed(Option.none())
        return Effect.flatMap(
          Effect.orElseSucceed(store.get(legacy), () => Option.none<string>()),
          (old): Effect.Effect<Option.Option<Entry.Entry>> =>
            old._tag === "Some" ? decode(key, old.value) : Effect.succeed(Option.none())
        )
      })
    /** The entry of a record read for `key`: none if it is another key's, not an entry, or gone. */
    const decode = (key: string, text: string): Effect.Effect<Option.Option<Entry.Entry>> => {
      // Another key's record under the same hash is not this key's (kvKeys.ts).
      if (!owns(key, text)) return Effect.succeed(Option.none())
      const entry = Entry.deserialize(text)
      if (entry === undefined) {
        return Effect.as(
          // Counted (foreignValues). Without the key: a log line becomes an event of the cache's
          // tier span, which keeps keys out unless `keysInSpans` (a tier cannot tell).
          Effect.zipRight(
            foreign,
            Effect.logDebug("stored value is not a cache entry; treated as a miss").pipe(
              Effect.annotateLogs({ tier: name })
            )
          ),
          Option.none()
        )
      }
      // A gone entry is a miss; the sweep removes it (removing it here could race a write).
      return Effect.succeed(Entry.isGone(entry, now()) ? Option.none() : Option.some(entry))
    }

    // ---- writes ----------------------------------------------------------------------------
    const setMany = (
      entries: ReadonlyArray<readonly [string, Entry.Entry]>
    ): Effect.Effect<void, TierError> =>
      Effect.gen(function* () {
        for (const [key] of entries) yield* checkKey("set", key)
        const t = now()
        const gone = entries.filter(([, entry]) => Entry.isGone(entry, t)).map(([key]) => key)
        const live = entries.filter(([, entry]) => !Entry.isGone(entry, t))
        if (gone.length > 0) yield* removeStored("set", gone)
        if (live.length === 0) return
        const values = yield* Effect.forEach(live, ([key, entry]) =>
          Effect.try({ try: () => [key, Entry.serialize(entry)] as const, catch: fail("set") })
        )
        // The new keys in one write per shard, before any value (writeValue checks again).
        yield* track(live.map(([key]) => key))
        yield* Effect.forEach(values, ([key, text]) => writeValue(key, text), { discard: true })
      }).pipe((write) => sweeper.markWriting(entries, write))

    /**
     * Tier `writeIfNewer`: each change under its key's lock, read, compared and applied there,
     * so that two conditional writes of a key (two invalidations of a tag: the later time must
     * stay) never land in the other order in this process. Two processes on one store are not
     * ordered: the store has no transaction.
     */
    const writeIfNewer = (
      changes: ReadonlyArray<Tier.Change>
    ): Effect.Effect<ReadonlyArray<boolean>, TierError> =>
      Effect.forEach(changes, (change) =>
        Effect.zipRight(
          checkKey("writeIfNewer", change.key),
          keyLock.withLock(
            change.key,
            Effect.flatMap(get(change.key), (found): Effect.Effect<boolean, TierError> => {
              if (found._tag === "Some" && found.value.createdAt > change.at) return Effect.succeed(false)
              const entry = change.entry
              if (entry === undefined || Entry.isGone(entry, now())) {
                return Effect.as(removeHeld("writeIfNewer", change.key), true)
              }
              return Effect.try({ try: () => Entry.serialize(entry), catch: fail("writeIfNewer") }).pipe(
                Effect.flatMap((text) => writeHeld("writeIfNewer", change.key, text)),
                (write) => sweeper.markWriting([[change.key, entry]], write),
                Effect.as(true)
              )
            })
          )
        )
      )

    const removeMatching = (operation: string, matches: (key: string) => boolean) =>
      Effect.gen(function* () {
        // The cache's own keys (a clear's: the tags' records) last: a tag's record removed before
        // the entries it refuses would let a reader that reads the tag's time meanwhile answer them.
        const found = indexed().filter(matches)
        const doomed = [
          ...found.filter((key) => !isReservedKey(key)),
          ...found.filter((key) => isReservedKey(key))
        ]
        let removed = 0
        for (const key of doomed) {
          if (yield* guard(operation, store.has(storeKey(key)))) removed++
        }
        yield* removeStored(operation, doomed)
        yield* persistAll
        return removed
      })

    // ---- the sweep (kvSweep.ts) ------------------------------------------------------------
    yield* sweeper.start

    const tier: Tier.Service = {
      name,
      get,
      getMany: (keys) => Effect.forEach(keys, get),
      set: (key, entry) => setMany([[key, entry]]),
      setMany,
      remove: (keys) => (keys.length === 0 ? Effect.void : removeStored("remove", keys)),
      removeMatching: (glob) => {
        const matches = Glob.matcher(glob)
        return removeMatching("removeMatching", (key) => matches(key) && !isReservedKey(key))
      },
      clear: Effect.asVoid(removeMatching("clear", () => true)),
      writeIfNewer,
      health: store.size.pipe(
        Effect.map((size) => ({ name, healthy: true, detail: `${size} keys in the store` })),
        Effect.catchAll((error) => Effect.succeed({ name, healthy: false, detail: describe(error) }))
      )
    }
    // Arguments from plain JavaScript are checked before the tier runs (Tier.withInputChecks);
    // keys with a lone surrogate are kept apart (stored under their hash: kvKeys.ts).
    return withInputChecks(tier)
  })

/**
 * A KeyValueStore tier as the cache's L2.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (
  options?: Options
): Layer.Layer<L2, TierError | CacheConfigError, KeyValueStore.KeyValueStore> =>
  Layer.scoped(L2, make(options))
