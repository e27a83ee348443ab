/**
 * The removals an `Update` from another instance must not undo. An Update is dated from its
 * sender's write (`created_ms`), and the bus orders it only after its sender's earlier messages,
 * not after this instance's own invalidations nor other instances' messages: one created before
 * this instance removed its key (or at the same moment), arriving after, is a value the lower
 * tiers may no longer hold, and storing it would serve it here, on this instance only, until its
 * TTL. So this instance keeps when it last removed each key, pattern and everything (its own
 * invalidations, at their end; removals it applied, at their arrival), with the instance the
 * removal came from, and such an Update from another instance only drops the copy L1 holds (a
 * miss: the next read goes to the lower tiers, which hold what the last change left). A removal
 * from the Update's own sender came before it on the bus: it does not count, but an earlier one
 * of the key by another instance still does (a key keeps its last removal by another too).
 * An Update without a date (another implementation's: `ttl_secs`, no `created_ms`) may be older
 * than any removal: it is refused while any removal of its key by an instance other than its
 * sender is remembered, or once any removal was forgotten (a miss each; never an old value).
 * An Update applied from another instance counts as a removal by it (`updated`): to a later
 * Update of the key from a third instance, neither knows which write landed last in the lower
 * tiers (an entry created first may land last), so the later one is refused. A refused Update
 * drops the copy L1 holds, whenever that copy was created (localWrites.ts): the lower tiers
 * hold what landed last, which no date tells. Forgotten, an Update's time raises the floor of
 * dated Updates only: it removed nothing an undated Update could bring back, so Updates of many
 * keys alone never stop a busy instance from storing undated ones.
 * Times are this instance's clock, compared with the sender's: a sender whose clock runs behind
 * has more of its Updates refused (misses). One ahead would have its Updates taken as made
 * after a change they preceded; so an Update counts as made no later than WINDOW_MS before its
 * arrival: one arriving within WINDOW_MS of a change of its key here is refused whatever its
 * date, and only one arriving later than that, created before a change by a sender whose clock
 * runs ahead of it (a message that late: a replay after an outage), may still be stored (README,
 * clock skew). Bounded: past KEYS keys, PATTERNS patterns or
 * ORIGINS instances' clears the oldest is forgotten and its time becomes a floor before which
 * every Update is refused, by its date only: the window applies to the changes remembered (so
 * that a busy bus, forgetting changes within the second, does not refuse every Update); once a
 * removal (not an Update) was forgotten, every undated Update is refused.
 *
 * This instance's own writes (a set, an update, a computed value's store, each at its end) are
 * kept apart, as a key and a time, for the last WRITES keys: two instances writing a key at once,
 * another's Update whose write landed first in the lower tiers may arrive after this instance's
 * write ended, and storing it would serve here a value older than the lower tiers' (its date no
 * later than the write's: it only drops the copy L1 holds). A forgotten write's time is a floor
 * for dated Updates only; an undated Update is refused while its key's write is remembered, so
 * that writes alone never stop a busy instance from storing undated Updates.
 */

/** Keys whose last removal is kept. */
export const KEYS = 8192

/** Patterns whose last removal is kept. */
export const PATTERNS = 64

/** Instances whose last clear is kept. */
export const ORIGINS = 64

/** Keys whose last write by this instance is kept. */
export const WRITES = 4096

/**
 * Milliseconds of this instance's clock: an Update arriving within them of a change of its key
 * here (a removal, an Update applied from another instance, this instance's own write) is
 * refused whatever its date. Which of two changes made this close together landed last in the
 * lower tiers, neither their dates (two clocks, and an entry created first may land last) nor
 * their arrival tells; the lower tiers do.
 */
export const WINDOW_MS = 1000

/**
 * The sender of an Update that names no `origin` (the Rust crate, an older sender): several
 * instances may be it, so its earlier Update of a key is not taken as one sender's, whose order
 * the bus keeps, within WINDOW_MS (as another instance's change is); past that, it is.
 */
export const NAMELESS = "\u0000an updater that named no origin"

/** A removal: when (this instance's clock), and which instance made it. */
interface Removal {
  readonly at: number
  readonly origin: string
}

/**
 * A key's last removal, and the last one by any other instance (`byOthers`): an Update from the
 * last remover may still be refused by an earlier removal of another's (times only grow).
 * `removed`: whether a removal proper of the key (not only Updates: see `updated`) was noted.
 */
interface KeyRemoval extends Removal {
  readonly byOthers: number
  readonly removed: boolean
}

/** The removal times of one cache. */
export interface LateUpdates {
  /** `keys` were removed at `at` by instance `origin`. */
  readonly removed: (keys: ReadonlyArray<string>, at: number, origin: string) => void
  /**
   * An Update of `key` from instance `origin` was applied (or refused) here at `at`: to a later
   * Update of the key from another instance it counts as a removal, but, forgotten, it refuses
   * only dated Updates (by the floor), never undated ones, which it did not remove.
   */
  readonly updated: (key: string, at: number, origin: string) => void
  /** The keys matching a pattern were removed at `at` by instance `origin`. */
  readonly removedMatching: (matches: (key: string) => boolean, at: number, origin: string) => void
  /** Every key was removed at `at` by instance `origin` (a clear). */
  readonly removedAll: (at: number, origin: string) => void
  /** This instance ended a write of `key` (set, update, a computed value's store) at `at`. */
  readonly wrote: (key: string, at: number) => void
  /**
   * Whether `key` was removed at or after `created` by an instance other than `origin` (an
   * Update `origin` created then is refused), or within WINDOW_MS before `arrival` (the Update's
   * arrival, this instance's clock), or its removal was forgotten (see the bounds).
   * An undated Update (`created` undefined: another implementation's, `ttl_secs` and no
   * `created_ms`) may be older than any removal: it is refused when any removal of its key by
   * another instance is remembered (of the key, by a pattern, a clear, a resync), or any was
   * forgotten.
   */
  readonly refuses: (key: string, created: number | undefined, origin: string, arrival: number) => boolean
}

