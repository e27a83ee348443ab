/**
 * Any `@effect/platform` KeyValueStore as a cache tier: with `KeyValueStore.layerFileSystem`
 * an embedded, persistent L2 without Redis (entries survive a restart), with
 * `KeyValueStore.layerMemory` an in-process one.
 *
 * Each key is stored as `<prefix><key>` holding the entry's wire envelope (as in Redis).
 * A KeyValueStore has no expiry and cannot list its keys, so the tier:
 * - checks lifetimes on the Effect Clock when reading (a gone entry is a miss and is removed),
 *   and sweeps gone entries every `sweepInterval`;
 * - keeps an index of the keys it wrote, in the store itself (under
 *   `<prefix>__tiercache:kv-index:<shard>`), for `removeMatching`, `clear` and the sweep. The
 *   index is written before a new key's value, so after a crash it may name keys that are no
 *   longer there (harmless), never miss one that is: a pattern invalidation or a clear after a
 *   restart still reaches every entry.
 *
 * One process should own a prefix of a store: two processes writing the same prefix each keep
 * their own index and would overwrite each other's. Every failure of the store is a
 * {@link TierError}. Keys starting with `__tiercache:kv-index:` are refused.
 *
 * @since 0.1.0
 */
import { KeyValueStore } from "@effect/platform"
import type { PlatformError } from "@effect/platform/Error"
import { Duration, Effect, Layer, Option, Schedule, type Scope } from "effect"
import { TierError } from "./CacheError.js"
import * as Entry from "./Entry.js"
import * as Glob from "./Glob.js"
import { fnv1a } from "./internal/hash.js"
import { L2, type Tier } from "./Tier.js"

