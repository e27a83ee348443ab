/**
 * The command timeout of the command connection, kept with one timer per connection instead of
 * ioredis's `commandTimeout`, which starts a Node timer for every command and clears it at the
 * reply. Every command sent on the client (the corked writes, the reads, the auto-pipeline's, a
 * user's own) gets a deadline, `timeoutMs` after it is handed to the driver, as ioredis's does,
 * and is failed with ioredis's own error ("Command timed out") when it has no reply by then.
 * Measured (bench/PROFILE.md, thirteenth round): a lone GETRANGE and PTTL in one write, one
 * caller, rounds alternating, took 6-8 us (9-13%) longer on a client with `commandTimeout` than
 * on one without; ioredis then starts and clears two timers per read, and when the last timer
 * of a duration is cleared Node drops its list, to build it again for the next command. An L2
 * hit through the cache's `get` (`profile.mjs get --no-bus`) allocated 560-590 B with ioredis's
 * timers, 265-320 B without.
 *
 * A connection answers its commands in order, so the deadlines fall in the order of the queue
 * and one timer, set for the oldest command still unanswered, serves them all: when it fires,
 * the answered commands at the head are dropped, the overdue ones failed, and it is set again
 * for the next. Answered commands are also dropped from the head as new ones are sent, so the
 * queue holds the commands in flight and no more.
 * Which are answered is read from the driver's own queue of the commands it wrote and has no
 * reply for yet (ioredis 5's `commandQueue`, in the order they were written, as here): the
 * commands held here beyond its length have left it, with their reply, an error reply, or
 * failed when the socket closed (the command connection retries nothing and has no offline
 * queue, opener.ts: a close fails every command the driver holds, and empties its queue, before
 * anything else is sent). `isResolved` alone does not tell: ioredis sets it on a reply
 * only, never when it rejects a command. A command the driver failed without writing it (a
 * connection down or closed, the offline queue off) never enters either queue: with 100,000 of
 * them failing at once in an outage, the queue held all of them and what they carry until their
 * deadlines, and the timer then made an error for each, blocking the event loop for a quarter
 * of a second.
 * The overdue commands are failed after the event loop has read what came in meanwhile (in the
 * same turn, `setImmediate`: Node runs timers before it reads sockets): a reply that came before
 * the deadline while the event loop was busy (a long computation, a pause of the collector)
 * answers its command. With ioredis's timers, and this timer failing at once, a GET answered in
 * under a millisecond failed when the event loop was held for longer than the command timeout.
 * The timer does not keep the process alive: a command waiting for its reply has the socket for
 * that (while the driver holds a command, its socket is open; a close fails them all).
 */
import type { Command, Redis } from "ioredis"

/** ioredis's error for a command that had no reply in time (tierRunner.ts says it in the tier's words). */
export const TIMED_OUT = "Command timed out"

/** Below this many dropped entries the queue's arrays are not compacted. */
const COMPACT_AT = 1024

/** What the driver keeps of a client (ioredis 5): the commands written and not yet answered, in order. */
interface Internals {
  readonly commandQueue: { readonly length: number }
}

/** How many commands each client's queue holds (for tests: nothing answered or unsent stays). */
const holders = new WeakMap<Redis, () => number>()

/** How many commands the deadlines of `client` hold now. */
export const held = (client: Redis): number => holders.get(client)?.() ?? 0

/**
 * Fails every command sent on `client` that has no reply `timeoutMs` after it was sent, and then
 * calls `timedOut` (stalls.ts watches for a connection that answers nothing). Answers a function
 * that sets the timeout of the commands sent from then on (the first ones, sent while the
 * connection opens, get the connect timeout: opener.ts).
 */
export const keepDeadlines = (
  client: Redis,
  initialTimeoutMs: number,
  timedOut: () => void = () => {}
): ((timeoutMs: number) => void) => {
  let timeoutMs = initialTimeoutMs
  // The queue: parallel arrays from `head` on (no object per command).
  let commands: Array<Command | undefined> = []
  let deadlines: Array<number> = []
  let head = 0
  /** The timer, or the failing of overdue commands it scheduled: set while anything is queued. */
  let timer: ReturnType<typeof setTimeout> | ReturnType<typeof setImmediate> | undefined
  /** Whether `timer` is the failing of overdue commands (an immediate), not a timeout. */
  let failing = false
  const driver = client as unknown as Internals

  const arm = (delayMs: number) => {
    timer = setTimeout(expire, delayMs)
    timer.unref()
  }

  /**
   * Drops answered commands from the head: those beyond the driver's unanswered ones, since the
   * commands held here are the last ones the driver wrote, in its order. Empties the arrays in
   * place once nothing is held; compacts them once enough were dropped.
   */
  const dropAnswered = () => {
    const unanswered = driver.commandQueue.length
    while (commands.length - head > unanswered) commands[head++] = undefined
    if (head === commands.length) {
      if (head > 0) {
        commands.length = 0
        deadlines.length = 0
        head = 0
      }
    } else if (head >= COMPACT_AT && head * 2 >= commands.length) {
      commands = commands.slice(head)
      deadlines = deadlines.slice(head)
      head = 0
    }
  }

  /** Fails the commands overdue when the timer fired that no reply read since has answered. */
  const failOverdue = (firedAt: number) => {
    timer = undefined
    failing = false
    dropAnswered()
    // Every command from the head on is unanswered now.
    let failed = false
    while (head < commands.length && deadlines[head]! <= firedAt) {
      commands[head]!.reject(new Error(TIMED_OUT))
      commands[head++] = undefined
      failed = true
    }
    dropAnswered()
    if (failed) timedOut()
    if (head < commands.length) arm(Math.max(1, Math.ceil(deadlines[head]! - performance.now())))
  }

  const expire = () => {
    timer = undefined
    dropAnswered()
    if (head === commands.length) return
    const now = performance.now()
    if (deadlines[head]! > now) {
      arm(Math.max(1, Math.ceil(deadlines[head]! - now)))
      return
    }
    // After this turn's I/O: replies already received answer their commands first. Not unref'd:
    // Node then polls without waiting only for the immediates that keep the loop alive (an
    // unref'd one waited for the next socket event, the late reply itself).
    failing = true
    timer = setImmediate(failOverdue, now)
  }

  const send = client.sendCommand
  client.sendCommand = function (this: Redis, command, stream) {
    dropAnswered()
    const written = driver.commandQueue.length
    const reply = send.call(this, command, stream)
    // Not written: failed at once (the connection down or closed); no reply to wait for.
    if (driver.commandQueue.length === written) return reply
    commands.push(command)
    deadlines.push(performance.now() + timeoutMs)
    // Set while anything is queued; with an empty queue before this command, for this one.
    if (timer === undefined) arm(timeoutMs)
    return reply
  } as Redis["sendCommand"]
  holders.set(client, () => commands.length - head)
  return (ms) => {
    timeoutMs = ms
    // The timer set for a command sent under the longer timeout of the open would fire after
    // the deadlines of the commands sent from now on: set it again, for the oldest one held.
    if (timer === undefined || failing) return
    clearTimeout(timer as ReturnType<typeof setTimeout>)
    timer = undefined
    dropAnswered()
    if (head < commands.length) arm(Math.max(1, Math.ceil(deadlines[head]! - performance.now())))
  }
}
