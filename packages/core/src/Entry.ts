/**
 * The record every tier stores: an encoded value and its lifetimes.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * One cached value. `value` is the encoded (JSON-safe) form: the Encoded side of a Schema for
 * typed writes. `expiresAt` is the hard expiry in epoch milliseconds; until `staleUntil`
 * (`>= expiresAt`, the end of the grace window) the entry may still be served as stale.
 *
 * @category models
 * @since 0.1.0
 */
export interface Entry {
  /** The encoded, JSON-safe value. */
  readonly value: unknown
  /** Epoch ms at which the entry stops being fresh. */
  readonly expiresAt: number
  /** Epoch ms at which the entry is gone for good (end of the grace window, `>= expiresAt`). */
  readonly staleUntil: number
  /** Tags the entry was written with. */
  readonly tags: ReadonlyArray<string>
  /** Epoch ms at which the value was written. */
  readonly createdAt: number
}

/** The tags of an entry without any: one array for all of them (an L1 keeps many entries). */
const noTags: ReadonlyArray<string> = Object.freeze([])

/**
 * Builds an entry.
 *
 * @category constructors
 * @since 0.1.0
 */
export const make = (options: {
  readonly value: unknown
  readonly now: number
  readonly ttlMs: number
  readonly graceMs?: number | undefined
  readonly tags?: ReadonlyArray<string> | undefined
}): Entry => {
  const expiresAt = options.now + options.ttlMs
  return {
    value: options.value,
    expiresAt,
    staleUntil: expiresAt + (options.graceMs ?? 0),
    tags: options.tags === undefined || options.tags.length === 0 ? noTags : options.tags,
    createdAt: options.now
  }
}

/**
 * Is the entry fresh at `now`? (A millisecond before `expiresAt`: yes; at it: no.)
 *
 * @category guards
 * @since 0.1.0
 */
export const isFresh = (entry: Entry, now: number): boolean => now < entry.expiresAt

/**
 * Is the entry still usable as stale data at `now` (past `expiresAt`, before `staleUntil`)?
 *
 * @category guards
 * @since 0.1.0
 */
export const isStale = (entry: Entry, now: number): boolean =>
  now >= entry.expiresAt && now < entry.staleUntil

/**
 * Is the entry gone at `now` (past its grace window)?
 *
 * @category guards
 * @since 0.1.0
 */
export const isGone = (entry: Entry, now: number): boolean => now >= entry.staleUntil

/**
 * Milliseconds of freshness left at `now` (0 when expired).
 *
 * @category utils
 * @since 0.1.0
 */
export const remainingMs = (entry: Entry, now: number): number => Math.max(0, entry.expiresAt - now)

/**
 * Re-bases an entry's lifetimes on the local clock from a remaining lifetime reported by a
 * tier (e.g. Redis PTTL, which counts down to `staleUntil`), so that clock skew between
 * machines cannot stretch or shorten an entry.
 *
 * @category utils
 * @since 0.1.0
 */
export const rebase = (entry: Entry, now: number, remainingUntilGoneMs: number): Entry => {
  const grace = Math.max(0, entry.staleUntil - entry.expiresAt)
  const staleUntil = now + remainingUntilGoneMs
  return {
    value: entry.value,
    expiresAt: staleUntil - grace,
    staleUntil,
    tags: entry.tags,
    createdAt: entry.createdAt
  }
}

/**
 * Scales the remaining lifetime of an entry for a tier that keeps things shorter (a TTL scale
 * in (0, 1]); the grace window is scaled alike.
 *
 * @category utils
 * @since 0.1.0
 */
export const scale = (entry: Entry, now: number, factor: number): Entry => {
  if (factor === 1) return entry
  const fresh = Math.max(0, entry.expiresAt - now)
  const grace = Math.max(0, entry.staleUntil - Math.max(now, entry.expiresAt))
  const expiresAt = now + Math.floor(fresh * factor)
  return {
    value: entry.value,
    expiresAt,
    staleUntil: expiresAt + Math.floor(grace * factor),
    tags: entry.tags,
    createdAt: entry.createdAt
  }
}

/**
 * The wire envelope of an entry, as tiers that serialize (Redis, key-value stores) store it:
 * `{"v":value,"e":expiresAt,"s":staleUntil,"t":tags,"c":createdAt}`.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Envelope = Schema.Struct({
  v: Schema.Unknown,
  e: Schema.Number,
  s: Schema.Number,
  t: Schema.optionalWith(Schema.Array(Schema.String), { default: () => [] }),
  c: Schema.Number
})

/**
 * Serializes an entry into its wire envelope (a JSON string).
 *
 * @category encoding
 * @since 0.1.0
 */
export const serialize = (entry: Entry): string =>
  JSON.stringify({
    v: entry.value,
    e: entry.expiresAt,
    s: entry.staleUntil,
    t: entry.tags,
    c: entry.createdAt
  })

const isFiniteNumber = (u: unknown): u is number => typeof u === "number" && Number.isFinite(u)

/**
 * Parses a wire envelope; anything that is not one (not JSON, wrong shape) is `undefined`.
 * Checked by hand rather than with `Envelope`: it runs on every read from a shared tier.
 *
 * @category encoding
 * @since 0.1.0
 */
export const deserialize = (raw: string): Entry | undefined => {
  let env: unknown
  try {
    env = JSON.parse(raw)
  } catch {
    return undefined
  }
  if (typeof env !== "object" || env === null || Array.isArray(env)) return undefined
  const { v, e, s, t, c } = env as Record<string, unknown>
  if (v === undefined || !isFiniteNumber(e) || !isFiniteNumber(s) || !isFiniteNumber(c) || s < e)
    return undefined
  let tags = noTags
  if (t !== undefined) {
    if (!Array.isArray(t) || !t.every((x) => typeof x === "string")) return undefined
    if (t.length > 0) tags = t
  }
  return { value: v, expiresAt: e, staleUntil: s, tags, createdAt: c }
}
