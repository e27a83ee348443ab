/**
 * A call's write and compute options (ttl or strategy, grace, tags, timeouts) resolved against
 * the cache's defaults, in milliseconds. Options met before are not resolved again: options
 * whose durations are all text or numbers are remembered by their text (a new object per call,
 * such as `{ ttl: "1 hour" }`), any other options object by identity, as long as its fields are
 * unchanged; options with a `[seconds, nanos]` duration, which can change in place, every time.
 */
import { CacheInputError } from "../CacheError.js"
import * as CacheStrategy from "../CacheStrategy.js"
import * as Entry from "../Entry.js"
import type { ComputeOptions, WriteOptions } from "../TieredCache.js"
import {
  checkedTags,
  describe,
  durationMillis,
  lifetimeError,
  lifetimeMillis,
  unreadable
} from "./validate.js"

/** A write's options resolved: milliseconds and tags. */
export interface ResolvedWrite {
  readonly ttlMs: number
  readonly graceMs: number
  readonly tags: ReadonlyArray<string>
}

/**
 * The entry of `value` written at `now` under `resolved`, created at `createdAt` (default `now`;
 * a computed value's is when its computation started). Its fields are passed one by one, not
 * spread from `resolved`: on the write path an object spread cost about 0.5 us more a write
 * (setTrace marks).
 */
export const entryOf = (
  value: unknown,
  now: number,
  resolved: ResolvedWrite,
  createdAt: number = now
): Entry.Entry => {
  const made = Entry.make({
    value,
    now,
    ttlMs: resolved.ttlMs,
    graceMs: resolved.graceMs,
    tags: resolved.tags
  })
  return createdAt === now
    ? made
    : {
        value: made.value,
        expiresAt: made.expiresAt,
        staleUntil: made.staleUntil,
        tags: made.tags,
        createdAt
      }
}

/** Computation timeouts in milliseconds (undefined: none). */
export interface ResolvedTimeouts {
  readonly softMs: number | undefined
  readonly hardMs: number | undefined
}

/** A getOrCompute's options resolved. */
export interface ResolvedCompute extends ResolvedWrite, ResolvedTimeouts {}

const parsed = new Map<string, number>()

/**
 * `durationMillis` (or, for an entry's TTL and grace, `lifetimeMillis`), with the milliseconds
 * of duration strings kept (a TTL string such as "1 hour" is parsed once, not on every call).
 */
const millisOf = (
  input: unknown,
  option: string,
  allowZero = false,
  lifetime = false
): number | CacheInputError => {
  const check = lifetime ? lifetimeMillis : durationMillis
  if (typeof input !== "string") return check(input, option, allowZero)
  const known = parsed.get(input)
  if (known !== undefined) return known
  const ms = check(input, option, allowZero)
  // Only durations of 1 ms or more are kept: they are valid wherever zero is or is not, and as
  // a lifetime or a timeout alike.
  if (typeof ms === "number" && ms >= 1) {
    if (parsed.size >= 256) parsed.clear()
    parsed.set(input, ms)
  }
  return ms
}

/** Resolves computation timeouts (soft must not exceed hard). */
export const resolveTimeouts = (
  t: { readonly soft?: unknown; readonly hard?: unknown } | undefined
): ResolvedTimeouts | CacheInputError => {
  if (t === undefined) return { softMs: undefined, hardMs: undefined }
  const bad = notAnObject(t, "timeouts")
  if (bad) return bad
  const softMs = t.soft === undefined ? undefined : millisOf(t.soft, "timeouts.soft")
  if (softMs instanceof CacheInputError) return softMs
  const hardMs = t.hard === undefined ? undefined : millisOf(t.hard, "timeouts.hard")
  if (hardMs instanceof CacheInputError) return hardMs
  if (softMs !== undefined && hardMs !== undefined && softMs > hardMs) {
    return new CacheInputError({
      problem: "InvalidTtl",
      reason: "timeouts.soft must not exceed timeouts.hard"
    })
  }
  return { softMs, hardMs }
}

/** A part of the options that is not an object (null, a string... from plain JS): its error. */
const notAnObject = (value: unknown, what: string): CacheInputError | undefined =>
  typeof value === "object" && value !== null
    ? undefined
    : new CacheInputError({
        problem: "InvalidOption",
        reason: `${what} must be an object, got ${describe(value)}`
      })

/** The defaults a call's options fall back on. */
export interface Defaults {
  readonly defaultTtl: number
  readonly defaultGrace: number
  readonly defaultTimeouts: ResolvedTimeouts
  /** How long a tag's invalidation time is kept: the longest lifetime of a tagged entry. */
  readonly tagRetention: number
}

const noTags: ReadonlyArray<string> = Object.freeze([])
const byDefaults = new WeakMap<Defaults, ResolvedCompute>()

