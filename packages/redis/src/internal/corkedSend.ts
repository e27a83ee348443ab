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

/** The corked writing of one client, shared by everything that writes on it (tier and bus). */
interface Corker {
  readonly send: Send
  readonly beforeUncork: (hook: () => void) => boolean
}

const corkers = new WeakMap<Redis, Corker>()

const corkerOf = (client: Redis): Corker => {
  const known = corkers.get(client)
  if (known !== undefined) return known
  let corked: Redis["stream"] | undefined
  let hooks: Array<() => void> = []
  const uncork = () => {
    // The hooks run while the socket is still corked: what they send leaves in this write. A
    // hook answers its own callers' failures; one that throws anyway must not keep the others
    // (and their callers) from running, nor the socket corked.
    while (hooks.length > 0) {
      const run = hooks
      hooks = []
      for (const hook of run) {
        try {
          hook()
        } catch {
          // nothing to hand it to
        }
      }
    }
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  const pipelines = client as unknown as Internals
  /** Corks the socket unless it is already; false when a command must take the driver's way. */
  const corkNow = (): boolean => {
    if (client.status !== "ready" || (pipelines._autoPipelines?.size ?? 0) > 0) return false
    if (corked === undefined) {
      corked = client.stream
      corked.cork()
      // Idle: out as soon as this tick is done. Busy (replies still to come): at the end of the
      // event-loop turn, with every command of the turn.
      if ((pipelines.commandQueue?.length ?? 0) === 0) process.nextTick(uncork)
      else setImmediate(uncork)
    }
    return true
  }
  const send: Send = (name, args, fallback) => {
    if (!corkNow()) return fallback()
    const command = new Command(name, args)
    client.sendCommand(command)
    return command.promise
  }
  const beforeUncork = (hook: () => void): boolean => {
    if (!corkNow()) return false
    hooks.push(hook)
    return true
  }
  const corker = { send, beforeUncork }
  corkers.set(client, corker)
  return corker
}

/** The corked sender of `client`, shared by everything that writes on it (tier and bus). */
export const sender = (client: Redis): Send => corkerOf(client).send

/**
 * Runs `hook` once, right before the socket of `client` is uncorked (corking it now if it is
 * not), so that what `hook` sends leaves in the same write as the commands sent before it in
 * this moment. Answers false, without keeping `hook`, when commands must take the driver's way
 * instead (not ready, or auto-pipelined commands waiting): then send at once.
 */
export const beforeUncork = (client: Redis, hook: () => void): boolean => corkerOf(client).beforeUncork(hook)
