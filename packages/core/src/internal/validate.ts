import { Duration } from "effect"
import { CacheInputError } from "../CacheError.js"

/** @internal */
export const keyError = (key: unknown): CacheInputError | undefined => {
  if (typeof key !== "string") {
    return new CacheInputError({
      problem: "InvalidKey",
      reason: `a key must be a string, got ${describe(key)}`
    })
  }
  if (key.length === 0) return new CacheInputError({ problem: "EmptyKey", reason: "a key must not be empty" })
  if (key.startsWith("__tiercache:")) {
    return new CacheInputError({
      problem: "InvalidKey",
      reason: `keys starting with "__tiercache:" are reserved, got ${describe(key)}`
    })
  }
  return undefined
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

const durationString = /^\s*(-?[\d.]+(?:e[+-]?\d+)?)\s+\w+\s*$/i

/**
 * Milliseconds of a TTL-like option, or the error that names what is wrong with it. Zero is
 * refused unless `allowZero` (grace windows may be zero).
 *
 * @internal
 */
export const durationMillis = (
  input: unknown,
  option: string,
  allowZero = false
): number | CacheInputError => {
  const bad = (why: string) =>
    new CacheInputError({ problem: "InvalidTtl", reason: `${option} ${why}, got ${describe(input)}` })
  let ms: number
  if (typeof input === "number") {
    ms = input
  } else if (typeof input === "bigint") {
    ms = Number(input) / 1_000_000
  } else if (typeof input === "string") {
    const m = durationString.exec(input)
    if (!m) return bad('must be a duration such as "5 minutes"')
    if (Number(m[1]) < 0 || Number.isNaN(Number(m[1]))) return bad("must not be negative")
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
  return ms
}

/**
 * Checks that a value survives JSON encoding unchanged in meaning: plain objects, arrays,
 * strings, finite numbers, booleans and null. Answers the error naming the first offending
 * path, or `undefined`.
 *
 * @internal
 */
export const jsonError = (value: unknown): CacheInputError | undefined => {
  const reason = jsonProblem(value, "value", new Set())
  return reason === undefined ? undefined : new CacheInputError({ problem: "UnencodableValue", reason })
}

const jsonProblem = (value: unknown, path: string, seen: Set<object>): string | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON cannot hold`
    case "bigint":
      return `${path} is a bigint, which JSON cannot hold (encode it with a Schema, e.g. Schema.BigInt)`
    case "undefined":
      return `${path} is undefined, which JSON cannot hold`
    case "function":
    case "symbol":
      return `${path} is a ${typeof value}, which JSON cannot hold`
    case "object": {
      if (value === null) return undefined
      if (seen.has(value)) return `${path} is a circular reference`
      if (Array.isArray(value)) {
        seen.add(value)
        for (let i = 0; i < value.length; i++) {
          const p = jsonProblem(value[i], `${path}[${i}]`, seen)
          if (p) return p
        }
        seen.delete(value)
        return undefined
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) {
        const name = (value as object).constructor?.name ?? "object"
        return `${path} is a ${name}, not a plain object (encode it with a Schema, e.g. Schema.Date)`
      }
      seen.add(value)
      for (const k of Object.keys(value)) {
        const v = (value as Record<string, unknown>)[k]
        if (v === undefined) continue
        const p = jsonProblem(v, `${path}.${k}`, seen)
        if (p) return p
      }
      seen.delete(value)
      return undefined
    }
  }
}

/** @internal */
export const describe = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  if (typeof u === "bigint") return `${u}n`
  if (typeof u === "number") return String(u)
  if (u === null || u === undefined) return String(u)
  if (Duration.isDuration(u)) return Duration.format(u)
  return typeof u
}
