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
 * queue holds about the commands in flight. A command the driver failed without sending it (a
 * closed connection) stays until its deadline; failing it again then changes nothing (a promise
 * settles once).
 * The timer does not keep the process alive: a command waiting for its reply has the socket for
 * that.
 */
import type { Command, Redis } from "ioredis"

/** ioredis's error for a command that had no reply in time (tierRunner.ts says it in the tier's words). */
export const TIMED_OUT = "Command timed out"

/** Below this many dropped entries the queue's arrays are not compacted. */
const COMPACT_AT = 1024

/** Fails every command sent on `client` that has no reply `timeoutMs` after it was sent. */
export const keepDeadlines = (client: Redis, timeoutMs: number): void => {
  // The queue: parallel arrays from `head` on (no object per command).
  let commands: Array<Command | undefined> = []
  let deadlines: Array<number> = []
  let head = 0
  let timer: ReturnType<typeof setTimeout> | undefined

  const arm = (delayMs: number) => {
    timer = setTimeout(expire, delayMs)
    timer.unref()
  }

  /** Drops answered commands from the head; compacts the arrays once enough were dropped. */
  const dropAnswered = () => {
    while (head < commands.length && commands[head]!.isResolved) commands[head++] = undefined
    if (head === commands.length) {
      commands = []
      deadlines = []
      head = 0
    } else if (head >= COMPACT_AT && head * 2 >= commands.length) {
      commands = commands.slice(head)
      deadlines = deadlines.slice(head)
      head = 0
    }
  }

  const expire = () => {
    timer = undefined
    const now = performance.now()
    while (head < commands.length) {
      const command = commands[head]!
      if (!command.isResolved) {
        if (deadlines[head]! > now) break
        command.reject(new Error(TIMED_OUT))
      }
      commands[head++] = undefined
    }
    dropAnswered()
    if (head < commands.length) arm(Math.max(1, Math.ceil(deadlines[head]! - now)))
  }

  const send = client.sendCommand
  client.sendCommand = function (this: Redis, command, stream) {
    dropAnswered()
    commands.push(command)
    deadlines.push(performance.now() + timeoutMs)
    // Set while anything is queued; with an empty queue before this command, for this one.
    if (timer === undefined) arm(timeoutMs)
    return send.call(this, command, stream)
  } as Redis["sendCommand"]
}
