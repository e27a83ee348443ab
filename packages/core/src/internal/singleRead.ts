/**
 * The direct read of the usual shape, a MemoryTier L1 over one lower tier: while that tier's
 * breaker is closed over a tier that bounds its own calls, and no change is kept, the read calls
 * the tier past the breaker's wrapper (not past its span nor the recovery's gate) and keeps the
 * breaker's count itself. tierAccess.ts builds it for that shape only.
 */
import { Effect, type Option } from "effect"
import type { TierError } from "../CacheError.js"
import type * as Entry from "../Entry.js"
import type { Tier } from "../Tier.js"
import type * as Breaker from "./breaker.js"
import { type Spans, traceTier } from "./spans.js"

/**
 * The one lower tier of a MemoryTier L1, read with as few Effect steps as possible:
 * `direct()` says whether its breaker is closed over a tier that bounds its own calls, in which
 * case `get(true, key)` calls the tier itself and `failed(true, ...)` or `succeeded(true)` keeps
 * the breaker's count.
 */
export interface SingleRead {
  readonly direct: () => boolean
  readonly get: (direct: boolean, key: string) => Effect.Effect<Option.Option<Entry.Entry>, TierError>
  readonly failed: (direct: boolean, error: TierError) => Effect.Effect<void>
  /** Records a success: `Effect.void` unless the breaker changes state (its log line). */
  readonly succeeded: (direct: boolean) => Effect.Effect<void>
}

/** What the direct read is built on (tierAccess.ts's parts for tier 1). */
export interface Deps {
  /** The one lower tier as every other read calls it (breaker, spans and gate). */
  readonly tier: Tier.Service
  /** Its breaker (undefined: the breaker is off, and no read is direct). */
  readonly guard: Breaker.GuardedTier | undefined
  /** The tier's label and `system`, on its spans. */
  readonly label: string
  readonly system: string | undefined
  readonly cacheName: string
  /** The cache's spans (undefined: the `spans: false` option). */
  readonly spans: Spans | undefined
  /** The recovery's gate and whether it keeps changes now, when recovery is on. */
  readonly gate: ((tier: Tier.Service) => Tier.Service) | undefined
  readonly keeps: (() => boolean) | undefined
  /** Counts and logs a failure of tier `index` (tierAccess.ts). */
  readonly recordError: (index: number, error: TierError) => Effect.Effect<void>
}

/** Builds the direct read of the one lower tier. */
export const make = ({
  tier,
  guard,
  label,
  system,
  cacheName,
  spans,
  gate,
  keeps,
  recordError
}: Deps): SingleRead => {
  // The direct read skips the breaker's wrapper, not the span nor the gate. It is not taken
  // while changes are kept: the gate may then answer without the tier, and the direct read
  // records its answer as the tier's.
  const gated = (t: Tier.Service) => (gate === undefined ? t : gate(t))
  const innerGet = guard === undefined ? undefined : gated(guard.inner).get
  const directGet =
    guard === undefined || spans === undefined
      ? undefined
      : gated(traceTier(guard.inner, spans, cacheName, label, system)).get
  return {
    direct: () =>
      guard?.selfBounded === true && guard.state() === "closed" && (keeps === undefined || !keeps()),
    get: (direct, key) =>
      direct
        ? directGet === undefined || spans!.untraced()
          ? innerGet!(key)
          : directGet(key)
        : tier.get(key),
    failed: (direct, error) =>
      direct ? Effect.zipRight(guard!.record(false), recordError(1, error)) : recordError(1, error),
    // Usually the breaker is still closed, and recording changes nothing (Effect.void); a
    // read that began before the breaker opened closes it, with its log line.
    succeeded: (direct) => (direct ? guard!.record(true) : Effect.void)
  }
}
