/**
 * The replay passes: one replay goes over the changes kept in recovery.ts's record, in the
 * order they were made, until none is left (at most five passes). Consecutive key changes are
 * applied to each lower tier (ifNewer.ts: a replayed write or removal never replaces an entry
 * created after it), then told
 * to the other instances; a pattern or clear (a barrier) removes what it matches from each lower
 * tier, then is told. A pass stops at the first tier or message that fails, the change kept.
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { Tier } from "../Tier.js"
import type { Publisher } from "./bus.js"
import type { Counters } from "./counters.js"
import { writeIfNewer } from "./ifNewer.js"
import { forEachProbingFirst } from "./probeFirst.js"
import type { Barrier, KeyChange, Record } from "./recovery.js"
import { removals } from "./removals.js"
import type { TierAccess } from "./tierAccess.js"

/** What the replay passes need. */
export interface Deps {
  readonly record: Record
  readonly access: TierAccess
  readonly publisher: Publisher
  readonly counters: Counters
  readonly instanceId: string
  readonly now: () => number
}

/** Builds one replay of the kept changes (run it under recovery's lock, `record.replaying`). */
export const make = (deps: Deps): Effect.Effect<void> => {
  const { record, access, publisher, counters, instanceId, now } = deps

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
    return Effect.catchAll(writeIfNewer(tier, asked), tierFailed(index))
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
          created_ms: entry.createdAt,
          origin: instanceId
        })
      } else removed.push(c.key)
    })
    if (removed.length > 0) messages.push(...removals(removed, instanceId))
    return messages
  }

  // The first message alone: it probes the bus's breaker, probed at once on reconnection
  // (probeFirst.ts).
  const sendAll = (messages: ReadonlyArray<InvalidationMessage>) =>
    Effect.map(forEachProbingFirst(messages, publisher.send, 16), (sent) => sent.every((ok) => ok))

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
      // A change that only missed the bus is told as a removal: the shared tier may hold a
      // newer value by now, and a receiver without a copy of its own would keep the older one.
      const delivered = yield* sendAll(
        keyMessages(
          told,
          told.map((c) => applied.get(c) ?? false)
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
  return replayAll
}
