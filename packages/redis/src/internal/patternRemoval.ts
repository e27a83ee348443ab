/**
 * RedisTier's removal by pattern, and `clear`: SCAN (never KEYS) inside the tier's prefix, then
 * UNLINK of what it found, step by step. Both take only string keys (`SCAN ... TYPE string`,
 * Redis 6.0): the cache writes nothing else, and RedisStreams keeps its streams under the same
 * prefix. A pattern leaves the cache's own keys (`Tier.reservedPrefix`: a tag's time, the
 * large-value marker) in place; `clear` removes them, the marker excepted. Waiting for the large
 * writes in flight first is the caller's (tierWrites.ts).
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
  /** Removes the string keys under the prefix matching `glob`, but those `keep` answers true for. */
  const removeWhere = (
    operation: string,
    glob: string,
    keep: (key: Buffer) => boolean
  ): Effect.Effect<number, CacheError.TierError> =>
    Effect.gen(function* () {
      const pattern = Glob.escape(prefix) + glob
      let cursor = "0"
      let removed = 0
      do {
        const [next, found] = yield* run(operation, () =>
          client.scanBuffer(cursor, "MATCH", pattern, "COUNT", scanCount, "TYPE", "string")
        )
        const keys = found.filter((key) => !keep(key))
        if (keys.length > 0) removed += yield* run(operation, () => client.unlink(...keys))
        cursor = next.toString()
      } while (cursor !== "0")
      return removed
    })
  return {
    /** Removes the keys matching `glob` (the cache's own keys kept); answers how many. */
    removeMatching: (glob: string) => removeWhere("removeMatching", glob, isReserved),
    /** Removes every key under the prefix, the large-value marker excepted. */
    clear: Effect.asVoid(removeWhere("clear", "*", (key) => key.equals(marker)))
  }
}
