/**
 * Several commands handed to the driver together and written into the socket as one string, one
 * `write` of the socket. Corking the socket around them instead leaves them as a vectored write
 * of one chunk per command, which Node builds and hands out at some cost: measured (a GETRANGE
 * and a PTTL one caller after another, loopback, rounds alternating), the joined write answered
 * in 0.95-0.96x the time of the corked pair.
 * The commands go through the client's `sendCommand` as ioredis's own pipelines send theirs (a
 * stream marked `isPipeline` that collects what each command writes), so that the driver queues
 * each for its reply in order, deadlines.ts gives each its deadline and corkedSend.ts sends a
 * held write before them. The text is then written into the client's socket at once: it follows
 * everything sent before it, and if the socket is corked (corkedSend.ts) it leaves with the
 * moment's other commands.
 * The command connection never sends a command again through the stream it was first sent with
 * (opener.ts: no offline queue, no resending of unanswered commands after a reconnect), so the
 * collecting stream is not kept beyond this call.
 */
import type { Command, Redis } from "ioredis"

/**
 * Sends `commands` on `client` in one socket write, answering true; answers false, sending
 * nothing, when the client is not ready (the caller then sends them its usual way, which fails
 * them as the driver does).
 */
export const sendInOneWrite = (client: Redis, commands: ReadonlyArray<Command>): boolean => {
  if (client.status !== "ready") return false
  const chunks: Array<string | Buffer> = []
  let text = true
  const collector = {
    isPipeline: true,
    destination: { redis: client },
    write: (chunk: string | Buffer) => {
      if (typeof chunk !== "string") text = false
      chunks.push(chunk)
    }
  }
  for (const command of commands)
    client.sendCommand(command, collector as unknown as Parameters<Redis["sendCommand"]>[1])
  if (chunks.length === 0) return true
  // A command with a Buffer argument writes a Buffer (ioredis's toWritable): then all go as bytes.
  client.stream.write(text ? chunks.join("") : Buffer.concat(chunks.map((c) => Buffer.from(c))))
  return true
}
