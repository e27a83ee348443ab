/**
 * RedisTier's removal by pattern, and `clear`: SCAN (never KEYS) inside the tier's prefix, then
 * UNLINK of what it found, step by step. Both take only string keys (`SCAN ... TYPE string`,
 * Redis 6.0): the cache writes nothing else, and RedisStreams keeps its streams under the same
 * prefix. A pattern leaves the cache's own keys (`Tier.reservedPrefix`: a tag's time, the
 * large-value marker) in place; `clear` removes them, the marker excepted, once every other key is
 * gone: a tag's record removed before the entries it refuses would let a reader that reads the
 * tag's time meanwhile (any instance that has not met the tag, the clearing one among them: it
 * forgets its tag times first) answer them. Waiting for the large writes in flight first is the
 * caller's (tierWrites.ts).
 */
import { type CacheError, Glob, Tier } from "@tiercache/core"
import { Effect } from "effect"
import type { Redis } from "ioredis"
import type { LargeValues } from "./largeValues.js"
import type { Runner } from "./tierRunner.js"

/** What the removals by pattern of one tier are built on. */
export interface Deps {
  /** The command connection's client. */
  readonly client: Redis
  readonly large: LargeValues
  /** The tier's key prefix. */
  readonly prefix: string
  /** Keys asked for per SCAN step. */
  readonly scanCount: number
  readonly runner: Runner
}

/** Builds the removals by pattern of a tier. */
export const make = ({ client, large, prefix, scanCount, runner }: Deps) => {
  const { run } = runner
  // The large-value marker is left to its expiry: were a `clear` racing a large write to remove
  // it and miss the value, reads would copy that value into the read script (see largeValues.ts).
  const marker = Buffer.from(large.marker)
  const reserved = Buffer.from(prefix + Tier.reservedPrefix)
  const isReserved = (key: Buffer) =>
    key.length >= reserved.length && key.compare(reserved, 0, reserved.length, 0, reserved.length) === 0
  /**
   * Removes the string keys under the prefix matching `glob` (a pattern of the whole key: from
   * `under`, the prefix escaped), but those `keep` answers true for; answers how many, and
   * whether it kept a reserved key other than the marker.
   */
  const removeWhere = (
    operation: string,
    glob: string,
    keep: (key: Buffer) => boolean,
    under: string = prefix
  ): Effect.Effect<{ readonly removed: number; readonly keptReserved: boolean }, CacheError.TierError> =>
    Effect.gen(function* () {
      const pattern = Glob.escape(under) + glob
      let cursor = "0"
      let removed = 0
      let keptReserved = false
      do {
        const [next, found] = yield* run(operation, () =>
          client.scanBuffer(cursor, "MATCH", pattern, "COUNT", scanCount, "TYPE", "string")
        )
        const keys: Array<Buffer> = []
        for (const key of found) {
          if (!keep(key)) keys.push(key)
          else if (!keptReserved && isReserved(key) && !key.equals(marker)) keptReserved = true
        }
        if (keys.length > 0) removed += yield* run(operation, () => client.unlink(...keys))
        cursor = next.toString()
      } while (cursor !== "0")
      return { removed, keptReserved }
    })
  return {
    /** Removes the keys matching `glob` (the cache's own keys kept); answers how many. */
    removeMatching: (glob: string) =>
      Effect.map(removeWhere("removeMatching", glob, isReserved), ({ removed }) => removed),
    /**
     * Removes every key under the prefix, the large-value marker excepted: the entries first, then
     * (when the first pass met any) the cache's own keys, the tags' records.
     */
    clear: Effect.flatMap(removeWhere("clear", "*", isReserved), ({ keptReserved }) =>
      keptReserved
        ? Effect.asVoid(removeWhere("clear", "*", (key) => key.equals(marker), prefix + Tier.reservedPrefix))
        : Effect.void
    )
  }
}
