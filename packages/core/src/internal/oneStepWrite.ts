/**
 * A write from outside (`set`, `update`) of the usual shape, done in one Effect step: a
 * MemoryTier L1 over one lower tier whose writes and the bus's messages travel on one ordered
 * stream, both started at once (Tier's `setNow`, InvalidationBus's `publishNow`: RedisTier and
 * RedisInvalidationBus on one connection), both breakers closed, no span to open, and no
 * computed value of the key still being written below L1. It does what writes.ts's ordered
 * write does, in the same order, without that write's twenty-odd Effect steps and its fiber
 * resumed through each of them: the key marked changing, L1 stored, the lower write sent, the
 * bus message sent after the write; once both are answered, the write's end noted (writes.ts
 * `wrote`) and the mark cleared, then each outcome
 * recorded (breakers, counts, logs), the failure when every tier failed, and the recovery step.
 * Any other shape, or a write the tier cannot start at once (a large value), takes writes.ts's
 * way. It runs only where nothing can interrupt it (the service's `set` and `update` are
 * uninterruptible): the mark is cleared when both calls are answered, however they end.
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import type { InvalidationMessage } from "../InvalidationMessage.js"
import type { Publisher } from "./bus.js"
import { type Changes, type Deps, thenSettle, type WriteError } from "./changes.js"
import type { L1Op } from "./everyTier.js"

/**
 * Builds the one-step write of a cache, or undefined when its shape never allows one:
 * `(key, entry, storeL1, message, update, otherwise)` writes `entry` as writes.ts's ordered
 * write would (`storeL1` storing it in L1 at once), or answers `otherwise()` when it cannot now.
 */
export const make = (
  deps: Deps,
  changes: Changes,
  bus: Publisher["now"],
  /** Notes the write's end (writes.ts `wrote`), while the key is still marked changing. */
  wrote: (key: string) => void
) => {
  const tier = deps.access.writeNow
  if (tier === undefined || bus === undefined) return undefined
  const { versions, recovery } = deps
  const { failIfAllFailed, pending } = changes
  const noFailures: ReadonlyArray<TierError> = []
  return (
    key: string,
    entry: Entry.Entry,
    storeL1: L1Op,
    message: InvalidationMessage,
    update: boolean,
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
            wrote(key)
            versions.changed(key)
            const failures = tierError === undefined ? noFailures : [tierError]
            let effect = thenSettle(
              failIfAllFailed(key, "set", failures),
              recovery.keptKey(key, entry, update, tierError !== undefined, delivered)
            )
            if (busAfter !== Effect.void) effect = Effect.zipRight(busAfter, effect)
            const recorded = tier.ended(tierError)
            resume(recorded === Effect.void ? effect : Effect.zipRight(recorded, effect))
          }
          const answered = () => {
            if (--left === 0 && !registering) finish()
          }
          // L1 first, as the Effect way: a store that throws (a defect) sends nothing.
          versions.changing(key)
          try {
            // A MemoryTier's fast path: stored at once, nothing to run.
            storeL1()
          } catch (defect) {
            versions.changed(key)
            resume(Effect.die(defect))
            return
          }
          // Counted once, however often a tier of someone else's calls back (the bus's answer
          // is counted once by the publisher).
          let tierAnswered = false
          const started = tier.start(key, entry, (error) => {
            if (tierAnswered) return
            tierAnswered = true
            tierError = error
            answered()
          })
          if (!started) {
            // The Effect way marks the key and stores L1 again (the same entry).
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
}

/** The one-step write of a cache (undefined: its shape never allows one). */
export type OneStepWrite = NonNullable<ReturnType<typeof make>>
