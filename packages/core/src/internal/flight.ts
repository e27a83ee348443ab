/**
 * The single-flight registry: at most one flight (a lower-tier lookup, then a computation) per
 * key per instance; each flight's state is a tagged union.
 */
import type { Fiber } from "effect"
import type * as Entry from "../Entry.js"
import type { AnySchema } from "./codec.js"
import type { Signal } from "./signal.js"

/** A flight's result: the entry as stored, and the value for the flight's schema. */
export interface FlightResult {
  readonly entry: Entry.Entry
  /** The value decoded for the flight's schema, or the encoded value when untyped. */
  readonly value: unknown
}

/**
 * Where a flight is: `Running` (waiters not answered yet, but for those their own soft or hard
 * timeout answered), `ServedStale` (waiters answered with the stale value by
 * stale-while-revalidate or the fail-safe; the computation goes on), `Writing` (the computed
 * value, `result`, is in L1 and the waiters have it, or the stale value when they were answered
 * stale; the lower tiers are being written).
 */
export type FlightState =
  | { readonly _tag: "Running" }
  | { readonly _tag: "ServedStale" }
  | { readonly _tag: "Writing"; readonly result: FlightResult }

/** A flight under way for one key. */
export interface Flight {
  /** The flight's result, which its callers wait for. */
  readonly result: Signal<FlightResult, unknown>
  /** The schema the flight decodes with (undefined: untyped). */
  readonly schema: AnySchema | undefined
  /** A stale value that may answer the waiters (grace window, soft timeout, fail-safe). */
  stale: FlightResult | undefined
  state: FlightState
  /** Whether its lower-tier lookup is still under way. */
  lookingUp: boolean
  /**
   * Its callers' soft timeouts that passed during the lookup, each answering its caller with the
   * stale value the lookup finds once it ends (softTimeout.ts).
   */
  afterLookup: Array<() => void> | undefined
  /**
   * Whether its first caller was answered by its soft or hard timeout: that caller, counted when
   * the lookup ends, is then a miss whatever the lookup finds.
   */
  firstAnswered: boolean
  /** Whether this flight was counted in `staleServed` (once per flight). */
  staleCounted: boolean
  /** Whether this flight was counted in `failSafeHits` (once per flight). */
  failSafeCounted: boolean
  /** The fiber running the flight. */
  fiber: Fiber.RuntimeFiber<unknown, unknown> | undefined
  /**
   * The flights its computation waits for now (once per wait), so that a wait that would close
   * a cycle is refused (flights.ts).
   */
  waitsOn: Array<Flight> | undefined
}

/** The flights of one cache, by key. */
export interface Registry {
  readonly get: (key: string) => Flight | undefined
  readonly set: (key: string, flight: Flight) => void
  /** Ends `flight`'s registration (if still registered). */
  readonly done: (key: string, flight: Flight) => void
  /** Forgets the flight of `key`: the next caller starts another (a write superseded it). */
  readonly forget: (key: string) => void
  /** Forgets the flights whose key matches. */
  readonly forgetMatching: (matches: (key: string) => boolean) => void
  /** The fibers of flights writing the lower tiers (the cache waits for them on close). */
  readonly writing: () => ReadonlyArray<Fiber.RuntimeFiber<unknown, unknown>>
  readonly size: () => number
}

/** An empty registry. */
export const makeRegistry = (): Registry => {
  const flights = new Map<string, Flight>()
  return {
    get: (key) => flights.get(key),
    set: (key, flight) => void flights.set(key, flight),
    done: (key, flight) => {
      if (flights.get(key) === flight) flights.delete(key)
    },
    forget: (key) => void flights.delete(key),
    forgetMatching: (matches) => {
      for (const key of [...flights.keys()]) if (matches(key)) flights.delete(key)
    },
    writing: () => {
      const fibers: Array<Fiber.RuntimeFiber<unknown, unknown>> = []
      for (const f of flights.values()) if (f.state._tag === "Writing" && f.fiber) fibers.push(f.fiber)
      return fibers
    },
    size: () => flights.size
  }
}
