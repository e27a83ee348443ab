/**
 * A bound on a command whose reply may be large (a stream entry can hold tens of MB) that does
 * not cut a reply short while it is arriving: the command fails once `within` passed and then
 * nothing was read from its connection for `idle`. A fixed bound failed such a read every time
 * on a slow link (and a consumer, reading the same entries again, never moved past them). A
 * connection that answers nothing still fails it within `within` plus at most `idle`. Meant for
 * a connection of the stream commands (a consumer's, the blocking one, the streams one): the
 * bytes read are those of its replies, or of the replies ahead of it, which Redis sends first.
 *
 * One wait per command, kept with a Node timer (as the command connection's deadlines are,
 * deadlines.ts), not a race of fibers: a small `readLatest` so bounded took about 60% more CPU
 * than one under a plain timeout.
 */
import { Effect } from "effect"
import type { Redis } from "ioredis"
import { MAX_TIMER_MS } from "./connectionOptions.js"

/** What a command that had no reply in time fails with (its bounds, ms). */
export class NoReply {
  constructor(
    readonly withinMs: number,
    readonly idleMs: number
  ) {}
}

/** What was read from `conn` so far: its socket and the bytes read from it. */
const progressOf = (conn: Redis): readonly [unknown, number] => {
  const socket = conn.stream as Redis["stream"] | undefined
  return [socket, socket?.bytesRead ?? 0]
}

/**
 * The reply of the command `send` sends on `conn` (called once, at once): fails with `NoReply`
 * once `withinMs` passed since and then a span of `idleMs` went by with nothing read from `conn`
 * (its socket the same, its bytes read unchanged), or with the command's own failure.
 */
export const reply = <A>(
  conn: Redis,
  send: () => Promise<A>,
  withinMs: number,
  idleMs: number
): Effect.Effect<A, unknown> =>
  Effect.async<A, unknown>((resume) => {
    let [socket, bytes] = progressOf(conn)
    let done = false
    let timer: ReturnType<typeof setTimeout> | undefined
    const end = (result: Effect.Effect<A, unknown>) => {
      if (done) return
      done = true
      clearTimeout(timer)
      resume(result)
    }
    /** Runs `then` in `ms`, in steps a Node timer keeps (a blocking read's bound can be years). */
    const after = (ms: number, then: () => void) => {
      timer =
        ms > MAX_TIMER_MS
          ? setTimeout(() => after(ms - MAX_TIMER_MS, then), MAX_TIMER_MS)
          : setTimeout(then, ms)
    }
    const check = () => {
      const [nowSocket, nowBytes] = progressOf(conn)
      if (nowSocket === socket && nowBytes === bytes) return end(Effect.fail(new NoReply(withinMs, idleMs)))
      socket = nowSocket
      bytes = nowBytes
      after(idleMs, check)
    }
    let sent: Promise<A>
    try {
      sent = send()
    } catch (cause) {
      sent = Promise.reject(cause)
    }
    after(withinMs, check)
    sent.then(
      (value) => end(Effect.succeed(value)),
      (cause) => end(Effect.fail(cause))
    )
    return Effect.sync(() => {
      done = true
      clearTimeout(timer)
    })
  })
