/**
 * A `RemoveBulk` (the cache's invalidateMany or a replay, 1000 keys a message at most; the
 * removes of one moment, 256) was cut by key count only: keys have no length limit, so one
 * message of long keys took megabytes. Redis queues a whole message on every subscriber's
 * connection, and cuts a subscriber off once that queue passes client-output-buffer-limit for
 * Pub/Sub (32 MB at once, or 8 MB for 60 s, by default): each then reconnected and cleared its
 * L1, and the PUBLISH of such a message could outlast the command timeout. So a RemoveBulk whose
 * encoded message takes more than the bus's `maxMessageBytes` (UTF-8) is published as several
 * RemoveBulks of its keys, in order, each at most that long; only a key whose message alone is
 * longer leaves in a message of its own, as long as it is.
 *
 * The pieces leave one at a time, each once Redis answered the one before (of any cut message
 * of the bus): sent together, they reached Redis together, and Redis, which writes at most
 * 64 KiB to a client per turn of its loop, queued them all on every subscriber at once (2 MB
 * cut in 1 MiB pieces still passed a 2 MB limit). Messages of other kinds do not wait for them:
 * a piece arriving after a later message only removes more (the next read goes to the lower
 * tiers), never leaves a stale copy.
 */
import { InvalidationMessage } from "@tiercache/core"

type RemoveBulk = Extract<InvalidationMessage.InvalidationMessage, { readonly type: "RemoveBulk" }>

/** A message and its wire form. */
export interface Encoded {
  readonly stamped: InvalidationMessage.InvalidationMessage
  readonly payload: string
}

/** Whether `payload` takes more than `maxBytes` bytes in UTF-8. */
const longerThan = (payload: string, maxBytes: number): boolean =>
  // UTF-8 takes at least one byte per UTF-16 unit and at most three: counted only in between.
  payload.length > maxBytes || (payload.length * 3 > maxBytes && Buffer.byteLength(payload) > maxBytes)

/**
 * The messages `out` is published as: itself, unless it is a RemoveBulk longer than `maxBytes`;
 * then RemoveBulks of its keys in order (its other fields kept), each at most `maxBytes` long
 * where a key allows it.
 */
export const piecesOf = (out: Encoded, maxBytes: number): ReadonlyArray<Encoded> => {
  if (out.stamped.type !== "RemoveBulk" || !longerThan(out.payload, maxBytes)) return [out]
  const bulk = out.stamped
  const withKeys = (keys: ReadonlyArray<string>): RemoveBulk => ({ ...bulk, keys })
  // The message without keys, then each key's JSON string and a comma before all but the first:
  // JSON.stringify writes an array of strings exactly so.
  const empty = Buffer.byteLength(InvalidationMessage.encode(withKeys([])))
  const pieces: Array<Encoded> = []
  let start = 0
  let bytes = empty
  const cut = (end: number) => {
    const stamped = withKeys(bulk.keys.slice(start, end))
    pieces.push({ stamped, payload: InvalidationMessage.encode(stamped) })
    start = end
    bytes = empty
  }
  for (let i = 0; i < bulk.keys.length; i++) {
    const key = Buffer.byteLength(JSON.stringify(bulk.keys[i]))
    const more = i === start ? key : key + 1
    if (i > start && bytes + more > maxBytes) {
      cut(i)
      bytes += key
    } else {
      bytes += more
    }
  }
  cut(bulk.keys.length)
  return pieces
}

/**
 * Sends the pieces of a message (see {@link piecesOf}) with `sendOne`: a lone one at once, the
 * pieces of a cut message one at a time. The answer settles once every piece was answered,
 * failed when any failed (the others are still sent: each only removes).
 */
export const makeSender = (
  sendOne: (out: Encoded) => Promise<unknown>
): ((pieces: ReadonlyArray<Encoded>) => Promise<unknown>) => {
  /** Settles once the last piece queued was answered (never rejects). */
  let lane: Promise<unknown> = Promise.resolve()
  let queued = 0
  const attempt = (piece: Encoded): Promise<unknown> => {
    try {
      return sendOne(piece)
    } catch (cause) {
      return Promise.reject(cause)
    }
  }
  const inTurn = (piece: Encoded): Promise<unknown> => {
    queued++
    // Sent at once when nothing is waiting, so that it leaves with this moment's commands.
    const sent = queued === 1 ? attempt(piece) : lane.then(() => attempt(piece))
    const done = sent.then(
      () => queued--,
      () => queued--
    )
    lane = done
    return sent
  }
  return (pieces) => (pieces.length === 1 ? sendOne(pieces[0]!) : Promise.all(pieces.map(inTurn)))
}
