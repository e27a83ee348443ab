/**
 * The index of the keys a KeyValueStore tier wrote, kept in the store itself (under
 * `<prefix>__tiercache:kv-index:<shard>`), for `removeMatching`, `clear` and the sweep: a
 * KeyValueStore cannot list its keys. A new key is recorded before its value is written; a
 * removed one is dropped from the index with the next write of its shard.
 */
import type { KeyValueStore } from "@effect/platform"
import { Effect, Option } from "effect"
import type { TierError } from "../CacheError.js"
import { reservedPrefix } from "../Tier.js"
import { fnv1a } from "./hash.js"

/** Where the index of the tier's keys lives, after the prefix. */
export const INDEX = `${reservedPrefix}kv-index:`
/** The index is kept in shards, so that a new key rewrites 1/16 of it. */
const SHARDS = 16

const shardOf = (key: string): number => fnv1a(key) % SHARDS

/** Runs a store operation, its failure a TierError of `operation`. */
export type Guard = <A, E>(operation: string, effect: Effect.Effect<A, E>) => Effect.Effect<A, TierError>

/** Reads the index of the tier under `prefix` from the store. */
export const make = (store: KeyValueStore.KeyValueStore, prefix: string, guard: Guard) =>
  Effect.gen(function* () {
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

    /**
     * Writes a shard of the index unless a write since the last change covered it. The write
     * is uninterruptible: a store may replace a record in steps (the file system's `set`
     * truncates the file, then writes it), and a write cut short between them would leave an
     * empty shard, which reads as no keys: the entries it named would be out of reach of
     * `clear` after a restart. Tier calls are interrupted in normal use (the breaker's timeout,
     * a caller's timeout, the scope closing on a sweep), which then waits for the write.
     */
    const persist = (shard: number): Effect.Effect<void, TierError> =>
      locks[shard]!.withPermits(1)(
        Effect.suspend(() => {
          if (written[shard]! >= changed[shard]!) return Effect.void
          const version = changed[shard]!
          const text = JSON.stringify([...shards[shard]!])
          return Effect.uninterruptible(
            Effect.tap(guard("set", store.set(`${prefix}${INDEX}${shard}`, text)), () => {
              written[shard] = Math.max(written[shard]!, version)
            })
          )
        })
      )

    /** Writes every shard changed since its last write. */
    const persistAll = Effect.forEach(shards, (_, shard) => persist(shard), { discard: true })

    /**
     * Records keys in the index (before their values are written); done once each key's shard
     * is written with it. A key already there whose shard has changes not yet written may be
     * one of them (another fiber's write of it in flight): it waits for that shard too. The keys
     * are recorded when the effect runs, not when it is built: a set builds its step "record the
     * key, then write the value" before it waits for the key's lock, and a remove holding the
     * lock meanwhile drops the key from the index; recorded at the build, the key would stay
     * dropped while its value was written (out of reach of `clear`, pattern removals and the
     * sweep).
     */
    const track = (keys: ReadonlyArray<string>): Effect.Effect<void, TierError> =>
      Effect.suspend(() => {
        const touched = new Set<number>()
        for (const key of keys) {
          const shard = shardOf(key)
          if (!shards[shard]!.has(key)) {
            shards[shard]!.add(key)
            changed[shard]!++
          }
          if (written[shard]! < changed[shard]!) touched.add(shard)
        }
        return touched.size === 0 ? Effect.void : Effect.forEach(touched, persist, { discard: true })
      })
    /** Drops keys from the index; written with the next change (a stale index only names more). */
    const untrack = (keys: Iterable<string>) => {
      for (const key of keys) {
        const shard = shardOf(key)
        if (shards[shard]!.delete(key)) changed[shard]!++
      }
    }
    /** Every key in the index. */
    const indexed = (): Array<string> => shards.flatMap((shard) => [...shard])

    return { track, untrack, indexed, persistAll }
  })

/** The index of one KeyValueStore tier. */
export type KvIndex = Effect.Effect.Success<ReturnType<typeof make>>
