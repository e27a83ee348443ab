/**
 * What RedisInvalidationBus lets through to the cache: a received payload is decoded, and
 * dropped when it is malformed (counted by kind, and logged one short line at a time, at most
 * once per interval per kind) or stamped with another namespace (counted). The counts are the
 * bus's `stats`.
 */
import type { InvalidationBus } from "@tiercache/core"
import { InvalidationMessage } from "@tiercache/core"
import { type Duration, Effect, Metric } from "effect"
import * as ThrottledLog from "./throttledLog.js"

/** What the bus dropped so far. */
export interface Counts {
  foreign: number
  readonly malformed: Record<InvalidationMessage.MalformedKind, number>
}

/** The admission of one bus. */
export interface Admission {
  /**
   * A payload as the cache should see it, or, when the bus drops it, the effect that counts and
   * logs the drop (an admitted payload costs no Effect).
   */
  readonly admit: (raw: string) => InvalidationBus.Event | Effect.Effect<void>
  readonly counts: Counts
}

/**
 * Admits the messages of `namespace` (and those without one); counts the others in
 * `foreignMetric` and the malformed ones in `malformedMetric` (tagged with their kind).
 */
export const make = (
  namespace: string,
  logInterval: Duration.Duration,
  foreignMetric: Metric.Metric.Counter<number>,
  malformedMetric: Metric.Metric.Counter<number>
): Admission => {
  const counts: Counts = {
    foreign: 0,
    malformed: { not_json: 0, unknown_type: 0, invalid_field: 0 }
  }
  const throttled = ThrottledLog.make(logInterval)

  const admit = (raw: string): InvalidationBus.Event | Effect.Effect<void> => {
    const decoded = InvalidationMessage.decodeDetailed(raw)
    if (decoded._tag === "Left") {
      const { kind, reason } = decoded.left
      counts.malformed[kind]++
      return Effect.zipRight(
        Metric.increment(Metric.tagged(malformedMetric, "kind", kind)),
        throttled(kind, `tiercache: malformed bus message dropped: ${reason}`)
      )
    }
    const message = decoded.right
    if (message.namespace !== undefined && message.namespace !== namespace) {
      counts.foreign++
      return Metric.increment(foreignMetric)
    }
    return { _tag: "Message", message }
  }

  return { admit, counts }
}
