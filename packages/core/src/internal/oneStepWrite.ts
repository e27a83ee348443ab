/**
 * A write from outside (`set`, `update`), or an `invalidate`, of the usual shape, done in one
 * Effect step: a MemoryTier L1 over one lower tier whose writes and removals and the bus's
 * messages travel on one ordered stream, both started at once (Tier's `setNow` and `removeNow`,
 * InvalidationBus's `publishNow`: RedisTier and RedisInvalidationBus on one connection), both
 * breakers closed, no span to open, and no computed value of the key still being written below
 * L1. It does what writes.ts's ordered write (invalidations.ts's ordered removal) does, in the
 * same order, without its twenty-odd Effect steps and its fiber resumed through each of them:
 * the key marked changing, L1 stored (or its flight forgotten and the key removed from L1), the
 * lower call sent, the bus message sent after it; once both are answered, the change's end noted
 * (lateUpdates.ts) and the mark cleared, then each outcome recorded (breakers, counts, logs), the
 * failure when every tier failed, and the recovery step. Any other shape, or a call the tier
 * cannot start at once (a large value, a key behind an earlier large write), takes the Effect
 * way. It runs only where nothing can interrupt it (the service's `set`, `update` and
 * `invalidate` are uninterruptible): the mark is cleared when both calls are answered, however
 * they end.
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { Publisher } from "./bus.js"
import { type Changes, type Deps, thenSettle, type WriteError } from "./changes.js"
import type { L1Op } from "./everyTier.js"

/** A tier call started at once (TierAccess's `writeNow`, `removeNow`). */
interface StartedNow {
  readonly ready: () => boolean
  readonly ended: (error: TierError | undefined) => Effect.Effect<void>
}

/**
 * Builds the one-step changes of a cache, or undefined when its shape never allows one:
 * `write(key, entry, storeL1, message, update, otherwise)` writes `entry` as writes.ts's ordered
 * write would (`storeL1` storing it in L1 at once); `remove(key, atL1, message, otherwise)`
 * removes `key` as invalidations.ts's ordered removal would (`atL1` forgetting its flight and
 * removing it from L1 at once). Each answers `otherwise()` when it cannot now; either is
 * undefined when the tier cannot start it at once.
 */
export const make = (deps: Deps, changes: Changes, bus: Publisher["now"]) => {
  if (bus === undefined) return undefined
  const { versions, recovery, lateUpdates, now, instanceId } = deps
  const { failIfAllFailed, pending } = changes
  const noFailures: ReadonlyArray<TierError> = []

  /**
   * The change of `key` in one step over `tier`: `atL1` done at once, `start` handing the lower
   * call to the ordered stream (false: not started, the Effect way instead), `message` sent
   * after it; once both are answered, `end` noted, the mark cleared, then `operation`'s failure
   * when every tier failed, and `settle` (recovery's step).
   */
  const change = (
    tier: StartedNow,
    key: string,
    atL1: () => unknown,
    start: (done: (error: TierError | undefined) => void) => boolean,
    message: InvalidationMessage,
    operation: string,
    end: () => void,
    settle: (lowerFailed: boolean, delivered: boolean) => Effect.Effect<void>,
    otherwise: () => Effect.Effect<void, WriteError>
  ): Effect.Effect<void, WriteError> =>
    !tier.ready() || !bus.ready() || pending.has(key)
      ? otherwise()
      : Effect.async<void, WriteError>((resume) => {
          let left = 2
          let registering = true
          let tierError: TierError | undefined
          let delivered = false
          let busAfter: Effect.Effect<void> = Effect.void
          const finish = () => {
            end()
            versions.changed(key)
            const failures = tierError === undefined ? noFailures : [tierError]
            let effect = thenSettle(
              failIfAllFailed(key, operation, failures),
              settle(tierError !== undefined, delivered)
            )
            if (busAfter !== Effect.void) effect = Effect.zipRight(busAfter, effect)
            const recorded = tier.ended(tierError)
            resume(recorded === Effect.void ? effect : Effect.zipRight(recorded, effect))
          }
          const answered = () => {
            if (--left === 0 && !registering) finish()
          }
          // L1 first, as the Effect way: a change that throws there (a defect) sends nothing.
          versions.changing(key)
          try {
            // A MemoryTier's fast path: done at once, nothing to run.
            atL1()
          } catch (defect) {
            versions.changed(key)
            resume(Effect.die(defect))
            return
          }
          // Counted once, however often a tier of someone else's calls back (the bus's answer
          // is counted once by the publisher).
          let tierAnswered = false
          const started = start((error) => {
            if (tierAnswered) return
            tierAnswered = true
            tierError = error
            answered()
          })
          if (!started) {
            // The Effect way marks the key and does L1 again (the same change).
            versions.changed(key)
            resume(otherwise())
            return
          }
          bus.send(message, (sent, after) => {
            delivered = sent
            busAfter = after
            answered()
          })
          registering = false
          if (left === 0) finish()
        })

  const writeNow = deps.access.writeNow
  const removeNow = deps.access.removeNow
  return {
    write:
      writeNow === undefined
        ? undefined
        : (
            key: string,
            entry: Entry.Entry,
            storeL1: L1Op,
            message: InvalidationMessage,
            update: boolean,
            otherwise: () => Effect.Effect<void, WriteError>
          ): Effect.Effect<void, WriteError> =>
            change(
              writeNow,
              key,
              storeL1,
              (done) => writeNow.start(key, entry, done),
              message,
              "set",
              // As writes.ts `wrote`: noted in lateUpdates.ts's record of this instance's changes.
              () => lateUpdates.wrote(key, now()),
              (lowerFailed, delivered) => recovery.keptKey(key, entry, update, lowerFailed, delivered),
              otherwise
            ),
    remove:
      removeNow === undefined
        ? undefined
        : (
            key: string,
            atL1: () => void,
            message: InvalidationMessage,
            otherwise: () => Effect.Effect<void, WriteError>
          ): Effect.Effect<void, WriteError> =>
            change(
              removeNow,
              key,
              atL1,
              (done) => removeNow.start([key], done),
              message,
              "invalidate",
              () => lateUpdates.removed([key], now(), instanceId),
              (lowerFailed, delivered) => recovery.keptKey(key, undefined, false, lowerFailed, delivered),
              otherwise
            )
  }
}
