/**
 * Large values (at least the connection's `largeValueBytes`, encoded) travel on a connection of
 * their own, so that their transfer never holds up the commands of other keys on the command
 * connection, and each command carrying one is bounded by a timeout scaled to its size
 * (`commandTimeout` plus `timeoutPerMegabyte` per MiB), since moving 20 MB through a loaded
 * machine can take longer than a small command's timeout.
 *
 * Before a large value is written, the namespace's marker (`<prefix>__tiercache:large`, see
 * `MARKER`) is set to outlive it. The read script asks for every value with one MGET while the
 * marker is absent, and value by value (GETRANGE, at most `largeValueBytes`) while it is there:
 * MGET copies a whole value into the script (a 20 MB one took Redis 200 ms), GETRANGE per key
 * costs a batch of small values about a fifth more Redis time.
 */
import { Tier } from "@tiercache/core"
import { Effect } from "effect"
import { Command, type Redis, ReplyError } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"

/**
 * The marker's key inside a namespace: set (with an expiry past that of every large value
 * written since) before a large value is written; never removed by `clear` or a pattern (see
 * tierWrites.ts), only by its expiry. Reserved: the cache refuses user keys under `__tiercache:`.
 */
export const MARKER = `${Tier.reservedPrefix}large`

/** How much longer than the large value the marker lives: its transfer and any clock drift. */
const MARKER_MARGIN_MS = 60_000

/** Sets KEYS[1] with PX ARGV[1] unless it lives that long already (or has no expiry). */
const MARK_SCRIPT = `
local want = tonumber(ARGV[1])
local left = redis.call('PTTL', KEYS[1])
if left ~= -1 and left < want then redis.call('SET', KEYS[1], '1', 'PX', want) end
return 1
`

const MARK_COMMAND = "tiercacheMarkLarge"

interface Marking {
  readonly tiercacheMarkLarge: (key: string, px: string) => Promise<unknown>
}

/** The large-value commands of one tier; failures are the driver's errors, as they come. */
export interface LargeValues {
  /** The threshold (bytes) from which a value is large. */
  readonly limit: number
  /** Whether an encoded value is large (its UTF-8 length is counted only when it may be). */
  readonly isLarge: (value: string) => boolean
  /** The marker's full key: present while a large value written by the cache may be. */
  readonly marker: string
  /**
   * SET with PX on the large-value connection (after the marker); `sent`, when given, is handed
   * a promise of the SET's landing as soon as the SET is sent (it lands then even if this effect
   * is interrupted, or times out: see `landedOf`), with the SET's timeout (ms).
   */
  readonly write: (
    full: string,
    value: string,
    px: number,
    sent?: (reply: Promise<unknown>, withinMs: number) => void
  ) => Effect.Effect<void, unknown>
  /** The value (or null) and PTTL of a key, on the large-value connection. */
  readonly read: (full: string) => Effect.Effect<readonly [unknown, unknown], unknown>
  /**
   * EVAL of `script` on one key, carrying a large value that may be written for `px` ms, on
   * the large-value connection (after the marker); `sent`, when given, is handed a promise of its
   * landing as soon as the EVAL is sent (as `write`'s).
   */
  readonly eval: (
    script: string,
    full: string,
    args: ReadonlyArray<string>,
    bytes: number,
    px: number,
    sent?: (reply: Promise<unknown>, withinMs: number) => void
  ) => Effect.Effect<unknown, unknown>
}

const send = (client: Redis, name: string, args: Array<string>, timeoutMs: number): Promise<unknown> => {
  const command = new Command(name, args, { replyEncoding: "utf8" })
  // The large-value connection has no timeout of its own: every command gets one for its size.
  command.setTimeout(timeoutMs)
  client.sendCommand(command)
  return command.promise as Promise<unknown>
}

/** How long a PING that failed without any reply waits before it is sent again. */
const PING_AGAIN_MS = 100

