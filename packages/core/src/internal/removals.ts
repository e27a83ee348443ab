/**
 * The bus messages that tell the other instances that keys were removed: one key as a
 * `Remove`, more as `RemoveBulk`s of at most BULK keys each (invalidateMany, a replay). A
 * message stays small enough for a bus to carry in one command: Redis drops a Pub/Sub
 * subscriber whose pending output passes its limit (32 MB by default: a RemoveBulk of some
 * 300,000 keys), and one PUBLISH of such a message outlasts the command timeout. BULK counts
 * keys, not bytes: keys have no length limit, so a bus cuts a message of long keys by its
 * size itself (RedisInvalidationBus's `maxMessageBytes`).
 */
import type { InvalidationMessage } from "../InvalidationMessage.js"

/** Most keys in one RemoveBulk message. */
export const BULK = 1000

/** The messages removing `keys` (at least one), sent by `origin`. */
export const removals = (keys: ReadonlyArray<string>, origin: string): Array<InvalidationMessage> => {
  if (keys.length === 1) return [{ type: "Remove", key: keys[0]!, origin }]
  const messages: Array<InvalidationMessage> = []
  for (let i = 0; i < keys.length; i += BULK) {
    const bulk = keys.slice(i, i + BULK)
    messages.push(
      bulk.length === 1
        ? { type: "Remove", key: bulk[0]!, origin }
        : { type: "RemoveBulk", keys: bulk, origin }
    )
  }
  return messages
}
