/**
 * A caller's soft timeout (README: timeouts per call): past it, that caller, and no other, is
 * answered with the flight's stale value while the computation goes on; the flight's other
 * callers wait on, each bounded by its own timeouts. The caller waits on a signal of its own,
 * which the flight's result completes too. Counted from the call: due while the lower tiers are
 * still being read, it answers once they have, with the stale value they found.
 */
import { type Clock, Exit } from "effect"
import type { Flight, FlightResult } from "./flight.js"
import * as Signal from "./signal.js"
import { startTimer } from "./timeout.js"

/** One caller's soft timeout. */
export interface SoftWait {
  /** What the caller waits for: the flight's result, or the stale value past its soft timeout. */
  readonly signal: Signal.Signal<FlightResult, unknown>
  /** Whether the soft timeout answered it (with the stale value). */
  readonly answered: () => boolean
  /** Ends the soft timeout (the caller's wait ended: answered, past its hard timeout, interrupted). */
  readonly end: () => void
}

/**
 * Starts a caller's soft timeout of `softMs`. `pick`: the caller's answer from the flight's
 * stale value (undefined: none, the caller waits on); `onStale` runs when it answers.
 */
export type Start = (
  flight: Flight,
  softMs: number,
  pick: (stale: FlightResult) => FlightResult | undefined,
  onStale: (() => void) | undefined
) => SoftWait

/** What the soft timeouts need (resilience.ts). */
export interface Deps {
  /** The cache's clock (a caller may run under another). */
  readonly clock: Clock.Clock
  /** The flight's stale value while it may still answer. */
  readonly usableStale: (flight: Flight) => FlightResult | undefined
  /** Counts the flight's computation as answered stale, once however many callers. */
  readonly countStale: (flight: Flight) => void
}

/**
 * A flight's lower-tier lookup has ended (flights.ts): the soft timeouts that passed during it
 * answer their callers with the stale value it found, unless `hit` (the flight answers them with
 * the value found).
 */
export const lookedUp = (flight: Flight, hit: boolean): void => {
  const waiting = flight.afterLookup
  flight.lookingUp = false
  flight.afterLookup = undefined
  if (waiting !== undefined && !hit) for (const answer of waiting) answer()
}

/** The soft timeouts of one cache. */
export const make =
  (deps: Deps): Start =>
  (flight, softMs, pick, onStale) => {
    const mine = Signal.make<FlightResult, unknown>()
    let answered = false
    let stopTimer: (() => void) | undefined
    let stopForwarding: (() => void) | undefined
    const end = () => {
      stopTimer?.()
      stopForwarding?.()
      const waiting = flight.afterLookup
      const at = waiting?.indexOf(answerStale) ?? -1
      if (at >= 0) waiting!.splice(at, 1)
    }
    /**
     * At the soft timeout, or at the end of the lookup it passed during: the stale value, if one
     * may answer; answers whether it did.
     */
    const answerStale = (): boolean => {
      if (mine.exit !== undefined) return true
      const stale = deps.usableStale(flight)
      const answer = stale === undefined ? undefined : pick(stale)
      if (answer === undefined) return false
      answered = true
      deps.countStale(flight)
      onStale?.()
      end()
      Signal.done(mine, Exit.succeed(answer))
      return true
    }
    stopForwarding = Signal.onDone(flight.result, (exit) => {
      end()
      Signal.done(mine, exit)
    })
    if (mine.exit === undefined)
      // On the cache's clock: a caller may run under another.
      stopTimer = startTimer(deps.clock, softMs, () => {
        stopTimer = undefined
        // No stale value yet, the lookup still under way: the one it finds, once it ends.
        if (answerStale() || !flight.lookingUp) return
        const waiting = flight.afterLookup ?? []
        flight.afterLookup = waiting
        waiting.push(answerStale)
      })
    return { signal: mine, answered: () => answered, end }
  }
