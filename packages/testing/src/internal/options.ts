/**
 * How this package's layers read their options from plain JavaScript, by the cache's rule
 * (TieredCache.Options): only an absent (`undefined`) option takes its default; `null` or a value
 * of the wrong type is refused, naming the option. A layer with a typed error fails with it;
 * the test doubles that promise no failure (TestTier, ChaosTier, `MultiInstance.settle`) die
 * with a CacheConfigError naming the option: a bad option there is a mistake in the test.
 *
 * @internal
 */
import { CacheError } from "@tiercache/core"
import { Duration, Effect } from "effect"

/**
 * `value`, or `fallback` when it is absent. Only `undefined` takes a default: `null` from plain
 * JavaScript is checked as given, and refused, not read as "the default".
 */
export const given = <A>(value: A | undefined, fallback: NoInfer<A>): A =>
  value === undefined ? fallback : value

/** What is wrong with options that are not an object (`null`, a string), or undefined. */
export const notAnObject = (options: unknown): string | undefined =>
  typeof options === "object" && options !== null && !Array.isArray(options) ? undefined : "must be an object"

/** What is wrong with a name that is not a non-empty string, or undefined. */
export const notANonEmptyString = (value: unknown): string | undefined =>
  typeof value === "string" && value.length > 0 ? undefined : "must be a non-empty string"

/** What is wrong with a list that is not an array of strings, or undefined. */
export const notStrings = (value: unknown): string | undefined =>
  Array.isArray(value) && value.every((s) => typeof s === "string")
    ? undefined
    : "must be an array of strings"

/** What is wrong with a duration that is not positive and finite, or undefined. */
export const notAPositiveDuration = (value: unknown): string | undefined => {
  const bad = 'must be a positive, finite duration such as "10 seconds"'
  if (typeof value === "number" && !(value > 0)) return bad
  try {
    const d = Duration.decode(value as Duration.DurationInput)
    return Duration.isFinite(d) && Duration.toMillis(d) > 0 ? undefined : bad
  } catch {
    return bad
  }
}

/** The defect of a test double given a bad option: a CacheConfigError naming it. */
export const refused = (option: string, reason: string): Effect.Effect<never> =>
  Effect.die(new CacheError.CacheConfigError({ option, reason }))

/** A test double's `name` option: the name, with its default, or the defect naming it. */
export const nameOf = (options: unknown, fallback: string): Effect.Effect<string> => {
  const notObject = notAnObject(options)
  if (notObject) return refused("options", notObject)
  const name = given((options as { readonly name?: unknown }).name, fallback)
  const bad = notANonEmptyString(name)
  return bad ? refused("name", bad) : Effect.succeed(name as string)
}
