import { Duration, Effect, Schema } from "effect"
import { CacheConfigError, CacheInputError } from "../CacheError.js"
import { isReservedKey, reservedPrefix } from "../Tier.js"
import { describe } from "./describe.js"
import { isWellFormed, loneSurrogate } from "./wellFormed.js"

export { describe } from "./describe.js"
export { isWellFormed } from "./wellFormed.js"

/**
 * The read paths' cheap check: true when `key` is not a usable key (the caller then fails with
 * {@link keyError}). A reserved key is one: `get` would answer a tag's record, and
 * `getOrCompute` would overwrite it.
 *
 * @internal
 */
export const isBadKey = (key: unknown): boolean =>
  typeof key !== "string" ||
  key.length === 0 ||
  // "_": the reserved prefix's first character, so that other keys pay one comparison.
  (key.charCodeAt(0) === 95 && isReservedKey(key)) ||
  !isWellFormed(key)

const surrogateError = (what: string, s: string): CacheInputError =>
  new CacheInputError({
    problem: "InvalidKey",
    reason: `${what} must be well-formed UTF-16: it has a lone surrogate at index ${s.search(loneSurrogate)} (${describe(s)}), which no UTF-8 store can hold apart from U+FFFD`
  })

/** @internal */
export const keyError = (key: unknown): CacheInputError | undefined => {
  if (typeof key !== "string") {
    return new CacheInputError({
      problem: "InvalidKey",
      reason: `a key must be a string, got ${describe(key)}`
    })
  }
  if (key.length === 0) return new CacheInputError({ problem: "EmptyKey", reason: "a key must not be empty" })
  if (isReservedKey(key)) {
    return new CacheInputError({
      problem: "InvalidKey",
      reason: `keys starting with "${reservedPrefix}" are reserved, got ${describe(key)}`
    })
  }
  if (!isWellFormed(key)) return surrogateError("a key", key)
  return undefined
}

/**
 * The error of a glob given to `invalidatePattern`, or `undefined`.
 *
 * @internal
 */
export const patternError = (glob: unknown): CacheInputError | undefined => {
  if (typeof glob !== "string" || glob.length === 0) {
    return new CacheInputError({
      problem: "InvalidKey",
      reason: `a pattern must be a non-empty string, got ${describe(glob)}`
    })
  }
  return isWellFormed(glob) ? undefined : surrogateError("a pattern", glob)
}

/**
 * The error of a tag (given to a write or to `invalidateTag`), or `undefined`.
 *
 * @internal
 */
export const tagError = (tag: unknown): CacheInputError | undefined => {
  if (typeof tag !== "string" || tag.length === 0) {
    return new CacheInputError({
      problem: "InvalidOption",
      reason: `a tag must be a non-empty string, got ${describe(tag)}`
    })
  }
  return isWellFormed(tag) ? undefined : surrogateError("a tag", tag)
}

/**
 * A write's `tags` option checked, as a frozen copy of the tags checked, or its error. The
 * array is read once, by index, each tag checked as it is read: a sparse array from plain
 * JavaScript (`new Array(n)`) is refused at its first hole, not copied through every hole
 * first (2^32 - 1 holes ran the process out of memory), and a getter or iterator answering
 * other tags on another read cannot slip one past the check.
 *
 * @internal
 */
export const checkedTags = (tags: unknown): ReadonlyArray<string> | CacheInputError => {
  if (!Array.isArray(tags)) {
    return new CacheInputError({
      problem: "InvalidOption",
      reason: `tags must be an array, got ${describe(tags)}`
    })
  }
  const list = checkedElements(tags, tagError)
  return list instanceof CacheInputError ? list : Object.freeze(list)
}

/**
 * The elements of `array` read once each, by index (`length` read once too), each checked by
 * `check` as it is read: the list of them, or the first bad element's error, the rest never
 * read (a sparse array of 2^32 - 1 holes is refused at its first hole, not copied).
 *
 * @internal
 */
export const checkedElements = (
  array: ReadonlyArray<unknown>,
  check: (element: unknown) => CacheInputError | undefined
): Array<string> | CacheInputError => {
  const n = array.length
  const list: Array<string> = []
  for (let i = 0; i < n; i++) {
    const element = array[i]
    const bad = check(element)
    if (bad !== undefined) return bad
    list.push(element as string)
  }
  return list
}

/**
 * The error of a `compute` argument that is not an Effect (plain JavaScript callers may pass a
 * function, a promise or nothing), or `undefined`.
 *
 * @internal
 */