/** Whether a store error says the key was not there (nothing to remove). */
const isNotFound = (error: PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "NotFound"

/**
 * Options of a KeyValueStore tier.
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

/** Where the index of the tier's keys lives, after the prefix. */
const INDEX = "__tiercache:kv-index:"
/** The index is kept in shards, so that a new key rewrites 1/16 of it. */
const SHARDS = 16

const shardOf = (key: string): number => fnv1a(key) % SHARDS

const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * Builds a KeyValueStore tier on the store in context; its sweeper runs in the scope.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (
  options: Options = {}
): Effect.Effect<Tier.Service, TierError, KeyValueStore.KeyValueStore | Scope.Scope> =>
  Effect.gen(function* () {
    const store = yield* KeyValueStore.KeyValueStore
    const clock = yield* Effect.clock
    const name = options.name ?? "kv"
    const prefix = options.prefix ?? "tiercache:"
    const sweepInterval = Duration.decode(options.sweepInterval ?? "1 minute")
    const now = () => clock.unsafeCurrentTimeMillis()

    const fail = (operation: string) => (cause: unknown) =>
      new TierError({ tier: name, operation, reason: describe(cause), cause })
    const guard = <A, E>(operation: string, effect: Effect.Effect<A, E>): Effect.Effect<A, TierError> =>
      Effect.mapError(effect, fail(operation))

    // ---- the index: the keys this tier wrote, per shard ----------------------------------
    const shards: Array<Set<string>> = []
    for (let s = 0; s < SHARDS; s++) {
      const raw = yield* guard("open", store.get(`${prefix}${INDEX}${s}`))
      const keys = Option.match(raw, {
        onNone: () => [],
        onSome: (text) => {
          try {
            const parsed: unknown = JSON.parse(text)
            return Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === "string") : []
          } catch {
            return []
          }
        }
      })
      shards.push(new Set(keys))
    }
    /** Per shard: changes made, and changes written. */
    const changed = new Array<number>(SHARDS).fill(0)
    const written = new Array<number>(SHARDS).fill(0)
    const locks = yield* Effect.forEach(shards, () => Effect.makeSemaphore(1))

    /** Writes a shard of the index unless a write since the last change covered it. */
    const persist = (shard: number): Effect.Effect<void, TierError> =>
      locks[shard]!.withPermits(1)(
        Effect.suspend(() => {
          if (written[shard]! >= changed[shard]!) return Effect.void
          const version = changed[shard]!
          const text = JSON.stringify([...shards[shard]!])
          return Effect.tap(guard("set", store.set(`${prefix}${INDEX}${shard}`, text)), () => {
            written[shard] = Math.max(written[shard]!, version)
          })
        })
      )

    /** Writes every shard changed since its last write. */
    const persistAll = Effect.forEach(shards, (_, shard) => persist(shard), { discard: true })

    /** Records keys in the index (before their values are written). */
    const track = (keys: ReadonlyArray<string>): Effect.Effect<void, TierError> => {
      const touched = new Set<number>()
      for (const key of keys) {
        const shard = shardOf(key)
        if (shards[shard]!.has(key)) continue
        shards[shard]!.add(key)
        changed[shard]!++
        touched.add(shard)
      }
      return Effect.forEach(touched, persist, { discard: true })
    }
    /** Drops keys from the index; written with the next change (a stale index only names more). */
    const untrack = (keys: Iterable<string>) => {
      for (const key of keys) {
        const shard = shardOf(key)
        if (shards[shard]!.delete(key)) changed[shard]!++
      }
    }
    const indexed = (): Array<string> => shards.flatMap((shard) => [...shard])

    const checkKey = (operation: string, key: string): Effect.Effect<void, TierError> =>
      key.startsWith(INDEX)
        ? Effect.fail(
            new TierError({ tier: name, operation, reason: `keys starting with ${INDEX} are reserved` })
          )
        : Effect.void

    /**
     * Removes stored keys, then drops them from the index. A key that is not stored is already
     * removed: stores that report it (the file system's NotFound) are not failing.
     */
    const removeStored = (operation: string, keys: ReadonlyArray<string>) =>
      Effect.tap(
        guard(
          operation,
          Effect.forEach(
            keys,
            (key) => store.remove(prefix + key).pipe(Effect.catchIf(isNotFound, () => Effect.void)),
            { discard: true }
          )
        ),
        () => untrack(keys)
      )

    // ---- reads -----------------------------------------------------------------------------
    const get = (key: string): Effect.Effect<Option.Option<Entry.Entry>, TierError> =>
      Effect.flatMap(guard("get", store.get(prefix + key)), (raw) => {
        if (raw._tag === "None") return Effect.succeed(Option.none())
        const entry = Entry.deserialize(raw.value)
        if (entry === undefined) {
          return Effect.as(
            Effect.logDebug("stored value is not a cache entry; treated as a miss").pipe(
              Effect.annotateLogs({ tier: name, key })
            ),
            Option.none()
          )
        }
        // A gone entry is a miss; the sweep removes it (removing it here could race a write).
        return Effect.succeed(Entry.isGone(entry, now()) ? Option.none() : Option.some(entry))
      })

    // ---- writes ----------------------------------------------------------------------------
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
        yield* track(live.map(([key]) => key))
        const values = yield* Effect.forEach(live, ([key, entry]) =>
          Effect.try({ try: () => [key, Entry.serialize(entry)] as const, catch: fail("set") })
        )
        yield* guard(
          "set",
          Effect.forEach(values, ([key, text]) => store.set(prefix + key, text), { discard: true })
        )
      }).pipe((write) => markWriting(entries, write))

    const removeMatching = (operation: string, matches: (key: string) => boolean) =>
      Effect.gen(function* () {
        const doomed = indexed().filter(matches)
        let removed = 0
        for (const key of doomed) {
          if (yield* guard(operation, store.has(prefix + key))) removed++
        }
        yield* removeStored(operation, doomed)
        yield* persistAll
        return removed
      })

    // ---- the sweep -------------------------------------------------------------------------
    const sweepOnce = Effect.gen(function* () {
      const t = now()
      const gone: Array<string> = []
      const absent: Array<string> = []
      for (const key of indexed()) {
        const raw = yield* guard("sweep", store.get(prefix + key))
        if (raw._tag === "None") absent.push(key)
        else {
          const entry = Entry.deserialize(raw.value)
          if (entry === undefined || Entry.isGone(entry, t)) gone.push(key)
        }
      }
      // A key written while the sweep ran may hold a new value the sweep did not see.
      const untouched = (key: string) => !writing.has(key) && !writtenDuringSweep.has(key)
      untrack(absent.filter(untouched))
      const doomed = gone.filter(untouched)
      yield* removeStored("sweep", doomed)
      yield* persistAll
      if (doomed.length > 0) {
        yield* Effect.logDebug("swept gone entries").pipe(
          Effect.annotateLogs({ tier: name, removed: doomed.length })
        )
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
    yield* sweep.pipe(
      Effect.catchAll((error) =>
        Effect.logWarning("sweep failed").pipe(Effect.annotateLogs({ tier: name, reason: error.reason }))
      ),
      Effect.repeat(Schedule.spaced(sweepInterval)),
      Effect.delay(sweepInterval),
      Effect.interruptible,
      Effect.forkScoped
    )

    const tier: Tier.Service = {
      name,
      get,
      getMany: (keys) => Effect.forEach(keys, get),
      set: (key, entry) => setMany([[key, entry]]),
      setMany,
      remove: (keys) => (keys.length === 0 ? Effect.void : removeStored("remove", keys)),
      removeMatching: (glob) => removeMatching("removeMatching", Glob.matcher(glob)),
      clear: Effect.asVoid(removeMatching("clear", () => true)),
      health: store.size.pipe(
        Effect.map((size) => ({ name, healthy: true, detail: `${size} keys in the store` })),
        Effect.catchAll((error) => Effect.succeed({ name, healthy: false, detail: describe(error) }))
      )
    }
    return tier
  })

/**
 * A KeyValueStore tier as the cache's L2.
 *
 * @category layers
 * @since 0.1.0
 */
export const layer = (options?: Options): Layer.Layer<L2, TierError, KeyValueStore.KeyValueStore> =>
  Layer.scoped(L2, make(options))
