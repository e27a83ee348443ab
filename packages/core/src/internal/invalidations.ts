/**
 * The invalidations: `invalidate`, `invalidateMany`, `invalidatePattern`, `invalidateTag` and
 * `clear`. Each marks what it removes changing (changes.ts), waits for the computed values
 * still being written below L1 that it covers (pendingStores.ts), removes from every tier, then
 * sends its bus message through recovery (replay.ts), which keeps it when a lower tier or the
 * bus missed it. When the one lower tier and the bus share an ordered stream (`removeThen`),
 * `invalidate` and `invalidateMany` send their messages right after the removal, on that stream,
 * without waiting for its reply in between; an `invalidate` over a MemoryTier L1, in one Effect
 * step when the tier can start the removal at once (oneStepWrite.ts).
 */
import { Effect } from "effect"
import { CacheInputError, CacheWriteError, type TierError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import * as Glob from "../Glob.js"
import type { Tier } from "../Tier.js"
import { type Changes, type Deps, onBusStream, type WriteError } from "./changes.js"
import { writeIfNewer } from "./ifNewer.js"
import { checkKey, checkPattern, checkTag, keyList } from "./input.js"
import * as OneStepWrite from "./oneStepWrite.js"
import type * as PendingStores from "./pendingStores.js"
import { removals } from "./removals.js"
import { TAG_PREFIX } from "./tags.js"

/** Builds the invalidations. */
export const make = (deps: Deps, changes: Changes) => {
  const { access, registry, tags, counters, instanceId, recovery, now, lateUpdates } = deps
  const { changing, failIfAllFailed, pending } = changes

  // A removal of keys and its messages sent together when the lower tier shares the bus's
  // stream: a receiver that re-reads a key finds it gone.
  const ordered = onBusStream(deps, access.removeThen)

  // The usual shape of an ordered removal of one key, in one Effect step when it can be
  // (oneStepWrite.ts): L1 a MemoryTier's fast path, the tier's `removeNow`, the bus's `publishNow`.
  const fast = access.fast
  const oneStep =
    ordered === undefined || fast === undefined
      ? undefined
      : OneStepWrite.make(deps, changes, deps.sendNow)?.remove

  /**
   * Marks `keys` changing (all of them when undefined), waits for the computed values still
   * being written below L1 that the removal `covers`, then `forget`s their flights and runs
   * `onTiers` (the removal from every tier, answering its failures and what `settle` is told of
   * the message sent with it); notes the removal's end, fails when every tier failed, and
   * `settle`s (sends the message through recovery, or keeps what the lower tiers or the bus
   * missed).
   */
  const removeEverywhere = <S>(
    label: () => string,
    operation: string,
    keys: ReadonlyArray<string> | undefined,
    covers: (store: PendingStores.PendingStore) => boolean,
    forget: () => void,
    onTiers: () => Effect.Effect<readonly [ReadonlyArray<TierError>, S]>,
    settle: (lowerFailed: boolean, sent: S) => Effect.Effect<void>,
    noteRemoved: (at: number) => void
  ): Effect.Effect<void, CacheWriteError> =>
    changing(
      keys,
      Effect.zipRight(
        pending.settle(covers),
        Effect.suspend(() => {
          forget()
          return onTiers()
        })
      ).pipe(
        // Noted at its end, while the keys are still marked changing: an Update created before
        // then that arrives later is not stored (lateUpdates.ts).
        Effect.ensuring(Effect.sync(() => noteRemoved(now())))
      )
    ).pipe(
      Effect.flatMap(([failures, sent]) =>
        Effect.zipRight(failIfAllFailed(label(), operation, failures), settle(failures.length > 0, sent))
      )
    )

  /** `onTiers` of a removal whose message `settle` sends after it: `l1Op`, then `lowerOp` on each lower tier. */
  const everyTier =
    (
      l1Op: () => Effect.Effect<void, TierError>,
      lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>
    ) =>
    () =>
      Effect.map(access.onEveryTier(l1Op, lowerOp), (failures) => [failures, undefined] as const)

  /**
   * `onTiers`, then `l1Op` again (its failure recorded), for a removal whose lower-tier part takes
   * steps (a pattern's SCAN, a clear, a store walking its index, invalidateMany's keys one chunk
   * or one key after the other): a `set` of a covered key made meanwhile stores its value in L1
   * at once and may land below before that removal reaches the key, which then removes it there
   * while L1 kept answering it. Removed from L1 again once the lower tiers are done, the key is
   * read from them, as every other instance reads it.
   */
  const thenL1Again =
    <A>(l1Op: () => Effect.Effect<void, TierError>, onTiers: () => Effect.Effect<A>) =>
    () =>
      Effect.tap(onTiers(), () => Effect.catchAll(l1Op(), (error) => access.recordError(0, error)))
  /** `everyTier`, then `l1Op` again (thenL1Again). */
  const everyTierThenL1 = (
    l1Op: () => Effect.Effect<void, TierError>,
    lowerOp: (tier: Tier.Service) => Effect.Effect<unknown, TierError>
  ) => thenL1Again(l1Op, everyTier(l1Op, lowerOp))

  const removeKeys = (list: ReadonlyArray<string>, single: boolean): Effect.Effect<void, WriteError> => {
    // Built only when every tier failed: a list of many keys is joined by commas.
    const label = () => (single ? list[0]! : list.join(","))
    const operation = single ? "invalidate" : "invalidateMany"
    // A set of the keys, made only when a store is under way: a store is checked against the list
    // once each, and there may be as many as getMany's promotions at once (1,024).
    let keySet: Set<string> | undefined
    const covers = (store: PendingStores.PendingStore) => {
      if (single) return store.key === list[0]
      if (keySet === undefined) keySet = new Set(list)
      return keySet.has(store.key)
    }
    const forget = () => list.forEach(registry.forget)
    const l1Op = () => access.removeL1(list)
    const noteRemoved = (at: number) => lateUpdates.removed(list, at, instanceId)
    const messages = removals(list, instanceId)
    const removing = <S>(
      onTiers: () => Effect.Effect<readonly [ReadonlyArray<TierError>, S]>,
      settle: (lowerFailed: boolean, sent: S) => Effect.Effect<void>
    ) => removeEverywhere(label, operation, list, covers, forget, onTiers, settle, noteRemoved)
    if (ordered !== undefined) {
      const sendAll =
        messages.length === 1
          ? deps.send(messages[0]!)
          : Effect.map(Effect.forEach(messages, deps.send, { concurrency: 16 }), (sent) =>
              sent.every((ok) => ok)
            )
      // One key's removal is one step, ordered by the tier with any write of the key.
      const onTiers = () => ordered.run(l1Op, list, sendAll)
      return removing(single ? onTiers : thenL1Again(l1Op, onTiers), (failed, delivered) =>
        single
          ? recovery.keptKey(list[0]!, undefined, false, failed, delivered)
          : recovery.keptKeys(list, failed, delivered)
      )
    }
    return removing(
      (single ? everyTier : everyTierThenL1)(l1Op, (tier) => tier.remove(list)),
      (failed) =>
        single
          ? recovery.settleKey(list[0]!, undefined, false, failed, messages[0]!)
          : recovery.settleKeys(list, failed, messages)
    )
  }

  return {
    invalidate: (key: string): Effect.Effect<void, WriteError> => {
      const bad = checkKey(key)
      if (bad) return Effect.fail(bad)
      if (oneStep === undefined) return removeKeys([key], true)
      // Decided when it runs, in its fiber (whether a span is to be opened is the running
      // fiber's).
      return Effect.suspend(() =>
        oneStep(
          key,
          () => {
            registry.forget(key)
            fast!.remove(key)
          },
          { type: "Remove", key, origin: instanceId },
          () => removeKeys([key], true)
        )
      )
    },
    invalidateMany: (keys: ReadonlyArray<string>): Effect.Effect<void, WriteError> => {
      // The keys as checked: read once from the caller's list (plain JS may hand an array whose
      // iterator or getters answer other keys on another read).
      const list = keyList(keys)
      if (list instanceof CacheInputError) return Effect.fail(list)
      return list.length === 0 ? Effect.void : removeKeys([...list], false)
    },
    invalidatePattern: (glob: string): Effect.Effect<void, WriteError> =>
      Effect.suspend((): Effect.Effect<void, WriteError> => {
        const bad = checkPattern(glob)
        if (bad) return Effect.fail(bad)
        const matches = Glob.matcher(glob)
        return removeEverywhere(
          () => glob,
          "invalidatePattern",
          undefined,
          (store) => matches(store.key),
          () => registry.forgetMatching(matches),
          everyTierThenL1(
            () => access.removeL1Matching(glob, matches),
            (tier) => tier.removeMatching(glob)
          ),
          (failed) =>
            recovery.settleBarrier(glob, failed, {
              type: "RemovePattern",
              pattern: glob,
              origin: instanceId
            }),
          (at) => lateUpdates.removedMatching(matches, at, instanceId)
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
                // Unless the tier holds a later time: an earlier invalidation of the tag whose
                // write lands after this one's must not take the time back.
                (tier) => writeIfNewer(tier, [{ key: TAG_PREFIX + tag, entry: record, at }])
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
      () => "*",
      "clear",
      undefined,
      () => true,
      // The tiers lose the tags' records with everything else: the tag times go too, as on the
      // instances that receive the clear (localWrites.ts), so that all of them agree.
      () => {
        registry.forgetMatching(() => true)
        tags.forget()
      },
      everyTierThenL1(
        () => access.clearL1,
        (tier) => tier.clear
      ),
      (failed) => recovery.settleBarrier(undefined, failed, { type: "Clear", origin: instanceId }),
      (at) => lateUpdates.removedAll(at, instanceId)
    )
  }
}

/** The invalidations of one cache. */
export type Invalidations = ReturnType<typeof make>
