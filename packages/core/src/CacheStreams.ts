/**
 * Event streams beside the cache (Redis Streams in @tiercache/redis, in memory in
 * @tiercache/testing).
 *
 * @since 0.1.0
 */
import type { Effect, Stream } from "effect"
import { Context } from "effect"
import type { StreamError } from "./CacheError.js"

/**
 * One stream entry: its id (`<ms>-<seq>`) and its field/value pairs in order.
 *
 * @category models
 * @since 0.1.0
 */
export interface StreamEntry {
  /** The entry id. */
  readonly id: string
  /** Field/value pairs, in the order they were published. */
  readonly fields: ReadonlyArray<readonly [string, string]>
}

/**
 * Fields to publish: pairs in order, or a record. (RedisStreams also takes finite numbers as
 * values from plain JavaScript, stored as text, and refuses anything else with a StreamError,
 * text with a lone surrogate too: Redis would store U+FFFD in its place.)
 *
 * @category models
 * @since 0.1.0
 */
export type Fields = ReadonlyArray<readonly [string, string]> | Readonly<Record<string, string>>

/**
 * Options of a consumer-group stream. Only an absent (`undefined`) option takes its default:
 * `null` from plain JavaScript, or a value that is not a positive integer, fails the stream with
 * a `StreamError` naming it.
 *
 * @category options
 * @since 0.1.0
 */
export interface ConsumeOptions {
  /** Entries fetched per read (default 10). */
  readonly count?: number | undefined
  /** How long one read blocks waiting for entries, in ms (default 1000). */
  readonly blockMs?: number | undefined
  /**
   * Takes over the entries that other consumers of the group received and have not
   * acknowledged for this long, in ms (a consumer that crashed, or whose machine is gone), and
   * delivers them here: without it they stay pending until their own consumer, by its name,
   * consumes again. Checked at most once every `claimIdleMs`, between reads of new entries,
   * `count` pending entries a read (one page of the group's, until every page was seen);
   * this consumer's own unacknowledged entries are never delivered to it twice this way. Each
   * entry is claimed by one consumer only; an entry a consumer has not acknowledged within
   * `claimIdleMs` counts as abandoned, and another consumer claiming entries takes it over too.
   * Off by default; a positive integer; needs Redis 6.2 or later (XPENDING with IDLE, XCLAIM).
   */
  readonly claimIdleMs?: number | undefined
}

/**
 * Append-only event streams with consumer groups.
 *
 * @category tags
 * @since 0.1.0
 */
export class CacheStreams extends Context.Tag("@tiercache/core/CacheStreams")<
  CacheStreams,
  CacheStreams.Service
>() {}

/**
 * @category models
 * @since 0.1.0
 */
export declare namespace CacheStreams {
  /**
   * @since 0.1.0
   */
  export interface Service {
    /** Appends an entry (XADD, trimmed to about `maxLen` with MAXLEN ~); answers its id. */
    readonly publish: (stream: string, fields: Fields, maxLen?: number) => Effect.Effect<string, StreamError>
    /** The newest `count` entries, newest first (XREVRANGE). */
    readonly readLatest: (
      stream: string,
      count: number
    ) => Effect.Effect<ReadonlyArray<StreamEntry>, StreamError>
    /**
     * Up to `count` entries after `lastId` (`"0"` from the start, `"$"` only new ones), oldest
     * first (XREAD). With `blockMs` it waits that long for entries, on its own connection.
     */
    readonly read: (
      stream: string,
      lastId: string,
      count: number,
      blockMs?: number
    ) => Effect.Effect<ReadonlyArray<StreamEntry>, StreamError>
    /** Creates a consumer group (creating the stream too); an existing group is no error. */
    readonly createGroup: (
      stream: string,
      group: string,
      startId?: string
    ) => Effect.Effect<void, StreamError>
    /** The entries delivered to `consumer` in `group`, as a Stream; acknowledge them with `ack`. */
    readonly consume: (
      stream: string,
      group: string,
      consumer: string,
      options?: ConsumeOptions
    ) => Stream.Stream<StreamEntry, StreamError>
    /** Acknowledges entries; answers how many were pending. */
    readonly ack: (
      stream: string,
      group: string,
      ids: ReadonlyArray<string>
    ) => Effect.Effect<number, StreamError>
  }
}

/**
 * Normalizes fields to pairs.
 *
 * @category utils
 * @since 0.1.0
 */
export const fieldPairs = (fields: Fields): ReadonlyArray<readonly [string, string]> =>
  Array.isArray(fields) ? (fields as ReadonlyArray<readonly [string, string]>) : Object.entries(fields)
