/**
 * The `username` and `password` options: each a `Redacted` string, unwrapped only when handed to
 * the driver (opener.ts). From plain JavaScript anything else (a plain string, `null`, a number,
 * a wiped `Redacted`) made the driver's options die with Effect's "Unable to get redacted value"
 * when the first connection opened; it is a CacheConfigError for the option instead, whose reason
 * never quotes what was given (it may be the secret itself).
 */
import { Redacted } from "effect"

/** What is wrong with a `username` or `password` option that is given, or undefined. */
export const credentialProblem = (given: unknown): string | undefined => {
  const problem = 'must be a Redacted string (Redacted.make(...), or Config.redacted("...") in layerConfig)'
  if (!Redacted.isRedacted(given)) return problem
  try {
    return typeof Redacted.value(given as Redacted.Redacted<unknown>) === "string" ? undefined : problem
  } catch {
    // Wiped (Redacted.unsafeWipe): nothing left to hand to the driver.
    return problem
  }
}