export const computeError = (compute: unknown): CacheInputError | undefined => {
  try {
    if (Effect.isEffect(compute)) return undefined
  } catch (cause) {
    return unreadable("compute", "InvalidOption", cause)
  }
  const got =
    typeof compute === "function"
      ? "a function (wrap it: Effect.sync(f), Effect.promise(f) or Effect.tryPromise(f))"
      : compute instanceof Promise
        ? "a Promise (pass Effect.promise(() => ...) or Effect.tryPromise(...) instead)"
        : describe(compute)
  return new CacheInputError({ problem: "InvalidOption", reason: `compute must be an Effect, got ${got}` })
}

/** @internal */
export const keysError = (keys: unknown): CacheInputError | undefined => {
  if (!Array.isArray(keys)) {
    return new CacheInputError({
      problem: "InvalidKey",
      reason: `keys must be an array, got ${describe(keys)}`
    })
  }
  for (const key of keys) {
    const e = keyError(key)
    if (e) return e
  }
  return undefined
}

/**
 * The longest lifetime (TTL plus grace) an entry may have: 2^52 ms, about 142,000 years. Expiry
 * times are epoch milliseconds; below this bound `now + lifetime` stays an exact integer
 * (below 2^53) for the next 140,000 years, which every tier can store (Redis's PX takes a
 * 64-bit integer, KeyValueStoreTier and MemoryTier keep the number itself). Longer TTLs are
 * refused at the call, before anything is written.
 *
 * @internal
 */
export const MAX_LIFETIME_MS = 2 ** 52

/**
 * The error when an entry's TTL plus grace exceeds {@link MAX_LIFETIME_MS}, or `undefined`.
 *
 * @internal
 */
export const lifetimeError = (ttlMs: number, graceMs: number): CacheInputError | undefined =>
  ttlMs + graceMs <= MAX_LIFETIME_MS
    ? undefined
    : new CacheInputError({
        problem: "InvalidTtl",
        reason: `ttl plus grace must be at most 2^52 ms (about 142,000 years), got ${ttlMs + graceMs} ms`
      })

const durationString = /^\s*(-?[\d.]+(?:e[+-]?\d+)?)\s+\w+\s*$/i

/**
 * Milliseconds of a TTL-like option, or the error that names what is wrong with it. Zero is
 * refused unless `allowZero` (grace windows may be zero); so is anything over
 * {@link MAX_LIFETIME_MS}.
 *
 * @internal
 */
export const durationMillis = (
  input: unknown,
  option: string,
  allowZero = false
): number | CacheInputError => {
  const bad = (why: string) => durationError(input, option, why)
  let ms: number
  if (typeof input === "number") {
    ms = input
  } else if (typeof input === "bigint") {
    ms = Number(input) / 1_000_000
  } else if (typeof input === "string") {
    const m = durationString.exec(input)
    if (!m) return bad('must be a duration such as "5 minutes"')
    // A malformed number ("1.2.3 seconds", ". seconds") is not a negative one.
    if (Number.isNaN(Number(m[1]))) return bad('must be a duration such as "5 minutes"')
    if (Number(m[1]) < 0) return bad("must not be negative")
    try {
      ms = Duration.toMillis(Duration.decode(input as Duration.DurationInput))
    } catch {
      return bad('must be a duration such as "5 minutes"')
    }
  } else if (Duration.isDuration(input)) {
    ms = Duration.toMillis(input)
  } else if (Array.isArray(input) && input.length === 2) {
    const [s, n] = input as [unknown, unknown]
    if (typeof s !== "number" || typeof n !== "number" || s < 0 || n < 0) return bad("must not be negative")
    ms = s * 1000 + n / 1_000_000
  } else {
    return bad("must be a Duration, a number of milliseconds or a duration string")
  }
  if (Number.isNaN(ms)) return bad("must be a number")
  if (!Number.isFinite(ms)) return bad("must be finite")
  if (ms < 0) return bad("must not be negative")
  if (ms === 0 && !allowZero) return bad("must be positive")
  if (ms > MAX_LIFETIME_MS) return bad("must be at most 2^52 ms (about 142,000 years)")
  return ms
}

/** The InvalidTtl error of a duration option: `${option} ${why}, got <the input>`. */
const durationError = (input: unknown, option: string, why: string): CacheInputError =>
  new CacheInputError({
    problem: "InvalidTtl",
    reason: `${option} ${why}, got ${Array.isArray(input) && input.length === 2 ? `[${input.map(describe).join(", ")}]` : describe(input)}`
  })

