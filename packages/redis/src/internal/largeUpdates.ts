/**
 * An `Update` (the cache's `update`: write every tier, then tell the others the value) carries
 * the value whole. A large one, published as it is, went to every subscriber on its Pub/Sub
 * connection: its PUBLISH, on the command connection under the command timeout, timed out on a
 * slow link (8 MiB at 10 MB/s), and past Redis's client-output-buffer-limit for Pub/Sub (32 MB,
 * or 8 MB for 60 s, by default) Redis cut every subscriber off (each then reconnected and
 * cleared its L1). So an Update whose encoded message takes `largeValueBytes` or more (UTF-8)
 * is published as a `Remove` of its key, from the same origin: a receiver drops its L1 copy and
 * reads the value from the lower tiers when asked for it. The cache publishes an Update only
 * once its write ended in every tier (the Redis write of a large value answered), so that read
 * finds it. A Remove only ever drops an L1 copy: arriving after a newer change of the key by
 * another instance, it costs a read, never a stale value (an Update so late would be judged by
 * its date: lateUpdates.ts).
 */
import type { InvalidationMessage } from "@tiercache/core"

type Update = Extract<InvalidationMessage.InvalidationMessage, { readonly type: "Update" }>

/** Whether `message`, encoded as `payload`, is an Update of at least `largeBytes` bytes (UTF-8). */
export const isLargeUpdate = (
  message: InvalidationMessage.InvalidationMessage,
  payload: string,
  largeBytes: number
): message is Update =>
  message.type === "Update" &&
  // UTF-8 takes at least one byte per UTF-16 unit and at most three: counted only in between.
  (payload.length >= largeBytes ||
    (payload.length * 3 >= largeBytes && Buffer.byteLength(payload) >= largeBytes))

/** The Remove of an Update's key, from its origin if it names one (the bus stamps its namespace). */
export const removalOf = ({ key, origin }: Update): InvalidationMessage.InvalidationMessage =>
  origin === undefined ? { type: "Remove", key } : { type: "Remove", key, origin }
