/**
 * A command connection whose peer is gone without a word (its host down, or a NAT or load
 * balancer that forgot the flow): every command on it times out, yet the socket stays open until
 * TCP gives up retransmitting (about 15 minutes on Linux), so the connection is never made again
 * meanwhile, even once Redis answers at another address. The bus notices the same on its own
 * connection with a heartbeat (busSubscription.ts); the command connection has the commands
 * themselves: when commands keep timing out and nothing at all was read from the connection for
 * STALL_LIMIT command timeouts, it is cut, and the driver connects again (its retryStrategy).
 * Redis busy with a long command or a script is silent too, and answers BUSY once past its
 * busy-reply-threshold (5 s by default: 10 of the default 500 ms command timeouts); cutting it
 * earlier would only make the driver connect again to a server still busy.
 *
 * The connections of the stream commands (the streams connection, the blocking one, a
 * consumer's) are watched the same way, told by their commands that had no reply in time
 * (receiving.ts, through `timedOut`): on the streams connection every `publish` and
 * `readLatest` failed for those 15 minutes, and a consumer read nothing.
 */
import type { Redis } from "ioredis"

/** How many command timeouts of silence, with commands timing out, end the connection. */
export const STALL_LIMIT = 10

/**
 * Answers what to call each time commands on `client` time out (deadlines.ts): it cuts the
 * connection (`disconnect(true)`: the driver reconnects) once nothing was read from it since the
 * first of such calls STALL_LIMIT command timeouts ago, and calls `onCut` first.
 */
export const watchStalls = (client: Redis, timeoutMs: number, onCut: () => void): (() => void) => {
  const limitMs = STALL_LIMIT * timeoutMs
  let socket: Redis["stream"] | undefined
  let bytesRead = 0
  let silentSince = 0
  return () => {
    if (client.status !== "ready") {
      socket = undefined
      return
    }
    const stream = client.stream
    const now = performance.now()
    if (stream !== socket || stream.bytesRead !== bytesRead) {
      // Something was read since the last timeout (or this is a new connection): the silence
      // is measured from now.
      socket = stream
      bytesRead = stream.bytesRead
      silentSince = now
      return
    }
    if (now - silentSince < limitMs) return
    socket = undefined
    onCut()
    client.disconnect(true)
  }
}

/** The watch of each watched connection (see `watch`). */
const watches = new WeakMap<Redis, () => void>()

/** Watches `client` as `watchStalls` does, told by `timedOut(client)`. */
export const watch = (client: Redis, timeoutMs: number, onCut: () => void): void => {
  watches.set(client, watchStalls(client, timeoutMs, onCut))
}

/** Tells the watch of `client` (if it has one) that a command on it had no reply in time. */
export const timedOut = (client: Redis): void => watches.get(client)?.()