/**
 * Milliseconds of an entry's lifetime (a TTL, a grace window, the fail-safe's throttle):
 * `durationMillis`, refusing durations under 1 ms but above zero. Expiry times are epoch
 * milliseconds (Redis's PX, the stored records): at today's epoch `now + 1e-6` is `now` in a
 * double, and an entry with a TTL of 0.3 ms would be fresh for what is left of the current
 * millisecond at most, so such an entry would never (or hardly ever) answer. Zero, where
 * `allowZero`, still means none.
 *
 * @internal
 */
export const lifetimeMillis = (
  input: unknown,
  option: string,
  allowZero = false
): number | CacheInputError => {
  const ms = durationMillis(input, option, allowZero)
  if (typeof ms !== "number" || ms >= 1 || ms === 0) return ms
  return durationError(
    input,
    option,
    allowZero
      ? "must be 0 or at least 1 ms (expiry times are whole milliseconds)"
      : "must be at least 1 ms (expiry times are whole milliseconds)"
  )
}

export { jsonError, MAX_DEPTH } from "./validateValue.js"

/**
 * The CacheInputError of input whose inspection threw `cause`.
 *
 * @internal
 */
export const unreadable = (
  what: string,
  problem: "InvalidKey" | "InvalidOption",
  cause: unknown
): CacheInputError =>
  new CacheInputError({
    problem,
    reason: `${what} could not be read: ${cause instanceof Error ? cause.message : describe(cause)}`
  })

/**
 * The last schema found to be one: a typed call with it is checked by identity alone. It starts
 * as a value no caller holds (starting `undefined`, it let a missing schema through).
 */
let knownSchema: unknown = Symbol("no schema checked yet")

/**
 * The error of a schema that is not an Effect Schema (from plain JavaScript), or `undefined`.
 *
 * @internal
 */
export const checkSchema = (schema: unknown): CacheInputError | undefined => {
  if (schema === knownSchema) return undefined
  const bad = schemaError(schema)
  if (bad === undefined) knownSchema = schema
  return bad
}

const schemaError = (schema: unknown): CacheInputError | undefined => {
  try {
    if (Schema.isSchema(schema)) return undefined
  } catch (cause) {
    return unreadable("schema", "InvalidOption", cause)
  }
  return new CacheInputError({
    problem: "InvalidOption",
    reason: `schema must be an Effect Schema, got ${describe(schema)}`
  })
}

/**
 * The error of a constructor's options from plain JavaScript that are not an object (`null`, a
 * string), or `undefined`; `option` names them (a nested group such as `breaker`).
 *
 * @internal
 */
export const optionsObjectError = (options: unknown, option = "options"): CacheConfigError | undefined =>
  typeof options === "object" && options !== null
    ? undefined
    : new CacheConfigError({ option, reason: `must be an object, got ${describe(options)}` })

/**
 * `value`, or `fallback` when it is absent: the one way every constructor of this package reads
 * an option with a default. Only `undefined` takes a default: `null` from plain JavaScript is
 * checked as given, and refused, not read as "the default".
 *
 * @internal
 */
export const given = <A>(value: A | undefined, fallback: NoInfer<A>): A =>
  value === undefined ? fallback : value

/**
 * A CacheConfigError for `option` unless `value` is a non-empty string (from plain JS, any value).
 *
 * @internal
 */
export const nonEmptyStringError = (value: unknown, option: string): CacheConfigError | undefined =>
  typeof value === "string" && value.length > 0
    ? undefined
    : new CacheConfigError({ option, reason: `must be a non-empty string, got ${describe(value)}` })

/**
 * `durationMillis` (or, with `lifetime`, `lifetimeMillis`) of a constructor's option: the
 * milliseconds, or a CacheConfigError naming it.
 *
 * @internal
 */
export const configMillis = (
  input: unknown,
  option: string,
  allowZero = false,
  lifetime = false
): number | CacheConfigError => {
  const ms = (lifetime ? lifetimeMillis : durationMillis)(input, option, allowZero)
  return typeof ms === "number" ? ms : new CacheConfigError({ option, reason: ms.reason })
}

/**
 * Whether a count from plain JavaScript is a positive safe integer.
 *
 * @internal
 */
export const isPositiveInteger = (n: unknown): boolean =>
  typeof n === "number" && Number.isSafeInteger(n) && n > 0