/**
 * When a write sent on `client` has landed, given its reply: once Redis answered it (its reply,
 * or an error reply). A reply that failed otherwise (its timeout: the command may still be on its
 * way, to run later) lands once a PING sent behind it on the same connection is answered: any
 * reply, an error reply (BUSY, NOPERM) included, since Redis runs a connection's commands in
 * order. A PING that fails without a reply is sent again after PING_AGAIN_MS while the
 * connection stays up; a closed connection sends nothing more.
 */
const landedOf = (client: Redis, reply: Promise<unknown>): Promise<unknown> => {
  const drained = (): Promise<unknown> =>
    client.ping().then(
      () => undefined,
      (error: unknown) =>
        error instanceof ReplyError || client.status !== "ready"
          ? undefined
          : new Promise((resolve) => setTimeout(resolve, PING_AGAIN_MS)).then(drained)
    )
  return reply.then(
    () => undefined,
    (error: unknown) => (error instanceof ReplyError || client.status !== "ready" ? undefined : drained())
  )
}

/** A value that is not a string (WRONGTYPE) is not an entry: a miss. */
const orMiss = (error: unknown): Promise<null> =>
  error instanceof Error && error.message.startsWith("WRONGTYPE")
    ? Promise.resolve(null)
    : Promise.reject(error)

/**
 * The large-value commands on `connection`, for keys under `prefix`.
 */
export const make = (connection: RedisConnection.Service, prefix: string): LargeValues => {
  const limit = connection.largeValueBytes
  const timeoutFor = connection.timeoutFor
  const marker = prefix + MARKER
  const command = connection.client
  if (!(MARK_COMMAND in command)) command.defineCommand(MARK_COMMAND, { numberOfKeys: 1, lua: MARK_SCRIPT })
  const marking = command as unknown as Marking
  /** The marker set to outlive a value written for `px` ms, on the command connection. */
  const mark = (px: number): Effect.Effect<void, unknown> =>
    Effect.tryPromise({
      try: () => marking.tiercacheMarkLarge(marker, String(Math.ceil(px) + MARKER_MARGIN_MS)),
      catch: (cause) => cause
    })
  const withBulk = <A>(use: (client: Redis) => Promise<A>): Effect.Effect<A, unknown> =>
    Effect.flatMap(
      Effect.mapError(connection.bulk, (error) => new Error(error.reason)),
      (client) => Effect.tryPromise({ try: () => use(client), catch: (cause) => cause })
    )
  // The marker's reply comes before the value is sent: a reader that can see the value sees
  // the marker.
  const writeBulk = <A>(px: number, use: (client: Redis) => Promise<A>): Effect.Effect<A, unknown> =>
    Effect.zipRight(mark(px), withBulk(use))
  return {
    limit,
    marker,
    // A UTF-16 code unit is at most 3 bytes of UTF-8: shorter strings are small for sure.
    isLarge: (value) => value.length * 3 >= limit && Buffer.byteLength(value) >= limit,
    write: (full, value, px, sent) =>
      Effect.asVoid(
        writeBulk(px, (client) => {
          const within = timeoutFor(Buffer.byteLength(value))
          const reply = send(client, "set", [full, value, "PX", String(px)], within)
          sent?.(landedOf(client, reply), within)
          return reply
        })
      ),
    eval: (script, full, args, bytes, px, sent) =>
      writeBulk(px, (client) => {
        const within = timeoutFor(bytes)
        const reply = send(client, "eval", [script, "1", full, ...args], within)
        sent?.(landedOf(client, reply), within)
        return reply
      }),
    read: (full) =>
      withBulk(async (client) => {
        const length = Number(await send(client, "strlen", [full], timeoutFor(0)))
        const within = timeoutFor(length)
        return Promise.all([
          send(client, "get", [full], within).catch(orMiss),
          send(client, "pttl", [full], within)
        ] as const)
      })
  }
}
