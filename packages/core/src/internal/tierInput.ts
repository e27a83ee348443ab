/**
 * The checks of a tier call's arguments, for callers that ignore the types (plain JavaScript):
 * every tier of the packages (MemoryTier, KeyValueStoreTier, RedisTier, the testing tiers) is
 * built through {@link withInputChecks}, so that a bad argument is one `TierError` naming it,
 * before the tier runs: nothing is written, no batch is written in part. TieredCache checks its
 * callers' input itself; its own calls pass these checks.
 *
 * Each check answers the problem as the tail of a reason (`" must be a string, got 42"`,
 * `".createdAt must be a finite number..."`), built only when there is one: a good argument
 * costs a few `typeof` checks and allocates nothing (a value that is an object or an array is
 * walked, as TieredCache walks it, to tell it survives JSON).
 */
import { Effect } from "effect"
import { TierError } from "../CacheError.js"
import type { Entry } from "../Entry.js"
import type { Tier } from "../Tier.js"
import { describe } from "./describe.js"
import { plainTier } from "./plainTier.js"
import { jsonError } from "./validateValue.js"
import { isWellFormed } from "./wellFormed.js"

/**
 * Options of {@link withInputChecks}.
 *
 * @internal
 */
export interface Options {
  /**
   * Refuse keys and globs with a lone surrogate, for a tier that stores text as UTF-8 (Redis),
   * where `"k\uD800"` and `"k\uDBFF"` would both become `"k\uFFFD"`: one key. Default false (a
   * tier that holds JavaScript strings keeps them apart).
   */
  readonly wellFormedKeys?: boolean | undefined
}

/**
 * Where a checked tier keeps the tier it wraps (a property that is not enumerable), with itself:
 * `TieredCache` calls that one (see {@link unchecked}), only when it was given the checked tier
 * itself. A tier that inherits the property (`Object.create(checked)`, a Proxy of it) has methods
 * of its own, which the cache must call.
 */
const UncheckedTypeId: unique symbol = Symbol.for("@tiercache/core/Tier/unchecked")

interface Unchecked {
  readonly checked: Tier.Service
  readonly tier: Tier.Service
}

/**
 * The tier that `tier` checks the arguments of, or `tier` itself when it is not a checked one.
 * `TieredCache` calls its tiers through this: it checks its own callers' input before any tier
 * call, and its calls carry only keys and entries it made or decoded, so checking them again
 * would cost every write a second walk of its value (about 1 us for a 200-byte object).
 *
 * @internal
 */
export const unchecked = (tier: Tier.Service): Tier.Service => {
  const inside = (tier as { readonly [UncheckedTypeId]?: Unchecked })[UncheckedTypeId]
  return inside !== undefined && inside.checked === tier ? inside.tier : tier
}

/** What a check answers: the tail of the reason, or undefined when the argument is good. */
type Problem = string | undefined

const causeText = (cause: unknown): string => (cause instanceof Error ? cause.message : describe(cause))

/** A reason for an argument whose inspection threw (a Proxy's trap, a getter). */
const unreadable = (what: string, cause: unknown): string => `${what} could not be read: ${causeText(cause)}`

/** The problem of a key: not a string, or (with `wellFormed`) one with a lone surrogate. */
const keyProblem = (key: unknown, wellFormed: boolean): Problem =>
  typeof key !== "string"
    ? ` must be a string, got ${describe(key)}`
    : wellFormed && !isWellFormed(key)
      ? ` must be well-formed UTF-16 (it has a lone surrogate, which UTF-8 cannot hold), got ${describe(key)}`
      : undefined

/** The problem of a list of keys: not an array, or a member that is no key. */
const keysProblem = (keys: unknown, wellFormed: boolean): Problem => {
  if (!Array.isArray(keys)) return ` must be an array of strings, got ${describe(keys)}`
  for (let i = 0; i < keys.length; i++) {
    const p = keyProblem(keys[i], wellFormed)
    if (p !== undefined) return `[${i}]${p}`
  }
  return undefined
}

const timeProblem = (field: string, t: unknown): Problem =>
  typeof t === "number" && Number.isFinite(t)
    ? undefined
    : `.${field} must be a finite number (epoch ms), got ${describe(t)}`

/** Whether a value is JSON as it is, without a walk (the usual scalar values). */
const isPlainScalar = (value: unknown): boolean =>
  typeof value === "string" ||
  typeof value === "boolean" ||
  value === null ||
  (typeof value === "number" && Number.isFinite(value))

