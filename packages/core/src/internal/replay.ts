/**
 * Auto-recovery: writes.ts and invalidations.ts settle every change here (its bus message is
 * sent, and the change is kept in recovery.ts's record when a lower tier failed or skipped it,
 * or the message was not delivered); the kept changes are replayed to the lower tiers and the
 * bus (replayPasses.ts), one replay at a time, when a tier or the bus reports its connection
 * ready again (the breakers are then probed at once instead of waiting out their window), and
 * every `retryInterval` while changes are kept.
 */
import { Effect, Schedule, type Scope } from "effect"
import type * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type * as Breaker from "./breaker.js"
import type { Publisher } from "./bus.js"
import type { Counters } from "./counters.js"
import * as ReadyWatch from "./readyWatch.js"
import type { KeyChange, Record } from "./recovery.js"
import * as ReplayPasses from "./replayPasses.js"
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
  /** As `settleKeys`, for messages already sent (`delivered`: whether every one was). */
  readonly keptKeys: (
    keys: ReadonlyArray<string>,
    lowerFailed: boolean,
    delivered: boolean
  ) => Effect.Effect<void>
  /** After a removal of several keys, told by `messages` (removals.ts). */
  readonly settleKeys: (
    keys: ReadonlyArray<string>,
    lowerFailed: boolean,
    messages: ReadonlyArray<InvalidationMessage>
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

/** Builds the recovery; watches the tiers' `ready` streams and retries in fibers of the scope. */
export const make = (deps: Deps): Effect.Effect<Recovery, never, Scope.Scope> =>
  Effect.gen(function* () {
    const { record, access, publisher, counters, now } = deps
    const probe = () => {
      for (const guard of access.guards ?? []) (guard as Breaker.GuardedTier).probeNow()
      publisher.probeNow()
    }
    if (record === undefined) {
      return {
        settleKey: (_k, _e, _u, _f, message) => publisher.publish(message),
        keptKey: () => Effect.void,
        keptKeys: () => Effect.void,
        settleKeys: (_k, _f, messages) =>
          messages.length === 1
            ? publisher.publish(messages[0]!)
            : Effect.forEach(messages, publisher.publish, { concurrency: 16, discard: true }),
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
    /** As `settle`, for several messages: delivered when every one was. */
    const settleAll = (messages: ReadonlyArray<InvalidationMessage>, keep: (delivered: boolean) => void) =>
      messages.length === 1
        ? settle(messages[0]!, keep)
        : Effect.flatMap(Effect.forEach(messages, publisher.send, { concurrency: 16 }), (sent) =>
            kept(
              keep,
              sent.every((ok) => ok)
            )
          )

    const replayAll = ReplayPasses.make({ ...deps, record })
    const lock = yield* Effect.makeSemaphore(1)
    // A replay that dies (what no tier's or bus's shield catches: a tier's or the bus's call
    // that interrupted itself) is logged, the changes still kept:
    // it would otherwise end the fiber that replays every retryInterval, and no kept change
    // would be replayed again. Not reached when the replaying fiber is interrupted (an
    // interrupted fiber runs no handler): the cache's close still ends it.
    const replay = lock
      .withPermits(1)(Effect.suspend(() => (record.size() === 0 ? Effect.void : record.replaying(replayAll))))
      .pipe(
        Effect.catchAllCause((cause) =>
          Effect.logError(
            "tiercache: a replay of the kept changes died; they stay kept, the next replay tries again",
            cause
          ).pipe(Effect.annotateLogs({ cache: deps.cacheName }))
        )
      )
    const onReady = Effect.zipRight(Effect.sync(probe), replay)

    for (let i = 0; i < access.lower.length; i++) {
      const ready = access.lower[i]!.ready
      if (ready !== undefined) yield* ReadyWatch.watch(ready, onReady, access.labels[i + 1]!, deps.cacheName)
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

    const keepKeys = (keys: ReadonlyArray<string>, lowerFailed: boolean) => (delivered: boolean) => {
      if (!lowerFailed && delivered && record.size() === 0) return
      const at = now()
      for (const key of keys)
        record.key(keyChange(key, undefined, at, false, undefined, lowerFailed, !delivered))
    }

    return {
      settleKey: (key, entry, update, lowerFailed, message) =>
        settle(message, keepKey(key, entry, update, lowerFailed)),
      keptKey: (key, entry, update, lowerFailed, delivered) =>
        kept(keepKey(key, entry, update, lowerFailed), delivered),
      keptKeys: (keys, lowerFailed, delivered) => kept(keepKeys(keys, lowerFailed), delivered),
      settleKeys: (keys, lowerFailed, messages) => settleAll(messages, keepKeys(keys, lowerFailed)),
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
