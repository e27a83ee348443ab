/**
 * What a finished computation of a flight becomes: its value encoded and stored in every tier (the
 * waiters answered once L1 holds it, the lower tiers written after), the fail-safe answer from a
 * stale copy, or its failure. Counts compute errors, discarded and failed writes.
 */
import { Cause, Effect, Exit } from "effect"
import { CacheInputError } from "../CacheError.js"
import { entryOf, type ResolvedCompute } from "./callOptions.js"
import type { Counters } from "./counters.js"
import type { Flight, FlightResult } from "./flight.js"
import { decodeEncoded, encodeValue } from "./input.js"
import type { Resilience } from "./resilience.js"
import { keyAnnotations } from "./spans.js"
import type { Writes } from "./writes.js"

/** What a flight's computation ended with: its value stored (and answered), fail-safe, or its failure. */
export type Outcome = <A, E>(
  key: string,
  flight: Flight,
  exit: Exit.Exit<A, E>,
  resolved: ResolvedCompute,
  since: number,
  startedAt: number
) => Effect.Effect<FlightResult, E | CacheInputError>

/** What the outcome of computations needs (the flights' dependencies, flights.ts). */
export interface Deps {
  readonly resilience: Resilience
  readonly counters: Counters
  /** As flights.ts `Deps.storeComputed` (writes.ts). */
  readonly storeComputed: Writes["storeComputed"]
  /** How many tiers there are (L1 included). */
  readonly tierCount: number
  readonly cacheName: string
  /** Whether log lines may name keys (the `keysInSpans` option: logs reach spans as events). */
  readonly keysInSpans: boolean
  readonly now: () => number
}

/** Builds the outcome of one cache's computations. */
export const make = (deps: Deps): Outcome => {
  const { resilience, counters, cacheName, now } = deps
  return (key, flight, exit, resolved, since, startedAt) => {
    if (Exit.isFailure(exit)) {
      if (!Cause.isInterruptedOnly(exit.cause)) counters.computeErrors++
      if (!resilience.failSafeApplies(flight, exit.cause)) return Effect.failCause(exit.cause)
      return resilience.failSafe(key, flight, flight.stale!, since, exit.cause)
    }
    const value = exit.value
    const encoded = encodeValue(value, flight.schema)
    // A value that cannot be stored fails every waiter, as a failed computation does.
    if (encoded instanceof CacheInputError) {
      counters.computeErrors++
      return Effect.fail(encoded)
    }
    // Typed, the answer is what every tier and instance decodes from the stored value, not the
    // computed object itself, which may hold more than the schema keeps (a row's extra columns).
    // One whose stored form does not decode (a schema that does not round-trip) is refused as a
    // value that does not encode is: stored, no read would ever answer it.
    const decoded = flight.schema === undefined ? encoded.value : decodeEncoded(encoded.value, flight.schema)
    if (decoded instanceof CacheInputError) {
      counters.computeErrors++
      return Effect.fail(decoded)
    }
    const entry = entryOf(encoded.value, now(), resolved, startedAt)
    const typed = flight.schema
    const result: FlightResult = { entry, value: decoded }
    // The waiters are answered once L1 holds the value; the lower tiers are written after,
    // while the flight stays registered (no caller computes again meanwhile), so that a slow
    // or failing shared tier never delays the answer.
    const stored = deps.storeComputed(key, entry, typed, result.value, since, () => {
      resilience.answer(flight, result)
      flight.state = { _tag: "Writing", result }
    })
    return Effect.flatMap(stored, (stored): Effect.Effect<FlightResult> => {
      if (stored === "discarded") {
        counters.discardedWrites++
        return Effect.as(
          Effect.logDebug("tiercache: key changed during computation; result not stored").pipe(
            Effect.annotateLogs(keyAnnotations(deps.keysInSpans, cacheName, key))
          ),
          result
        )
      }
      if (stored.length === deps.tierCount) {
        counters.writeFailures++
        return Effect.as(
          Effect.logWarning("tiercache: computed value could not be stored in any tier").pipe(
            Effect.annotateLogs(keyAnnotations(deps.keysInSpans, cacheName, key))
          ),
          result
        )
      }
      return Effect.succeed(result)
    })
  }
}