/**
 * The problem of an entry's shape: not an object, a time that is not a finite number,
 * `staleUntil` before `expiresAt`, tags that are not an array of strings. Its value is not
 * walked: this is what the cache checks of a tier's answer, on every read (tierDefects.ts).
 *
 * @internal
 */
export const entryShapeProblem = (entry: unknown): Problem => {
  if (typeof entry !== "object" || entry === null) {
    return ` must be an Entry (an object with value, expiresAt, staleUntil, tags and createdAt), got ${describe(entry)}`
  }
  const { expiresAt, staleUntil, tags, createdAt } = entry as Entry
  const time =
    timeProblem("expiresAt", expiresAt) ??
    timeProblem("staleUntil", staleUntil) ??
    timeProblem("createdAt", createdAt)
  if (time !== undefined) return time
  if (staleUntil < expiresAt) {
    return `.staleUntil must not be before its expiresAt, got ${staleUntil} < ${expiresAt}`
  }
  if (!Array.isArray(tags)) return `.tags must be an array of strings, got ${describe(tags)}`
  for (let i = 0; i < tags.length; i++) {
    if (typeof tags[i] !== "string") return `.tags[${i}] must be a string, got ${describe(tags[i])}`
  }
  return undefined
}

/**
 * The problem of an entry: its shape's ({@link entryShapeProblem}), or a value that JSON cannot
 * hold (the Entry's `value` is the encoded, JSON-safe form).
 */
const entryProblem = (entry: unknown): Problem => {
  const shape = entryShapeProblem(entry)
  if (shape !== undefined) return shape
  const { value } = entry as Entry
  if (isPlainScalar(value)) return undefined
  const bad = jsonError(value)
  // jsonError names the path from `value` ("value.a is a bigint, ...").
  return bad === undefined ? undefined : `.${bad.reason}`
}

/** The problem of `setMany`'s argument: not an array of [key, entry] pairs. */
const entriesProblem = (entries: unknown, wellFormed: boolean): Problem => {
  if (!Array.isArray(entries)) return ` must be an array of [key, entry] pairs, got ${describe(entries)}`
  for (let i = 0; i < entries.length; i++) {
    const pair: unknown = entries[i]
    if (!Array.isArray(pair)) return `[${i}] must be a [key, entry] pair, got ${describe(pair)}`
    const p = keyProblem(pair[0], wellFormed)
    if (p !== undefined) return `[${i}][0]${p}`
    const e = entryProblem(pair[1])
    if (e !== undefined) return `[${i}][1]${e}`
  }
  return undefined
}

/** The problem of `writeIfNewer`'s argument: not an array of changes ({ key, entry, at }). */
const changesProblem = (changes: unknown, wellFormed: boolean): Problem => {
  if (!Array.isArray(changes)) return ` must be an array of changes, got ${describe(changes)}`
  for (let i = 0; i < changes.length; i++) {
    const change: unknown = changes[i]
    if (typeof change !== "object" || change === null) {
      return `[${i}] must be a change ({ key, entry, at }), got ${describe(change)}`
    }
    const { key, entry, at } = change as Tier.Change
    const p = keyProblem(key, wellFormed)
    if (p !== undefined) return `[${i}].key${p}`
    const t = timeProblem("at", at)
    if (t !== undefined) return `[${i}]${t}`
    // undefined: a removal.
    const e = entry === undefined ? undefined : entryProblem(entry)
    if (e !== undefined) return `[${i}].entry${e}`
  }
  return undefined
}

/** `check` of an argument, with an inspection that throws (a Proxy, a getter) as a problem. */
const guarded = (what: string, check: () => Problem): string | undefined => {
  try {
    const p = check()
    return p === undefined ? undefined : `${what}${p}`
  } catch (cause) {
    return unreadable(what, cause)
  }
}

/**
 * `tier` with its callers' arguments checked before each call: a key that is not a string (with
 * `wellFormedKeys`, one with a lone surrogate), a list that is not an array or has a bad member,
 * an entry that is not a well-formed {@link Entry} (times that are not finite numbers,
 * `staleUntil` before `expiresAt`, tags that are not strings, a value JSON cannot hold), a glob
 * that is not a string, a change without a finite `at`: the call fails with a `TierError` of the
 * operation whose reason names the argument, and the tier is not called (nothing is written,
 * no batch in part). `setThen` and `removeThen` answer that error and still run `then`, once.
 * Every other field of `tier` (a memory tier's fast path, a test tier's controls) is kept as it
 * is.
 *
 * @internal
 */
