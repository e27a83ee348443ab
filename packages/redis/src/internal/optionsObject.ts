/**
 * The checks every constructor of this package makes of its options, and the one way it reads
 * an option with a default. Options from plain JavaScript that are not an object (`null`, a
 * string) are a CacheConfigError, not a defect on the first field read; only an absent
 * (`undefined`) option takes its default, as TieredCache's do: `null` or a value of the wrong
 * type is a CacheConfigError naming the option.
 */
import { CacheError } from "@tiercache/core"
import { Duration } from "effect"

/** The error of options that are not an object, or undefined. */
export const notAnObject = (options: unknown): CacheError.CacheConfigError | undefined =>
  typeof options === "object" && options !== null
    ? undefined
    : new CacheError.CacheConfigError({ option: "options", reason: "must be an object" })

/**
 * `value`, or `fallback` when it is absent. Only `undefined` takes a default: `null` from plain
 * JavaScript is checked as given, and refused, not read as "the default".
 */
export const given = <A>(value: A | undefined, fallback: NoInfer<A>): A =>
  value === undefined ? fallback : value

/** The error of a switch that is neither a boolean nor absent (`"false"` is truthy), or undefined. */
export const notABoolean = (value: unknown, option: string): CacheError.CacheConfigError | undefined =>
  value === undefined || typeof value === "boolean"
    ? undefined
    : new CacheError.CacheConfigError({ option, reason: "must be a boolean" })

/** The error of a name that is not a non-empty string, or undefined. */
export const notANonEmptyString = (
  value: unknown,
  option: string
): CacheError.CacheConfigError | undefined =>
  typeof value === "string" && value.length > 0
    ? undefined
    : new CacheError.CacheConfigError({ option, reason: "must be a non-empty string" })

/** The error of a count that is not a positive safe integer, or undefined. */
export const notAPositiveInteger = (
  value: unknown,
  option: string
): CacheError.CacheConfigError | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value > 0
    ? undefined
    : new CacheError.CacheConfigError({ option, reason: "must be a positive integer" })

/**
 * The Duration of a duration option, or the error naming it: anything `Duration.decode` takes,
 * except a number that is NaN or negative (which it would read as zero).
 */
export const decodeDuration = (
  input: unknown,
  option: string
): Duration.Duration | CacheError.CacheConfigError => {
  const bad = () =>
    new CacheError.CacheConfigError({ option, reason: 'must be a duration such as "500 millis"' })
  if (typeof input === "number" && !(input >= 0)) return bad()
  try {
    return Duration.decode(input as Duration.DurationInput)
  } catch {
    return bad()
  }
}