/**
 * How the removal maps are made: `new Map`, replaced only by a test that counts the steps of their
 * walks (a Map does not report them). Read once per cache, when it is built.
 */
export const maps = { make: <V>(): Map<string, V> => new Map<string, V>() }

/** No removal yet. */
export const make = (): LateUpdates => {
  /** Oldest first (a key removed again moves to the end). */
  const keys = maps.make<KeyRemoval>()
  const patterns: Array<Removal & { readonly matches: (key: string) => boolean }> = []
  /** Each instance's last clear, oldest first. */
  const clears = maps.make<number>()
  /**
   * This instance's last write of each key, in two generations of at most WRITES / 2 keys: when
   * the newer one fills, the older is forgotten at once (no walk per write) and its latest time
   * becomes the floor of writes.
   */
  let writes = maps.make<number>()
  let lastWrite = Number.NEGATIVE_INFINITY
  let olderWrites = maps.make<number>()
  let olderLastWrite = Number.NEGATIVE_INFINITY
  let floor = Number.NEGATIVE_INFINITY
  /** Whether a removal proper (of a key, a pattern, a clear) was forgotten: undated Updates are refused. */
  let removalForgotten = false
  /** The time of the last write forgotten: dated Updates created no later are refused. */
  let writeFloor = Number.NEGATIVE_INFINITY
  const raise = (at: number) => {
    if (at > floor) floor = at
  }
  /**
   * Forgets the oldest entries of `map` past `bound`, each handed to `forget`. One walk
   * from the oldest: a Map's first entry is found past the ones deleted before it, so asking for
   * it anew after each deletion costs the square of a large batch.
   */
  const forgetBeyond = <V>(map: Map<string, V>, bound: number, forget: (value: V) => void) => {
    let excess = map.size - bound
    for (const [oldest, value] of map) {
      if (excess-- <= 0) break
      map.delete(oldest)
      forget(value)
    }
  }
  /** A key's change forgotten: its time is the floor; a removal proper refuses undated Updates. */
  const forgetKey = (removal: KeyRemoval) => {
    raise(removal.at)
    if (removal.removed) removalForgotten = true
  }
  /** A pattern's or a clear's removal forgotten. */
  const forgetClear = (at: number) => {
    raise(at)
    removalForgotten = true
  }
  /** Notes a change of `key` at `at` by `origin`; `removal`: a removal proper, not an Update. */
  const note = (key: string, at: number, origin: string, removal: boolean) => {
    const last = keys.get(key)
    const byOthers =
      last === undefined
        ? Number.NEGATIVE_INFINITY
        : last.origin === origin
          ? last.byOthers
          : Math.max(last.at, last.byOthers)
    keys.delete(key)
    keys.set(key, {
      at,
      origin,
      byOthers,
      removed: removal || last?.removed === true
    })
  }
  const covers = (removal: Removal | undefined, created: number, origin: string) =>
    removal !== undefined && removal.at >= created && removal.origin !== origin
  return {
    removed: (removedKeys, at, origin) => {
      for (const key of removedKeys) note(key, at, origin, true)
      forgetBeyond(keys, KEYS, forgetKey)
    },
    updated: (key, at, origin) => {
      note(key, at, origin, false)
      forgetBeyond(keys, KEYS, forgetKey)
    },
    removedMatching: (matches, at, origin) => {
      patterns.push({ matches, at, origin })
      while (patterns.length > PATTERNS) forgetClear(patterns.shift()!.at)
    },
    removedAll: (at, origin) => {
      clears.delete(origin)
      clears.set(origin, at)
      forgetBeyond(clears, ORIGINS, forgetClear)
    },
    wrote: (key, at) => {
      writes.set(key, at)
      if (at > lastWrite) lastWrite = at
      if (writes.size >= WRITES / 2) {
        if (olderLastWrite > writeFloor) writeFloor = olderLastWrite
        olderWrites = writes
        olderLastWrite = lastWrite
        writes = maps.make<number>()
        lastWrite = Number.NEGATIVE_INFINITY
      }
    },
    refuses: (key, created, origin, arrival) => {
      // The floors, by its date: a forgotten change may have been of any key, and under 8,192
      // changes a second the window would refuse every Update.
      if (created === undefined ? removalForgotten : created <= floor) return true
      if (created !== undefined && created <= writeFloor) return true
      // The changes remembered of its key (and patterns, clears): a dated Update counts as made no
      // later than WINDOW_MS before its arrival.
      const dated = created === undefined ? undefined : Math.min(created, arrival - WINDOW_MS)
      const written = writes.get(key) ?? olderWrites.get(key)
      if (written !== undefined && (dated === undefined || written >= dated)) return true
      const since = dated ?? Number.NEGATIVE_INFINITY
      const last = keys.get(key)
      if (covers(last, since, origin)) return true
      // A nameless sender's earlier Update of the key may have been another's, made this close.
      if (origin === NAMELESS && last?.origin === NAMELESS && last.at >= (dated ?? arrival - WINDOW_MS))
        return true
      if (last !== undefined && last.byOthers > Number.NEGATIVE_INFINITY && last.byOthers >= since)
        return true
      for (const [by, at] of clears) if (by !== origin && at >= since) return true
      for (const p of patterns) if (covers(p, since, origin) && p.matches(key)) return true
      return false
    }
  }
}
