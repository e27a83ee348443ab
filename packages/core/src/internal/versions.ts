/**
 * Which keys changed since a read began, per key. A read that goes below L1 notes `seq` when
 * it begins; the value it found (or computed) may be stored above only if `current` still
 * holds: no write or invalidation of that key began or ended meanwhile, and none of all keys
 * (pattern, tag, clear). Writes to other keys never count.
 *
 * A change is marked twice: `changing` when it begins (the key is busy until `changed`) and
 * `changed` when it ends (the key's change time is recorded), so a read that overlaps any part
 * of it is refused.
 *
 * Change times are kept in generations of at most GENERATION keys, newest last. The last two
 * generations are always kept: a read (one call to a tier) that began before them, across at
 * least GENERATION changes, is refused. A flight's computation may run far longer, so a flight
 * is counted from `begin` to `end` and keeps every generation since it began, up to LIMIT
 * change times in all; past that the oldest generation goes anyway and the reads older than
 * it are refused. So the history costs memory only while computations are under way, and never
 * more than LIMIT keys.
 */

/** Keys per generation of change times. */
export const GENERATION = 4096

/** The most change times kept, whatever the flights under way. */
export const LIMIT = 1 << 17

/** Change tracking of one cache. */
export interface Versions {
  /** The current sequence number: what a read notes when it begins. */
  readonly seq: () => number
  /**
   * A flight begins: answers its `seq`; the change times since then are kept until `end` of
   * that number (once per `begin`), up to LIMIT.
   */
  readonly begin: () => number
  /** The flight begun at `since` ended. */
  readonly end: (since: number) => void
  /** A change of `key` begins. */
  readonly changing: (key: string) => void
  /** The change of `key` begun by `changing` ends. */
  readonly changed: (key: string) => void
  /** A change of any number of keys (pattern, tag, clear) begins. */
  readonly changingAll: () => void
  /** The change begun by `changingAll` ends. */
  readonly changedAll: () => void
  /** Whether nothing changed `key` since `since` (and no change of it is under way). */
  readonly current: (key: string, since: number) => boolean
  /** The change times held (for tests of the bound). */
  readonly size: () => number
}

const defaultSizes = { generation: GENERATION, limit: LIMIT }

/** The change times of a run of changes: `at` maps a key to its last change time in the run. */
interface Generation {
  /** The last change time recorded in this generation. */
  to: number
  readonly at: Map<string, number>
}

/** Fresh change tracking (the sizes are GENERATION and LIMIT but in tests). */
export const make = (
  sizes: { readonly generation: number; readonly limit: number } = defaultSizes
): Versions => {
  const { generation, limit } = sizes
  let seq = 0
  const busy = new Map<string, number>()
  let busyAll = 0
  let allChangedAt = 0
  /** The flights under way, by the `seq` they began at (in increasing order), with their count. */
  const open = new Map<number, number>()
  /** Oldest first; the last one takes new change times. */
  const generations: Array<Generation> = []
  /** Change times held in all generations. */
  let kept = 0
  /** A read that began before this may have missed a dropped change time: it is refused. */
  let refusedBefore = 0

  const dropOldest = () => {
    const dropped = generations.shift()!
    kept -= dropped.at.size
    refusedBefore = dropped.to
    // Flights older than that are refused now: they keep nothing any more.
    for (const since of open.keys()) {
      if (since >= refusedBefore) break
      open.delete(since)
    }
  }

  /** Drops the generations no read may need (see the module doc), then what exceeds LIMIT. */
  const prune = () => {
    while (generations.length > 2) {
      const oldestFlight = open.size === 0 ? seq : open.keys().next().value!
      if (generations[0]!.to > oldestFlight) break
      dropOldest()
    }
    while (kept > limit) dropOldest()
  }

  const record = (key: string) => {
    seq++
    let last = generations[generations.length - 1]
    if (last === undefined || last.at.size >= generation) {
      last = { to: seq, at: new Map() }
      generations.push(last)
      prune()
    }
    const before = last.at.size
    last.at.set(key, seq)
    last.to = seq
    if (last.at.size > before && ++kept > limit) prune()
  }

  return {
    seq: () => seq,
    begin: () => {
      open.set(seq, (open.get(seq) ?? 0) + 1)
      return seq
    },
    end: (since) => {
      const n = open.get(since)
      if (n === undefined) return
      if (n <= 1) open.delete(since)
      else open.set(since, n - 1)
    },
    changing: (key) => {
      busy.set(key, (busy.get(key) ?? 0) + 1)
      record(key)
    },
    changed: (key) => {
      const n = busy.get(key) ?? 1
      if (n <= 1) busy.delete(key)
      else busy.set(key, n - 1)
      record(key)
    },
    changingAll: () => {
      busyAll++
      allChangedAt = ++seq
    },
    changedAll: () => {
      busyAll--
      allChangedAt = ++seq
    },
    current: (key, since) => {
      if (busyAll > 0 || allChangedAt > since || since < refusedBefore) return false
      if (busy.size > 0 && busy.has(key)) return false
      // Newest first: the first generation holding the key has its last change time.
      for (let i = generations.length - 1; i >= 0; i--) {
        const g = generations[i]!
        if (g.to <= since) return true
        const at = g.at.get(key)
        if (at !== undefined) return at <= since
      }
      return true
    },
    size: () => kept
  }
}
