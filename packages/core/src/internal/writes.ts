/**
 * Writes and invalidations: every tier, then a bus message. Each marks the keys it changes in
 * versions.ts from its start to its end, so that no read overlapping it stores an older value
 * above it. The local primitives (`local`) change this instance's L1 only: the bus applies
 * received messages with them.
 */
import { Effect } from "effect"
import { CacheInputError, CacheWriteError, type TierError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import * as Glob from "../Glob.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { Tier } from "../Tier.js"
import type { TypedWriteOptions } from "../TieredCache.js"
import type { AnySchema } from "./codec.js"
import type { Counters } from "./counters.js"
import { memoizeTyped } from "./fastPath.js"
import type { Registry } from "./flight.js"
import {
  checkKey,
  checkKeys,
  checkPattern,
  checkTag,
  type Defaults,
  encodeValue,
  resolveWrite
} from "./input.js"
import * as PendingStores from "./pendingStores.js"
import type { Recovery } from "./replay.js"
import { TAG_PREFIX, type Tags } from "./tags.js"
import type { TierAccess } from "./tierAccess.js"
import type { Versions } from "./versions.js"

/** What the writes need. */
export interface Deps {
  readonly access: TierAccess
  readonly versions: Versions
  readonly registry: Registry
  readonly tags: Tags
  readonly counters: Counters
  readonly defaults: Defaults
  readonly tagRetention: number
  readonly instanceId: string
  /** Sends each change's bus message and keeps the changes that missed a lower tier or the bus. */
  readonly recovery: Recovery
  /** Publishes a bus message; answers whether it was delivered (true without a bus). */
  readonly send: (message: InvalidationMessage) => Effect.Effect<boolean>
  /** The ordered stream the bus publishes on (its `sequence`), if it names one. */
  readonly busSequence: unknown
  readonly now: () => number
}

type WriteError = CacheInputError | CacheWriteError

/** Builds the writes. */
export const make = (deps: Deps) => {
  const { access, versions, registry, tags, counters, instanceId, recovery, now } = deps
  const allTiers = access.lower.length + 1
  // An invalidation waits for the computed values being written below L1 (see pendingStores.ts),
  // at most as long as the slowest tier's call may take.
  const pending = PendingStores.make(PendingStores.boundOf(access.lower, "1 second"))
  // The one lower tier and the bus share an ordered stream (e.g. one Redis connection): a write
  // and its bus message are sent together, the message after the write, and a receiver that
  // re-reads the key still finds the new value.
  const ordered =
    access.storeThen !== undefined &&
    deps.busSequence !== undefined &&
    access.storeThen.sequence === deps.busSequence
      ? access.storeThen
      : undefined
  const removed = (key: string): InvalidationMessage => ({ type: "Remove", key, origin: instanceId })

  const failIfAllFailed = (key: string, operation: string, failures: ReadonlyArray<TierError>) => {
    if (failures.length < allTiers) return Effect.void
    counters.writeFailures++
    return Effect.fail(new CacheWriteError({ key, operation, failures }))
  }

  /** Runs `body` while `keys` are marked changing (undefined: every key). */
  const changing = <A, E>(keys: ReadonlyArray<string> | undefined, body: Effect.Effect<A, E>) =>
    Effect.suspend(() => {
      if (keys === undefined) versions.changingAll()
      else for (const key of keys) versions.changing(key)
      return Effect.ensuring(
        body,
        Effect.sync(() => {
          if (keys === undefined) versions.changedAll()
          else for (const key of keys) versions.changed(key)
        })
      )
    })

  const storeL1 = (key: string, entry: Entry.Entry, schema: AnySchema | undefined, decoded: unknown) => () =>
    Effect.map(access.storeL1(key, entry), (slot) => {
      if (slot !== undefined && schema !== undefined) memoizeTyped(slot, schema, decoded)
    })

  const storeEverywhere = (
    key: string,
    entry: Entry.Entry,
    schema: AnySchema | undefined,
    decoded: unknown,
    afterL1?: () => void
  ): Effect.Effect<ReadonlyArray<TierError>> =>
    changing(
      [key],
      access.onEveryTier(storeL1(key, entry, schema, decoded), (tier) => tier.set(key, entry), afterL1)
    )

  const write = (
    key: string,
    value: unknown,
    opts: TypedWriteOptions<unknown, unknown> | undefined,
    broadcastValue: boolean
  ): Effect.Effect<void, WriteError> =>
    Effect.suspend((): Effect.Effect<void, WriteError> => {
      const badKey = checkKey(key)
      if (badKey) return Effect.fail(badKey)
      const resolved = resolveWrite(deps.defaults, opts)
      if (resolved instanceof CacheInputError) return Effect.fail(resolved)
      const schema = opts?.schema as AnySchema | undefined
      const encoded = encodeValue(value, schema)
      if (encoded instanceof CacheInputError) return Effect.fail(encoded)
      const entry = Entry.make({ value: encoded.value, now: now(), ...resolved })
      // A write from outside supersedes the computation under way.
      registry.forget(key)
      const message: InvalidationMessage = broadcastValue
        ? {
            type: "Update",
            key,
            value: entry.value,
            ttl_secs: Math.ceil(resolved.ttlMs / 1000),
            ttl_ms: resolved.ttlMs,
            grace_ms: resolved.graceMs,
            tags: resolved.tags,
            origin: instanceId
          }
        : removed(key)
      if (ordered !== undefined) {
        return changing(
          [key],
          ordered.run(storeL1(key, entry, schema, value), key, entry, deps.send(message))
        ).pipe(
          Effect.flatMap(([failures, delivered]) =>
            Effect.zipRight(
              failIfAllFailed(key, "set", failures),
              recovery.keptKey(key, entry, broadcastValue, failures.length > 0, delivered)
            )
          )
        )
      }
      return storeEverywhere(key, entry, schema, value).pipe(
        Effect.flatMap((failures) =>
          Effect.zipRight(
            failIfAllFailed(key, "set", failures),
            recovery.settleKey(key, entry, broadcastValue, failures.length > 0, message)
          )
        )
      )
    })

  /**
   * Stores a flight's computed entry unless `key` changed since `since`, then tells the other
   * instances (`Remove`: their L1 copy, if any, is older).
   */
  const storeComputed = (
    key: string,
    entry: Entry.Entry,
    schema: AnySchema | undefined,
    decoded: unknown,
    since: number,
    afterL1: () => void
  ): Effect.Effect<ReadonlyArray<TierError> | "discarded"> =>
    Effect.suspend((): Effect.Effect<ReadonlyArray<TierError> | "discarded"> => {
      if (!versions.current(key, since)) return Effect.succeed("discarded" as const)
      const store = pending.begin(key, entry.tags)
      // Marked changing until the write (and a removal after it) is done: one finalizer for
      // both marks costs less than two.
      versions.changing(key)
      const l1 = storeL1(key, entry, schema, decoded)
      const stored =
        ordered === undefined
          ? access.onEveryTier(l1, (tier) => tier.set(key, entry), afterL1)
          : Effect.map(ordered.run(l1, key, entry, deps.send(removed(key)), afterL1), ([failures]) => failures)
      return stored.pipe(
        // An invalidation that stopped waiting for this write (a slow tier) left it behind.
        Effect.tap(() =>
          store.invalidated
            ? access.onEveryTier(
                () => access.removeL1([key]),
                (tier) => tier.remove([key])
              )
            : Effect.void
        ),
        Effect.ensuring(
          Effect.sync(() => {
            versions.changed(key)
            pending.finish(store)
          })
        ),
        // Sent with the write already, unless a removal followed it.
        Effect.tap(() => (ordered === undefined || store.invalidated ? deps.send(removed(key)) : Effect.void))
      )
    })

  const removeEverywhere = (
    label: string,
    operation: string,
    keys: ReadonlyArray<string> | undefined,
    covers: (store: PendingStores.PendingStore) => boolean,
    forget: () => void,
    l1Op: () => Effect.Effect<void, TierError>,
    lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>,
    settle: (lowerFailed: boolean) => Effect.Effect<void>
  ): Effect.Effect<void, CacheWriteError> =>
    changing(
      keys,
      Effect.zipRight(
        pending.settle(covers),
        Effect.suspend(() => {
          forget()
          return access.onEveryTier(l1Op, lowerOp)
        })
      )
    ).pipe(
      Effect.flatMap((failures) =>
        Effect.zipRight(failIfAllFailed(label, operation, failures), settle(failures.length > 0))
      )
    )

  const local = {
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

  const removeKeys = (list: ReadonlyArray<string>, single: boolean): Effect.Effect<void, WriteError> =>
    removeEverywhere(
      single ? list[0]! : list.join(","),
      single ? "invalidate" : "invalidateMany",
      list,
      (store) => list.includes(store.key),
      () => list.forEach(registry.forget),
      () => access.removeL1(list),
      (tier) => tier.remove(list),
      (failed) =>
        single
          ? recovery.settleKey(list[0]!, undefined, false, failed, {
              type: "Remove",
              key: list[0]!,
              origin: instanceId
            })
          : recovery.settleKeys(list, failed, { type: "RemoveBulk", keys: list, origin: instanceId })
    )

  return {
    storeComputed,
    local,
    set: (key: string, value: unknown, opts?: TypedWriteOptions<unknown, unknown>) =>
      write(key, value, opts, false),
    update: (key: string, value: unknown, opts?: TypedWriteOptions<unknown, unknown>) =>
      write(key, value, opts, true),
    invalidate: (key: string): Effect.Effect<void, WriteError> => {
      const bad = checkKey(key)
      return bad ? Effect.fail(bad) : removeKeys([key], true)
    },
    invalidateMany: (keys: ReadonlyArray<string>): Effect.Effect<void, WriteError> => {
      const bad = checkKeys(keys)
      if (bad) return Effect.fail(bad)
      return keys.length === 0 ? Effect.void : removeKeys([...keys], false)
    },
    invalidatePattern: (glob: string): Effect.Effect<void, WriteError> =>
      Effect.suspend((): Effect.Effect<void, WriteError> => {
        const bad = checkPattern(glob)
        if (bad) return Effect.fail(bad)
        const matches = Glob.matcher(glob)
        return removeEverywhere(
          glob,
          "invalidatePattern",
          undefined,
          (store) => matches(store.key),
          () => registry.forgetMatching(matches),
          () => access.removeL1Matching(glob, matches),
          (tier) => tier.removeMatching(glob),
          (failed) =>
            recovery.settleBarrier(glob, failed, { type: "RemovePattern", pattern: glob, origin: instanceId })
        )
      }),
    invalidateTag: (tag: string): Effect.Effect<void, WriteError> =>
      Effect.suspend((): Effect.Effect<void, WriteError> => {
        const bad = checkTag(tag)
        if (bad) return Effect.fail(bad)
        const at = now()
        const record = Entry.make({ value: at, now: at, ttlMs: deps.tagRetention })
        const before = () => {
          registry.forgetMatching(() => true)
          tags.invalidated(tag, at)
        }
        return changing(
          undefined,
          Effect.zipRight(
            pending.settle((store) => store.tags.includes(tag)),
            Effect.suspend(() => {
              before()
              return access.onEveryTier(
                () => access.removeL1Tagged(tag),
                (tier) => tier.set(TAG_PREFIX + tag, record)
              )
            })
          )
        ).pipe(
          Effect.tap((failures) =>
            recovery.settleTag(tag, TAG_PREFIX + tag, record, failures.length > 0, {
              type: "RemoveTag",
              tag,
              at,
              origin: instanceId
            })
          ),
          Effect.flatMap((failures) => {
            // The time must reach a shared tier, or the tagged entries there would come back.
            if (failures.length < access.lower.length) return Effect.void
            counters.writeFailures++
            return Effect.fail(new CacheWriteError({ key: tag, operation: "invalidateTag", failures }))
          })
        )
      }),
    clear: removeEverywhere(
      "*",
      "clear",
      undefined,
      () => true,
      () => registry.forgetMatching(() => true),
      () => access.clearL1,
      (tier) => tier.clear,
      (failed) => recovery.settleBarrier(undefined, failed, { type: "Clear", origin: instanceId })
    )
  }
}

/** The writes of one cache. */
export type Writes = ReturnType<typeof make>
