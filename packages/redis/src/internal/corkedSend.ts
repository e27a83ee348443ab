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
 * A SET PX followed by a PUBLISH (a cache's write and its bus message) leaves as one script
 * call, SET_PUBLISH (an UNLINK followed by a PUBLISH, a cache's removal and its message, as
 * UNLINK_PUBLISH): Redis then answers the write after it has handed the message to the
 * subscribers. Sent as two commands, Redis wrote the message to the subscriber's connection
 * first (Redis writes the replies of a moment to the client that got its last most recently
 * first); with the cache's own subscriber in the process, the writer's reply waited while the
 * process took that message in. Measured (alternating rounds of 3,000 awaited writes, loopback,
 * a subscriber in the process): SET and PUBLISH corked 1.39-1.42x a lone SET PX, the script
 * 0.94-0.95x; with no subscriber, 1.08-1.10x both. So a corked SET PX (or UNLINK) is held back
 * until the next command: a PUBLISH joins it in the script (unless they are too large for one,
 * MAX_SCRIPTED_CHARS); anything else (and the uncork) sends it first, as it was. Each keeps its own outcome: the script runs both commands with `redis.pcall` and
 * answers both replies, an error reply included. The script is sent whole (EVAL, not EVALSHA),
 * so no NOSCRIPT answer (after SCRIPT FLUSH) can make the driver send it again, behind commands
 * issued after it. The script runs on Redis like the two commands (`+eval` is in the
 * README's ACL line: the tier reads through a script too).
 *
 * Order: commands leave in the order they were issued. A command goes the corked way only
 * while no auto-pipelined command waits to be sent (it would otherwise overtake it); else it
 * joins the auto-pipeline behind it. It also joins it while the connection is not ready (the
 * driver then fails it at once). A held command leaves before any other command the driver
 * sends on the client (its `sendCommand` is wrapped for that, as deadlines.ts wraps it).
 */
import { Command, type Redis } from "ioredis"

/**
 * A SET PX and a PUBLISH, in one call: KEYS[1] the key, ARGV the value, the PX, the channel and
 * the message. Answers both commands' replies (an error reply as such, not failing the call).
 */
export const SET_PUBLISH =
  "return {redis.pcall('SET',KEYS[1],ARGV[1],'PX',ARGV[2]),redis.pcall('PUBLISH',ARGV[3],ARGV[4])}"

/**
 * An UNLINK of KEYS and a PUBLISH, in one call: ARGV the channel and the message. Answers both
 * commands' replies, as SET_PUBLISH does.
 */
export const UNLINK_PUBLISH =
  "return {redis.pcall('UNLINK',unpack(KEYS)),redis.pcall('PUBLISH',ARGV[1],ARGV[2])}"

/** Most keys of an UNLINK held back for a PUBLISH (as many as RedisTier's removals send at once). */
const MAX_HELD_KEYS = 1000

/**
 * Most characters of arguments (the value or keys, and the message) that go through a script:
 * Redis copies them into the script and again into the commands it runs. Measured (alternating
 * rounds, loopback, no subscriber): EVAL of the script cost 5 us more than a lone SET PX with a
 * 200-character value, 18 us with 10,000, 70 us with 50,000 (and 120 us with 100,000); with a
 * subscriber in the process, the two commands corked and the script took about as long at
 * 8,000-16,000 characters. Beyond this, the two go as they are.
 */
const MAX_SCRIPTED_CHARS = 8192

/** Whether the held command and a PUBLISH of `args` are small enough to go as one script call. */
const fitsScript = (held: Held, args: Array<string>): boolean => {
  let chars = args[1]!.length
  for (const arg of held.args) chars += arg.length
  return chars <= MAX_SCRIPTED_CHARS
}

/**
 * A SET PX or an UNLINK sent corked, held back until the next command: its name and arguments,
 * and its caller's promise.
 */
interface Held {
  readonly name: "set" | "unlink"
  readonly args: Array<string>
  readonly resolve: (reply: unknown) => void
  readonly reject: (error: unknown) => void
}

/** Whether `args` of a SET are a key, a value and PX with its milliseconds (what the tier sends). */
const isSetPx = (args: Array<string>): boolean => args.length === 4 && args[2] === "PX"

/** The driver's auto-pipelines waiting to be sent (ioredis 5 keeps them on the client). */
interface Internals {
  readonly _autoPipelines?: Map<string, unknown>
  /** Commands sent and not yet answered. */
  readonly commandQueue?: { readonly length: number }
}

/**
 * Whether commands handed to `client`'s auto-pipeline wait to be sent (at the end of the turn, or
 * behind the auto-pipeline in flight): a command written into the socket now, corked or in a
 * pipeline of the caller's own, would overtake them. It joins them instead.
 */
export const autoPipelineWaits = (client: Redis): boolean =>
  ((client as unknown as Internals)._autoPipelines?.size ?? 0) > 0

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
  let held: Held | undefined
  /** The driver's own sending (with deadlines.ts's deadline), not releasing the held command. */
  const write = client.sendCommand.bind(client)
  /** Sends the held command, if any, as it is. */
  const release = () => {
    const set = held
    if (set === undefined) return
    held = undefined
    const command = new Command(set.name, set.args)
    try {
      write(command)
    } catch (cause) {
      // A driver that throws: the caller fails, never left waiting (nor the command after it).
      set.reject(cause)
      return
    }
    command.promise.then(set.resolve, set.reject)
  }
  client.sendCommand = ((command, stream) => {
    release()
    return write(command, stream)
  }) as Redis["sendCommand"]
  /**
   * The held command and `publish`'s arguments sent as one SET_PUBLISH or UNLINK_PUBLISH;
   * answers the PUBLISH's reply.
   */
  const withPublish = (set: Held, publish: Array<string>): Promise<unknown> => {
    held = undefined
    const [channel, message] = publish
    let args: Array<string>
    if (set.name === "set") {
      const [key, value, , px] = set.args
      args = [SET_PUBLISH, "1", key!, value!, px!, channel!, message!]
    } else {
      args = [UNLINK_PUBLISH, String(set.args.length), ...set.args, channel!, message!]
    }
    const command = new Command("eval", args)
    try {
      write(command)
    } catch (cause) {
      set.reject(cause)
      return Promise.reject(cause)
    }
    return command.promise.then(
      (reply) => {
        const [setReply, published] = reply as [unknown, unknown]
        if (setReply instanceof Error) set.reject(setReply)
        else set.resolve(setReply)
        if (published instanceof Error) throw published
        return published
      },
      (error: unknown) => {
        set.reject(error)
        throw error
      }
    )
  }
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
    release()
    const stream = corked
    corked = undefined
    stream?.uncork()
  }
  const pipelines = client as unknown as Internals
  /** Corks the socket unless it is already; false when a command must take the driver's way. */
  const corkNow = (): boolean => {
    if (client.status !== "ready" || autoPipelineWaits(client)) return false
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
    if (held !== undefined && name === "publish" && args.length === 2 && fitsScript(held, args))
      return withPublish(held, args)
    if (
      (name === "set" && isSetPx(args)) ||
      (name === "unlink" && args.length > 0 && args.length <= MAX_HELD_KEYS)
    ) {
      release()
      return new Promise((resolve, reject) => {
        held = { name, args, resolve, reject }
      })
    }
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
