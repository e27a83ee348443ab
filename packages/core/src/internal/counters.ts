/**
 * The cache's counters: plain numbers on one record (the hit path must not allocate), read by
 * observation.ts.
 */

/** Bus message counters. */
export interface BusCounters {
  sent: number
  publishFailures: number
  skipped: number
  received: number
  own: number
  malformed: number
  applied: number
  resyncs: number
}

/** Every counter of a cache. Tier indices: 0 is L1, i >= 1 the i-th tier below it. */
export interface Counters {
  l1Hits: number
  /** Hits of each tier below L1: `lowerHits[i - 1]` for tier index i. */
  readonly lowerHits: Array<number>
  coalesced: number
  misses: number
  promotions: number
  computations: number
  computeErrors: number
  decodeErrors: number
  writeFailures: number
  discardedWrites: number
  staleServed: number
  failSafeHits: number
  timeouts: number
  breakerRejections: number
  /** Changes replayed after an outage (recovery). */
  replayed: number
  /** Times the recovery record overflowed and a clear replaced it. */
  recoveryClears: number
  readonly tierErrors: Map<string, number>
  readonly bus: BusCounters
}

/** Zeroed counters for a cache with `lowerTiers` tiers below L1. */
export const make = (lowerTiers: number): Counters => ({
  l1Hits: 0,
  lowerHits: Array.from({ length: lowerTiers }, () => 0),
  coalesced: 0,
  misses: 0,
  promotions: 0,
  computations: 0,
  computeErrors: 0,
  decodeErrors: 0,
  writeFailures: 0,
  discardedWrites: 0,
  staleServed: 0,
  failSafeHits: 0,
  timeouts: 0,
  breakerRejections: 0,
  replayed: 0,
  recoveryClears: 0,
  tierErrors: new Map(),
  bus: { sent: 0, publishFailures: 0, skipped: 0, received: 0, own: 0, malformed: 0, applied: 0, resyncs: 0 }
})

/** Counts a request answered by the tier at `index` (0: L1). */
export const countHit = (counters: Counters, index: number): void => {
  if (index === 0) counters.l1Hits++
  else counters.lowerHits[index - 1]!++
}