/** The options of a call without any: the defaults (one record per cache). */
const resolvedDefaults = (defaults: Defaults): ResolvedCompute => {
  let r = byDefaults.get(defaults)
  if (r === undefined) {
    r = {
      ttlMs: defaults.defaultTtl,
      graceMs: defaults.defaultGrace,
      tags: noTags,
      softMs: defaults.defaultTimeouts.softMs,
      hardMs: defaults.defaultTimeouts.hardMs
    }
    byDefaults.set(defaults, r)
  }
  return r
}

/**
 * A call's options resolved by `resolve`, or the defaults without any; options whose getters
 * throw (plain JS) are an InvalidOption.
 */
const resolving = <O, A>(
  defaults: Defaults,
  opts: O | undefined,
  resolve: (defaults: Defaults, opts: O) => A | CacheInputError
): A | ResolvedCompute | CacheInputError => {
  if (opts === undefined) return resolvedDefaults(defaults)
  try {
    return resolve(defaults, opts)
  } catch (cause) {
    return unreadable("options", "InvalidOption", cause)
  }
}

/** Resolves a write's options against the cache's defaults. */
export const resolveWrite = (
  defaults: Defaults,
  opts: WriteOptions | undefined
): ResolvedWrite | CacheInputError => resolving(defaults, opts, resolveWriteOf)

/** `resolveWrite` of options that are there. */
const resolveWriteOf = (defaults: Defaults, opts: WriteOptions): ResolvedWrite | CacheInputError =>
  notAnObject(opts, "options") ?? textOnly(defaults, opts) ?? resolveWriteAnew(defaults, opts)

const resolveWriteAnew = (defaults: Defaults, opts: WriteOptions): ResolvedWrite | CacheInputError => {
  if (opts.ttl !== undefined && opts.strategy !== undefined) {
    return new CacheInputError({ problem: "InvalidOption", reason: "give either ttl or strategy, not both" })
  }
  let ttlMs = defaults.defaultTtl
  if (opts.ttl !== undefined) {
    const t = millisOf(opts.ttl, "ttl", false, true)
    if (typeof t !== "number") return t
    ttlMs = t
  } else if (opts.strategy !== undefined) {
    if (!CacheStrategy.isCacheStrategy(opts.strategy)) {
      return new CacheInputError({ problem: "InvalidOption", reason: "strategy must be a CacheStrategy" })
    }
    const t = lifetimeMillis(CacheStrategy.toDurationInput(opts.strategy), "strategy TTL")
    if (typeof t !== "number") return t
    ttlMs = t
  }
  let graceMs = defaults.defaultGrace
  if (opts.grace !== undefined) {
    const g = millisOf(opts.grace, "grace", true, true)
    if (typeof g !== "number") return g
    graceMs = g
  }
  // A copy, checked and kept: the entry (its L1 copy, its bus message) must keep the tags it was
  // written with when the caller reuses and changes its array for the next call.
  const tags = opts.tags === undefined ? noTags : checkedTags(opts.tags)
  if (tags instanceof CacheInputError) return tags
  const bad = lifetimeError(ttlMs, graceMs)
  if (bad) return bad
  // A tagged entry outliving its tags' invalidation times (kept `tagRetention` in the lower
  // tiers) would be read as valid again, by an instance that has not met the tag, once they expire.
  if (tags.length > 0 && ttlMs + graceMs > defaults.tagRetention) {
    return new CacheInputError({
      problem: "InvalidTtl",
      reason: `ttl plus grace of a tagged entry must be at most the cache's tagRetention (${defaults.tagRetention} ms), got ${ttlMs + graceMs} ms`
    })
  }
  return { ttlMs, graceMs, tags: tags.length === 0 ? noTags : tags }
}

/** Resolves a getOrCompute's options against the cache's defaults. */
export const resolveCompute = (
  defaults: Defaults,
  opts: ComputeOptions | undefined
): ResolvedCompute | CacheInputError => resolving(defaults, opts, resolveComputeOf)

/** `resolveCompute` of options that are there. */
const resolveComputeOf = (defaults: Defaults, opts: ComputeOptions): ResolvedCompute | CacheInputError => {
  const bad = notAnObject(opts, "options")
  if (bad) return bad
  const byItsText = textOnly(defaults, opts)
  if (byItsText !== undefined) return byItsText
  const known = byOptions.get(opts)
  if (known !== undefined && sameOptions(known, defaults, opts)) return known.resolved
  // Checked as an object and past textOnly already: the write's part resolved anew.
  const write = resolveWriteAnew(defaults, opts)
  if (write instanceof CacheInputError) return write
  const t = opts?.timeouts === undefined ? defaults.defaultTimeouts : resolveTimeouts(opts.timeouts)
  if (t instanceof CacheInputError) return t
  const resolved = { ...write, softMs: t.softMs, hardMs: t.hardMs }
  // A duration given as a `[seconds, nanos]` tuple can change in place, unseen by `sameOptions`
  // (it compares fields by identity): such options are resolved on every call.
  if (!hasTuple(opts)) byOptions.set(opts, remember(defaults, opts, resolved))
  return resolved
}

