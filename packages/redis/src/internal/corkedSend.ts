/**
 * Commands of the write path (SET, UNLINK, PUBLISH) sent on the command connection without
 * ioredis's auto-pipeline: each is written at once into the socket, corked so that the commands
 * of a moment leave in one socket write. On an idle connection the cork comes off when the
 * current tick's work is done (`process.nextTick`); while replies are still to come, at the end
 * of the event-loop turn (`setImmediate`), with every command of the turn: a write system call
 * per tick cost cold misses with 64 callers a quarter of their throughput. The auto-pipeline
 * instead builds a Pipeline object per turn, always waits for the turn's end, and keeps one
 * Pipeline in flight at a time: a write issued while an earlier one waits for its reply waited
 * a whole round trip more.
 * Measured (5,000 SET + PUBLISH pairs one after another, loopback): 93-101 us and 84-96 us of
 * CPU per pair auto-pipelined, 65-76 us and 48-55 us corked.
 *
 * Order: commands leave in the order they were issued. A command goes the corked way only
 * while no auto-pipelined command waits to be sent (it would otherwise overtake it); else it
 * joins the auto-pipeline behind it. It also joins it while the connection is not ready (the
 * driver then fails it at once).
 */
import { Command, type Redis } from "ioredis"

/** The driver's auto-pipelines waiting to be sent (ioredis 5 keeps them on the client). */
interface Internals {
  readonly _autoPipelines?: Map<string, unknown>
  /** Commands sent and not yet answered. */
  readonly commandQueue?: { readonly length: number }
}

/** Sends one command corked, or `fallback()` (the driver's own method) to keep the order. */
export type Send = (name: string, args: Array<string>, fallback: () => Promise<unknown>) => Promise<unknown>

const senders = new WeakMap<Redis, Send>()

/** The corked sender of `client`, shared by everything that writes on it (tier and bus). */
export const sender = (client: Redis): Send => {
  const known = senders.get(client)
  if (known !== undefined) return known
  let corked: Redis["stream"] | undefined
  const uncork = () => {
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  const pipelines = client as unknown as Internals
  const send: Send = (name, args, fallback) => {
    if (client.status !== "ready" || (pipelines._autoPipelines?.size ?? 0) > 0) return fallback()
    if (corked === undefined) {
      corked = client.stream
      corked.cork()
      // Idle: out as soon as this tick is done. Busy (replies still to come): at the end of the
      // event-loop turn, with every command of the turn.
      if ((pipelines.commandQueue?.length ?? 0) === 0) process.nextTick(uncork)
      else setImmediate(uncork)
    }
    const command = new Command(name, args)
    client.sendCommand(command)
    return command.promise
  }
  senders.set(client, send)
  return send
}
