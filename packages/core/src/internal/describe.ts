/**
 * How a piece of input reads in an error's reason: a leaf module (it imports nothing of the
 * package), so that Tier.ts's input checks (tierInput.ts) can use it without an import cycle.
 */
import { Duration } from "effect"

/**
 * A short description of `u` for an error's reason: a string quoted, a number or bigint as
 * written, null and undefined by name, a Duration formatted, anything else by its type.
 *
 * @internal
 */
export const describe = (u: unknown): string => {
  if (typeof u === "string") return JSON.stringify(u)
  if (typeof u === "bigint") return `${u}n`
  if (typeof u === "number") return String(u)
  if (u === null || u === undefined) return String(u)
  try {
    if (Duration.isDuration(u)) return Duration.format(u)
  } catch {
    // A Proxy whose traps throw: not inspected further.
  }
  return typeof u
}