/** Whether any of the options' durations is an array (a `[seconds, nanos]` tuple). */
const hasTuple = (opts: ComputeOptions): boolean =>
  Array.isArray(opts.ttl) ||
  Array.isArray(opts.grace) ||
  Array.isArray(opts.timeouts?.soft) ||
  Array.isArray(opts.timeouts?.hard)

const byText = new WeakMap<Defaults, Map<string, ResolvedCompute>>()

/** A duration given as a number or a string, as a part of a key; undefined for anything else. */
const durationPart = (d: unknown): string | undefined =>
  d === undefined
    ? "-"
    : typeof d === "number"
      ? `n${d}`
      : typeof d === "string" && !d.includes("\u0000")
        ? `s${d}`
        : undefined

/**
 * Options whose durations are all numbers or strings and that carry no tags or strategy
 * (`{ ttl: "1 hour" }`, `{ ttl: "1 hour", timeouts: { hard: "2 seconds" } }`: often a new object
 * per call): resolved once per cache and text of the options. Undefined for any other options,
 * or for options that do not resolve (the full resolution then names the problem).
 */
const textOnly = (defaults: Defaults, opts: WriteOptions & ComputeOptions): ResolvedCompute | undefined => {
  if (opts.strategy !== undefined || opts.tags !== undefined) return undefined
  const timeouts = opts.timeouts
  // Not an object: not cached (it would share the text of `{}`); the full resolution refuses it.
  if (timeouts !== undefined && (typeof timeouts !== "object" || timeouts === null)) return undefined
  const ttlIn = opts.ttl
  const graceIn = opts.grace
  const softIn = timeouts?.soft
  const hardIn = timeouts?.hard
  const ttl = durationPart(ttlIn)
  const grace = durationPart(graceIn)
  const soft = durationPart(softIn)
  const hard = durationPart(hardIn)
  if (ttl === undefined || grace === undefined || soft === undefined || hard === undefined) return undefined
  const text = `${ttl}\u0000${grace}\u0000${timeouts === undefined ? "" : `${soft}\u0000${hard}`}`
  let known = byText.get(defaults)
  const hit = known?.get(text)
  if (hit !== undefined) return hit
  // Resolved from the values read above, the options not read again: what is kept under the text
  // is what the text says (a getter answering otherwise on a second read, tags say, put its
  // answer on every later call with the same text).
  const write = resolveWriteAnew(defaults, { ttl: ttlIn, grace: graceIn })
  if (write instanceof CacheInputError) return undefined
  const t =
    timeouts === undefined ? defaults.defaultTimeouts : resolveTimeouts({ soft: softIn, hard: hardIn })
  if (t instanceof CacheInputError) return undefined
  const resolved = { ...write, softMs: t.softMs, hardMs: t.hardMs }
  if (known === undefined) {
    known = new Map()
    byText.set(defaults, known)
  }
  if (known.size >= 256) known.clear()
  known.set(text, resolved)
  return resolved
}

/** An options object as it was resolved, field by field (it may be changed between calls). */
interface Remembered {
  readonly defaults: Defaults
  readonly ttl: unknown
  readonly strategy: unknown
  readonly grace: unknown
  readonly tags: unknown
  readonly tagList: ReadonlyArray<unknown> | undefined
  readonly timeouts: unknown
  readonly soft: unknown
  readonly hard: unknown
  readonly resolved: ResolvedCompute
}

const byOptions = new WeakMap<object, Remembered>()

const remember = (defaults: Defaults, opts: ComputeOptions, resolved: ResolvedCompute): Remembered => ({
  defaults,
  ttl: opts.ttl,
  strategy: opts.strategy,
  grace: opts.grace,
  tags: opts.tags,
  tagList: Array.isArray(opts.tags) ? [...opts.tags] : undefined,
  timeouts: opts.timeouts,
  soft: opts.timeouts?.soft,
  hard: opts.timeouts?.hard,
  resolved
})

const sameOptions = (r: Remembered, defaults: Defaults, opts: ComputeOptions): boolean => {
  if (
    r.defaults !== defaults ||
    r.ttl !== opts.ttl ||
    r.strategy !== opts.strategy ||
    r.grace !== opts.grace ||
    r.tags !== opts.tags ||
    r.timeouts !== opts.timeouts ||
    r.soft !== opts.timeouts?.soft ||
    r.hard !== opts.timeouts?.hard
  ) {
    return false
  }
  const tags = opts.tags
  if (r.tagList === undefined || tags === undefined) return r.tagList === undefined && tags === undefined
  if (tags.length !== r.tagList.length) return false
  for (let i = 0; i < tags.length; i++) if (tags[i] !== r.tagList[i]) return false
  return true
}
