/**
 * A bound on a command whose reply may be large (a stream consumer's XREADGROUP or XCLAIM: an
 * entry can hold tens of MB) that does not cut a reply short while it is arriving: the command
 * fails once `within` passed and then nothing was read from its connection for `idle`.
 * A fixed bound failed such a read every time on a slow link, and the consumer, reading the same
 * entries again, never moved past them. A connection that answers nothing still fails it within
 * `within` plus at most `idle`. Meant for a connection of its own (a consumer's): the bytes
 * read are those of its replies.
 */
import { type Duration, Effect } from "effect"
import type { Redis } from "ioredis"

/** What was read from `conn` so far: its socket and the bytes read from it. */
const progressOf = (conn: Redis): readonly [unknown, number] => {
  const socket = conn.stream as Redis["stream"] | undefined
  return [socket, socket?.bytesRead ?? 0]
}

/**
 * Succeeds once `within` passed since it started and then a span of `idle` went by with nothing
 * read from `conn` (its socket the same, its bytes read unchanged); on the Clock.
 */
export const silence = (
  conn: Redis,
  within: Duration.Duration,
  idle: Duration.Duration
): Effect.Effect<void> =>
  Effect.suspend(() => {
    let [socket, bytes] = progressOf(conn)
    const check: Effect.Effect<void> = Effect.suspend(() => {
      const [nowSocket, nowBytes] = progressOf(conn)
      if (nowSocket === socket && nowBytes === bytes) return Effect.void
      socket = nowSocket
      bytes = nowBytes
      return Effect.zipRight(Effect.sleep(idle), check)
    })
    return Effect.zipRight(Effect.sleep(within), check)
  })
