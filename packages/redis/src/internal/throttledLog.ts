/**
 * A warning that repeats at most once per interval per kind: the first occurrence is logged at
 * once; later ones within the interval are only counted, and the next line logged for that
 * kind says how many were left out.
 */
import { Clock, Duration, Effect } from "effect"

/** Logs `line` for `kind` unless that kind was logged less than `interval` ago. */
export type ThrottledLog = (kind: string, line: string) => Effect.Effect<void>

/**
 * Makes a throttled warning log on the Effect Clock.
 */
export const make = (interval: Duration.Duration): ThrottledLog => {
  const intervalMs = Duration.toMillis(interval)
  const last = new Map<string, { at: number; skipped: number }>()
  return (kind, line) =>
    Effect.flatMap(Clock.currentTimeMillis, (now) => {
      const seen = last.get(kind)
      if (seen !== undefined && now - seen.at < intervalMs) {
        seen.skipped++
        return Effect.void
      }
      const skipped = seen?.skipped ?? 0
      last.set(kind, { at: now, skipped: 0 })
      return Effect.logWarning(
        skipped === 0 ? line : `${line} (and ${skipped} more of this kind since the last report)`
      )
    })
}
