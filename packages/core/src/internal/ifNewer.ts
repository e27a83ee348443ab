/**
 * A change applied to a tier only when the tier holds no entry of its key created after it:
 * Tier `writeIfNewer` (one call; RedisTier's is atomic), or, for a tier without it, a read, a
 * comparison and a write or removal (not atomic). A change that lands late, after a later one,
 * must not replace it: replayed changes (replayPasses.ts) and a tag's time (invalidations.ts:
 * two invalidations of one tag whose writes land in the other order) are written this way.
 */
import { Effect } from "effect"
import type { TierError } from "../CacheError.js"
import type { Tier } from "../Tier.js"
import { forEachProbingFirst } from "./probeFirst.js"

/** Applies `changes` to `tier` unless it holds newer entries; answers which were applied. */
export const writeIfNewer = (
  tier: Tier.Service,
  changes: ReadonlyArray<Tier.Change>
): Effect.Effect<ReadonlyArray<boolean>, TierError> => {
  if (tier.writeIfNewer !== undefined) return tier.writeIfNewer(changes)
  const one = (change: Tier.Change): Effect.Effect<boolean, TierError> =>
    Effect.flatMap(tier.get(change.key), (found) => {
      if (found._tag === "Some" && found.value.createdAt > change.at) return Effect.succeed(false)
      return Effect.as(
        change.entry === undefined ? tier.remove([change.key]) : tier.set(change.key, change.entry),
        true
      )
    })
  // One change (a tag's time): no fiber of its own.
  return changes.length === 1
    ? Effect.map(one(changes[0]!), (applied) => [applied])
    : // The first alone: after an outage its call probes the tier's breaker (probeFirst.ts).
      forEachProbingFirst(changes, one, 16)
}
