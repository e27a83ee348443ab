/**
 * Auto-recovery, the replay: writes.ts and invalidations.ts settle every change here (its bus
 * message is sent, and the change is kept in recovery.ts's record when a lower tier failed or
 * skipped it, or the message was not delivered); the kept changes are replayed to the lower tiers and the bus, in
 * the order they were made, when a tier or the bus reports its connection ready again (the
 * breakers are then probed at once instead of waiting out their window), and every
 * `retryInterval` while changes are kept. A replayed write or removal of a key never replaces an
 * entry created after it (Tier `writeIfNewer`, or a read, a comparison and a write for tiers
 * without it); a replayed pattern or clear removes what it matches.
 */
import { Effect, Schedule, type Scope, Stream } from "effect"
import type { TierError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { Tier } from "../Tier.js"
import type * as Breaker from "./breaker.js"
import type { Publisher } from "./bus.js"
import type { Counters } from "./counters.js"
import type { Barrier, KeyChange, Record } from "./recovery.js"
import type { TierAccess } from "./tierAccess.js"

/** What the replay needs. */
export interface Deps {
  readonly record: Record | undefined
  readonly access: TierAccess
  readonly publisher: Publisher
  readonly counters: Counters
  readonly instanceId: string
  readonly cacheName: string
  readonly retryInterval: number
  readonly now: () => number
}

/** The recovery of one cache, as writes.ts, invalidations.ts and the bus subscriber use it. */
export interface Recovery {
  /** After a write of `key` (entry) or its removal: sends `message`, keeps the change if needed. */
  readonly settleKey: (
    key: string,
    entry: Entry.Entry | undefined,
    update: boolean,
    lowerFailed: boolean,
    message: InvalidationMessage
  ) => Effect.Effect<void>
  /** As `settleKey`, for a message already sent (`delivered`: whether it was). */
  readonly keptKey: (
    key: string,
    entry: Entry.Entry | undefined,
    update: boolean,
    lowerFailed: boolean,
    delivered: boolean
  ) => Effect.Effect<void>
  /** After a removal of several keys. */
  readonly settleKeys: (
    keys: ReadonlyArray<string>,
    lowerFailed: boolean,
    message: InvalidationMessage
  ) => Effect.Effect<void>
  /** After a tag's invalidation (its time stored as `record` under the tag's reserved key). */
  readonly settleTag: (
    tag: string,
    key: string,
    record: Entry.Entry,
    lowerFailed: boolean,
    message: InvalidationMessage
  ) => Effect.Effect<void>
  /** After a pattern invalidation (`glob`) or a clear (undefined). */
  readonly settleBarrier: (
    glob: string | undefined,
    lowerFailed: boolean,
    message: InvalidationMessage
  ) => Effect.Effect<void>
  /** A connection reported ready: probe the breakers now, then replay. */
  readonly onReady: Effect.Effect<void>
  /** Changes kept now. */
  readonly pending: () => number
}

/** Keys per RemoveBulk message of a replay. */
const BULK = 1000

/** Builds the recovery; watches the tiers' `ready` streams and retries in fibers of the scope. */
export const make = (deps: Deps): Effect.Effect<Recovery, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { record, access, publisher, counters, instanceId, now } = deps
    const probe = () => {
      for (const guard of access.guards ?? []) (guard as Breaker.GuardedTier).probeNow()
      publisher.probeNow()
    }
    if (record === undefined) {
      return {
        settleKey: (_k, _e, _u, _f, message) => publisher.publish(message),
        keptKey: () => Effect.void,
        settleKeys: (_k, _f, message) => publisher.publish(message),
        settleTag: (_t, _k, _r, _f, message) => publisher.publish(message),
        settleBarrier: (_g, _f, message) => publisher.publish(message),
        onReady: Effect.sync(probe),
        pending: () => 0
      }
    }
    const kept = (keep: (delivered: boolean) => void, delivered: boolean): Effect.Effect<void> => {
      const clears = counters.recoveryClears
      keep(delivered)
      return counters.recoveryClears === clears
        ? Effect.void
        : Effect.logWarning(
            "tiercache: too many changes kept during an outage; one clear of the namespace replaces them"
          ).pipe(Effect.annotateLogs({ cache: deps.cacheName }))
    }
    const settle = (message: InvalidationMessage, keep: (delivered: boolean) => void) =>
      Effect.flatMap(publisher.send(message), (delivered) => kept(keep, delivered))

    const tierFailed = (index: number) => (error: TierError) =>
      Effect.as(access.recordError(index, error), false as const)

    /** Applies key changes to one tier; answers which were applied, or false when it failed. */
    const applyKeys = (
      tier: Tier.Service,
      index: number,
      changes: ReadonlyArray<KeyChange>
    ): Effect.Effect<ReadonlyArray<boolean> | false> => {
      const t = now()
      const asked = changes.map(
        (c): Tier.Change => ({
          key: c.key,
          entry: c.entry !== undefined && !Entry.isGone(c.entry, t) ? c.entry : undefined,
          at: c.at
        })
      )
      const applied: Effect.Effect<ReadonlyArray<boolean>, TierError> = tier.writeIfNewer !== undefined
        ? tier.writeIfNewer(asked)
        : Effect.forEach(
            asked,
            (change) =>
              Effect.flatMap(tier.get(change.key), (found) => {
                if (found._tag === "Some" && found.value.createdAt > change.at) return Effect.succeed(false)
                return Effect.as(
                  change.entry === undefined ? tier.remove([change.key]) : tier.set(change.key, change.entry),
                  true
                )
              }),
            { concurrency: 16 }
          )
      return Effect.catchAll(applied, tierFailed(index))
    }

    /** The messages that tell the other instances about replayed key changes. */
    const keyMessages = (
      changes: ReadonlyArray<KeyChange>,
      applied: ReadonlyArray<boolean>
    ): Array<InvalidationMessage> => {
      const t = now()
      const messages: Array<InvalidationMessage> = []
      const removed: Array<string> = []
      changes.forEach((c, i) => {
        const entry = c.entry
        if (c.tag !== undefined) {
          messages.push({ type: "RemoveTag", tag: c.tag, at: c.at, origin: instanceId })
        } else if (entry !== undefined && c.update && applied[i] === true && entry.expiresAt > t) {
          const ttlMs = entry.expiresAt - t
          messages.push({
            type: "Update",
            key: c.key,
            value: entry.value,
            ttl_secs: Math.ceil(ttlMs / 1000),
            ttl_ms: ttlMs,
            grace_ms: entry.staleUntil - entry.expiresAt,
            tags: entry.tags,
            origin: instanceId
          })
        } else removed.push(c.key)
      })
      for (let i = 0; i < removed.length; i += BULK) {
        const keys = removed.slice(i, i + BULK)
        messages.push(
          keys.length === 1
            ? { type: "Remove", key: keys[0]!, origin: instanceId }
            : { type: "RemoveBulk", keys, origin: instanceId }
        )
      }
      return messages
    }

    const sendAll = (messages: ReadonlyArray<InvalidationMessage>) =>
      Effect.map(Effect.forEach(messages, publisher.send, { concurrency: 16 }), (sent) =>
        sent.every((ok) => ok)
      )

    /** Replays consecutive key changes; answers whether all of them are done. */
    const replayKeys = (changes: ReadonlyArray<KeyChange>): Effect.Effect<boolean> =>
      Effect.gen(function* () {
        if (changes.length === 0) return true
        const toTiers = changes.filter((c) => c.tiers)
        const applied = new Map<KeyChange, boolean>()
        for (const c of toTiers) applied.set(c, true)
        for (let i = 0; i < access.lower.length; i++) {
          if (toTiers.length === 0) break
          const answer = yield* applyKeys(access.lower[i]!, i + 1, toTiers)
          if (answer === false) return false
          toTiers.forEach((c, j) => {
            if (answer[j] !== true) applied.set(c, false)
          })
        }
        const told = changes.filter((c) => c.bus || c.tiers)
        for (const c of toTiers) c.tiers = false
        const delivered = yield* sendAll(
          keyMessages(
            told,
            told.map((c) => applied.get(c) ?? true)
          )
        )
        if (!delivered) {
          for (const c of told) c.bus = true
          return false
        }
        for (const c of changes) {
          record.done(c)
          counters.replayed++
        }
        return true
      })

    const replayBarrier = (change: Barrier): Effect.Effect<boolean> =>
      Effect.gen(function* () {
        if (change.tiers) {
          for (let i = 0; i < access.lower.length; i++) {
            const tier = access.lower[i]!
            const ok = yield* Effect.catchAll(
              Effect.as(change.glob === undefined ? tier.clear : tier.removeMatching(change.glob), true),
              tierFailed(i + 1)
            )
            if (!ok) return false
          }
          change.tiers = false
        }
        const delivered = yield* publisher.send(
          change.glob === undefined
            ? { type: "Clear", origin: instanceId }
            : { type: "RemovePattern", pattern: change.glob, origin: instanceId }
        )
        if (!delivered) {
          change.bus = true
          return false
        }
        record.done(change)
        counters.replayed++
        return true
      })

    /** One pass over the changes kept now; answers whether every one of them is done. */
    const replayPass = Effect.gen(function* () {
      let keys: Array<KeyChange> = []
      for (const change of record.snapshot()) {
        if (change._tag === "Key") {
          keys.push(change)
          continue
        }
        if (!(yield* replayKeys(keys))) return false
        keys = []
        if (!(yield* replayBarrier(change))) return false
      }
      return yield* replayKeys(keys)
    })
    // Changes kept during a pass (later changes of the keys it replays) get passes of their own.
    const replayAll = Effect.gen(function* () {
      for (let pass = 0; pass < 5 && record.size() > 0; pass++) {
        if (!(yield* replayPass)) return
      }
    })

    const lock = yield* Effect.makeSemaphore(1)
    const replay = lock.withPermits(1)(
      Effect.suspend(() => (record.size() === 0 ? Effect.void : record.replaying(replayAll)))
    )
    const onReady = Effect.zipRight(Effect.sync(probe), replay)

    for (const tier of access.lower) {
      const ready = tier.ready
      if (ready !== undefined) yield* Effect.forkScoped(Stream.runForEach(ready, () => onReady))
    }
    yield* Effect.forkScoped(
      Effect.repeat(replay, Schedule.spaced(deps.retryInterval)).pipe(Effect.delay(deps.retryInterval))
    )

    const keyChange = (
      key: string,
      entry: Entry.Entry | undefined,
      at: number,
      update: boolean,
      tag: string | undefined,
      tiers: boolean,
      bus: boolean
    ): KeyChange => ({ _tag: "Key", key, entry, at, update, tag, tiers, bus })

    const keepKey =
      (key: string, entry: Entry.Entry | undefined, update: boolean, lowerFailed: boolean) =>
      (delivered: boolean) => {
        if (!lowerFailed && delivered && record.size() === 0) return
        record.key(
          keyChange(key, entry, entry?.createdAt ?? now(), update, undefined, lowerFailed, !delivered)
        )
      }

    return {
      settleKey: (key, entry, update, lowerFailed, message) =>
        settle(message, keepKey(key, entry, update, lowerFailed)),
      keptKey: (key, entry, update, lowerFailed, delivered) =>
        kept(keepKey(key, entry, update, lowerFailed), delivered),
      settleKeys: (keys, lowerFailed, message) =>
        settle(message, (delivered) => {
          if (!lowerFailed && delivered && record.size() === 0) return
          const at = now()
          for (const key of keys)
            record.key(keyChange(key, undefined, at, false, undefined, lowerFailed, !delivered))
        }),
      settleTag: (tag, key, entry, lowerFailed, message) =>
        settle(message, (delivered) => {
          if (!lowerFailed && delivered && record.size() === 0) return
          record.key(keyChange(key, entry, entry.createdAt, false, tag, lowerFailed, !delivered))
        }),
      settleBarrier: (glob, lowerFailed, message) =>
        settle(message, (delivered) => {
          if (!lowerFailed && delivered && record.size() === 0) return
          record.barrier({ _tag: "Barrier", glob, at: now(), tiers: lowerFailed, bus: !delivered })
        }),
      onReady,
      pending: record.size
    }
  })