export const withInputChecks = <T extends Tier.Service>(tier: T, options?: Options): T => {
  const wellFormed = options?.wellFormedKeys === true
  // Every member as a field of its own, a class's methods bound to it (plainTier.ts).
  const inner = plainTier(tier)
  const name = inner.name
  const refusal = (operation: string, reason: string) => new TierError({ tier: name, operation, reason })
  const refuse = (operation: string, reason: string) => Effect.fail(refusal(operation, reason))
  /** A key's problem, read once: the hot path of `get` is one `typeof` (and the UTF-16 check). */
  const badKey = (key: unknown): string | undefined => {
    const p = keyProblem(key, wellFormed)
    return p === undefined ? undefined : `key${p}`
  }
  const badKeyAndEntry = (key: unknown, entry: unknown): string | undefined =>
    badKey(key) ?? guarded("entry", () => entryProblem(entry))

  const checked: Tier.Service = {
    // The tier's own fields (a memory tier's fast path, a test tier's controls), then its members.
    ...tier,
    ...inner,
    get: (key) => {
      const bad = badKey(key)
      return bad === undefined ? inner.get(key) : refuse("get", bad)
    },
    getMany: (keys) => {
      const bad = guarded("keys", () => keysProblem(keys, wellFormed))
      return bad === undefined ? inner.getMany(keys) : refuse("getMany", bad)
    },
    set: (key, entry) => {
      const bad = badKeyAndEntry(key, entry)
      return bad === undefined ? inner.set(key, entry) : refuse("set", bad)
    },
    setMany: (entries) => {
      const bad = guarded("entries", () => entriesProblem(entries, wellFormed))
      return bad === undefined ? inner.setMany(entries) : refuse("setMany", bad)
    },
    remove: (keys) => {
      const bad = guarded("keys", () => keysProblem(keys, wellFormed))
      return bad === undefined ? inner.remove(keys) : refuse("remove", bad)
    },
    removeMatching: (glob) => {
      const p = keyProblem(glob, wellFormed)
      return p === undefined ? inner.removeMatching(glob) : refuse("removeMatching", `glob${p}`)
    },
    ...(inner.writeIfNewer === undefined
      ? {}
      : {
          writeIfNewer: (changes: ReadonlyArray<Tier.Change>) => {
            const bad = guarded("changes", () => changesProblem(changes, wellFormed))
            return bad === undefined ? inner.writeIfNewer!(changes) : refuse("writeIfNewer", bad)
          }
        }),
    ...(inner.setThen === undefined
      ? {}
      : {
          setThen: <A>(key: string, entry: Entry, then: Effect.Effect<A>) => {
            const bad = badKeyAndEntry(key, entry)
            if (bad === undefined) return inner.setThen!(key, entry, then)
            const error = refusal("set", bad)
            return Effect.map(then, (a) => [error, a] as const)
          }
        }),
    ...(inner.removeThen === undefined
      ? {}
      : {
          removeThen: <A>(keys: ReadonlyArray<string>, then: Effect.Effect<A>) => {
            const bad = guarded("keys", () => keysProblem(keys, wellFormed))
            if (bad === undefined) return inner.removeThen!(keys, then)
            const error = refusal("remove", bad)
            return Effect.map(then, (a) => [error, a] as const)
          }
        }),
    // A bad argument is not started: the caller then calls setThen (removeThen), which refuses it.
    ...(inner.setNow === undefined
      ? {}
      : {
          setNow: (key: string, entry: Entry, done: (error: TierError | undefined) => void) =>
            badKeyAndEntry(key, entry) === undefined && inner.setNow!(key, entry, done)
        }),
    ...(inner.removeNow === undefined
      ? {}
      : {
          removeNow: (keys: ReadonlyArray<string>, done: (error: TierError | undefined) => void) =>
            guarded("keys", () => keysProblem(keys, wellFormed)) === undefined && inner.removeNow!(keys, done)
        })
  }
  // Not enumerable: a tier made from this one by spreading it (`{ ...checked, get }`, as wrappers
  // do) has methods of its own, which the cache must call; it is not the checked tier.
  // It names this checked tier too: one inheriting the property is not it. A tier checked twice
  // is called by the cache as the innermost one.
  const inside: Unchecked = { checked, tier: unchecked(tier) }
  Object.defineProperty(checked, UncheckedTypeId, { value: inside, enumerable: false })
  return checked as T
}
