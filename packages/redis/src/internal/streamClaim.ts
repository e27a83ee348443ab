/**
 * `consume`'s `claimIdleMs`: a consumer takes over the entries that other consumers of its group
 * received and have left unacknowledged for that long (a consumer that crashed, or whose machine
 * is gone), so that they are not left pending for good. A pass pages through the group's pending
 * entries idle that long (XPENDING with IDLE), skips the consumer's own (still being handled
 * here: claiming them would deliver them to it twice), and takes the others over with XCLAIM,
 * which claims an entry only while it is still idle that long: of two consumers claiming it at
 * once, one gets it. A pass starts at most once every `claimIdleMs`, between reads of new
 * entries. XPENDING's IDLE and exclusive ranges need Redis 6.2.
 */
import type { CacheError, CacheStreams } from "@tiercache/core"
import { Clock, Effect } from "effect"
import type { Redis } from "ioredis"
import { call, type RawEntry, toEntry } from "./streamCommands.js"

/**
 * Milliseconds on a clock that only goes forward (Clock's nanoseconds): on the wall clock
 * (currentTimeMillis, Date.now) a step back of an hour (NTP, a VM restored) put the next pass off
 * by that hour, the entries of a consumer that is gone left pending meanwhile.
 */
const monotonicMillis = Effect.map(Clock.currentTimeNanos, (nanos) => Number(nanos / 1_000_000n))

/** One row of XPENDING's extended form: id, consumer, idle ms, deliveries. */
type PendingRow = [id: string, consumer: string, idle: number, deliveries: number]

/** What a claimer needs. */
export interface Deps {
  readonly conn: Redis
  /** The stream's Redis key (prefixed). */
  readonly key: string
  readonly group: string
  readonly consumer: string
  readonly idleMs: number
  /** Entries looked at per page of a pass. */
  readonly count: number
  /** Sends a command (bounded, failures as StreamErrors). */
  readonly send: (run: () => Promise<unknown>) => Effect.Effect<unknown, CacheError.StreamError>
}

/** The claiming of one consumer. */
export interface Claimer {
  /** Whether a pass is under way or due (else read new entries). */
  readonly due: Effect.Effect<boolean>
  /**
   * One page of the pass under way, starting one if none is: the entries claimed by it (maybe
   * none, with more pages to come). Called when `due`.
   */
  readonly next: Effect.Effect<ReadonlyArray<CacheStreams.StreamEntry>, CacheError.StreamError>
  /** Drops the pass under way; the next `next` starts one (after a lost connection). */
  readonly reset: () => void
}

/** A claimer with no pass made yet: it is `due` at once. */
export const make = ({ conn, key, group, consumer, idleMs, count, send }: Deps): Claimer => {
  /** Where the next page of the pass under way starts ("-" for its first); undefined: none. */
  let from: string | undefined
  let lastPass = Number.NEGATIVE_INFINITY
  const page = (start: string) =>
    Effect.flatMap(send(call(conn, ["XPENDING", key, group, "IDLE", idleMs, start, "+", count])), (reply) => {
      const rows = (Array.isArray(reply) ? reply : []) as Array<PendingRow>
      from = rows.length < count ? undefined : `(${rows[rows.length - 1]![0]}`
      const theirs = rows.filter((row) => row[1] !== consumer).map((row) => row[0])
      if (theirs.length === 0) return Effect.succeed([])
      return Effect.map(send(call(conn, ["XCLAIM", key, group, consumer, idleMs, ...theirs])), (claimed) =>
        // An entry deleted from the stream since is dropped from the group by XCLAIM (Redis 7)
        // or answered as nil (6.2): nothing to deliver.
        (Array.isArray(claimed) ? (claimed as Array<RawEntry | null>) : [])
          .filter((entry): entry is RawEntry => Array.isArray(entry))
          .map(toEntry)
      )
    })
  const next = Effect.suspend(() => {
    if (from !== undefined) return page(from)
    return Effect.flatMap(monotonicMillis, (now) => {
      lastPass = now
      return page("-")
    })
  })
  const due = Effect.suspend(() =>
    from !== undefined ? Effect.succeed(true) : Effect.map(monotonicMillis, (now) => now - lastPass >= idleMs)
  )
  return {
    next,
    due,
    reset: () => {
      from = undefined
      lastPass = Number.NEGATIVE_INFINITY
    }
  }
}
