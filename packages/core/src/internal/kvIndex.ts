/**
 * The index of the keys a KeyValueStore tier wrote, kept in the store itself, for
 * `removeMatching`, `clear` and the sweep: a KeyValueStore cannot list its keys. A new key is
 * recorded before its value is written; a removed one is dropped from the index with the next
 * write of its shard.
 *
 * Each of the 16 shards is kept in two records, `<prefix>__tiercache:kv-index:<shard>` and
 * `<prefix>__tiercache:kv-index:<shard>b`, written in turn, and read as the union of the two. A
 * store may replace a record in steps (the file-system store truncates the file, then writes
 * it): a process that dies, or a disk that fills up, between the steps leaves the record empty or
 * cut short, which reads as no keys. The other record then still holds the shard as it was
 * before the write that failed, and every key whose value was written since is in it (a value is
 * written only once its key's shard is). So the index may name keys that are gone, never miss
 * one that is stored. The next write goes to the record that failed, never over the only good
 * one.
 */
import type { KeyValueStore } from "@effect/platform"
import { Effect, type Option } from "effect"
import type { TierError } from "../CacheError.js"
import { reservedPrefix } from "../Tier.js"
import { fnv1a } from "./hash.js"

/** Where the index of the tier's keys lives, after the prefix. */
export const INDEX = `${reservedPrefix}kv-index:`
/** The index is kept in shards, so that a new key rewrites 1/16 of it. */
const SHARDS = 16
/** The two records of each shard, after `<prefix><INDEX><shard>`. */
const COPIES = ["", "b"] as const

/** The keys of a record of the index; undefined when it is absent or not an index (cut short). */
const parse = (raw: Option.Option<string>): Array<string> | undefined => {
  if (raw._tag === "None") return undefined
  try {
    const parsed: unknown = JSON.parse(raw.value)
    return Array.isArray(parsed) ? parsed.filter((k): k is string => typeof k === "string") : undefined
  } catch {
    return undefined
  }
}

const shardOf = (key: string): number => fnv1a(key) % SHARDS

/** Runs a store operation, its failure a TierError of `operation`. */
export type Guard = <A, E>(operation: string, effect: Effect.Effect<A, E>) => Effect.Effect<A, TierError>

/** Reads the index of the tier under `prefix` from the store. */
export const make = (store: KeyValueStore.KeyValueStore, prefix: string, guard: Guard) =>
  Effect.gen(function* () {
    const recordOf = (shard: number, copy: 0 | 1) => `${prefix}${INDEX}${shard}${COPIES[copy]}`
    const shards: Array<Set<string>> = []
    /** Per shard: the record its next write goes to. */
    const next: Array<0 | 1> = []
    for (let s = 0; s < SHARDS; s++) {
      const first = parse(yield* guard("open", store.get(recordOf(s, 0))))
      const second = parse(yield* guard("open", store.get(recordOf(s, 1))))
      shards.push(new Set([...(first ?? []), ...(second ?? [])]))
      // Never over the only good record: a write that fails there would leave none.
      next.push(first !== undefined && second === undefined ? 1 : 0)
    }
    /** Per shard: changes made, and changes written. */
    const changed = new Array<number>(SHARDS).fill(0)
    const written = new Array<number>(SHARDS).fill(0)
    const locks = yield* Effect.forEach(shards, () => Effect.makeSemaphore(1))

    /**
     * Writes a shard of the index unless a write since the last change covered it, to the
     * shard's record not written last (the other then holds the shard as it was). The write is
     * uninterruptible: a store may replace a record in steps (the file system's `set` truncates
     * the file, then writes it), and a write cut short between them leaves that record empty.
     * Tier calls are interrupted in normal use (the breaker's timeout, a caller's timeout, the
     * scope closing on a sweep), which then waits for the write. A write that fails is made again
     * to the same record, so that the other stays whole.
     */
    const persist = (shard: number): Effect.Effect<void, TierError> =>
      locks[shard]!.withPermits(1)(
        Effect.suspend(() => {
          if (written[shard]! >= changed[shard]!) return Effect.void
          const version = changed[shard]!
          const copy = next[shard]!
          const text = JSON.stringify([...shards[shard]!])
          return Effect.uninterruptible(
            Effect.tap(guard("set", store.set(recordOf(shard, copy), text)), () => {
              written[shard] = Math.max(written[shard]!, version)
              next[shard] = copy === 0 ? 1 : 0
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
