/**
 * Which keys changed since a read began, per key. A read that goes below L1 notes `seq` when
 * it begins; the value it found (or computed) may be stored above only if `current` still
 * holds: no write or invalidation of that key began or ended meanwhile, and none of all keys
 * (pattern, tag, clear). Writes to other keys never count.
 *
 * A change is marked twice: `changing` when it begins (the key is busy until `changed`) and
 * `changed` when it ends (the key's change time is recorded), so a read that overlaps any part
 * of it is refused. Change times are kept in two generations of at most LIMIT keys each; a read
 * older than both generations is refused too (it would have had to run across LIMIT writes).
 */

const LIMIT = 1 << 16

/** Change tracking of one cache. */
export interface Versions {
  /** The current sequence number: what a read notes when it begins. */
  readonly seq: () => number
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
}

/** Fresh change tracking. */
export const make = (): Versions => {
  let seq = 0
  const busy = new Map<string, number>()
  let busyAll = 0
  let allChangedAt = 0
  let recent = new Map<string, number>()
  let recentFrom = 0
  let older = new Map<string, number>()
  let olderFrom = 0

  const record = (key: string) => {
    seq++
    if (recent.size >= LIMIT) {
      older = recent
      olderFrom = recentFrom
      recent = new Map()
      recentFrom = seq
    }
    recent.set(key, seq)
  }

  return {
    seq: () => seq,
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
      if (busyAll > 0 || allChangedAt > since || since < olderFrom) return false
      if (busy.size > 0 && busy.has(key)) return false
      const at = recent.get(key) ?? older.get(key)
      return at === undefined || at <= since
    }
  }
}
