/**
 * The bytes carried by the commands sent on a connection that have not ended yet (no reply,
 * error reply, timeout nor close so far). Redis answers a connection's commands in order, so a
 * command's reply comes after the transfers of those ahead of it: its bound counts their bytes
 * (largeValues.ts, streamCommands.ts). A command stops counting once it ended, its own timeout
 * included: on a stalled connection the bounds of later commands do not grow without end.
 */

const queues = new WeakMap<object, { bytes: number }>()

/**
 * Counts `bytes` on `connection` until `reply` settles; answers the bytes counted there before
 * them (the transfers ahead of this command).
 */
export const enqueue = (connection: object, bytes: number, reply: Promise<unknown>): number => {
  let queue = queues.get(connection)
  if (queue === undefined) {
    queue = { bytes: 0 }
    queues.set(connection, queue)
  }
  const ahead = queue.bytes
  const counted = queue
  counted.bytes += bytes
  const release = () => {
    counted.bytes -= bytes
  }
  reply.then(release, release)
  return ahead
}
