/**
 * Large values (at least the connection's `largeValueBytes`, encoded) travel on a connection of
 * their own, so that their transfer never holds up the commands of other keys on the command
 * connection, and each command on it is bounded by a timeout scaled to its size and to the
 * sizes of the commands ahead of it there (`commandTimeout` plus `timeoutPerMegabyte` per MiB:
 * see `send`), since moving 20 MB through a loaded machine can take longer than a small
 * command's timeout, and Redis answers a connection's commands in order.
 *
 * Before a large value is written, the namespace's marker (`<prefix>__tiercache:large`, see
 * `MARKER`) is set to outlive it. The read script asks for every value with one MGET while the
 * marker is absent, and value by value (GETRANGE, at most `largeValueBytes`) while it is there:
 * MGET copies a whole value into the script (a 20 MB one took Redis 200 ms), GETRANGE per key
 * costs a batch of small values about a fifth more Redis time.
 *
 * A write takes its entry's `staleUntil`, not a PX: the PX is counted just before the command is
 * written on the large-value connection, after the marker's round trip and the connection's open
 * (on a tier's first large write, up to the connect timeout). Counted before them, it kept the
 * value in Redis past its `staleUntil` for as long as they took.
 */
import { Tier } from "@tiercache/core"
import { Effect } from "effect"
import { Command, type Redis, ReplyError } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"
import { isWrongType, NOT_A_STRING } from "./notAString.js"
import { pxOf } from "./px.js"
import { enqueue } from "./queuedBytes.js"

/**
 * The marker's key inside a namespace: set (with an expiry past that of every large value
 * written since) before a large value is written; never removed by `clear` or a pattern (see
 * tierWrites.ts), only by its expiry. Reserved: the cache refuses user keys under `__tiercache:`.
 */
export const MARKER = `${Tier.reservedPrefix}large`

/** How much longer than the large value the marker lives: its transfer and any clock drift. */
export const MARKER_MARGIN_MS = 60_000

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
   * SET with PX until `staleUntil` (epoch ms, the tier's clock) on the large-value connection
   * (after the marker), its PX counted as it is sent; an UNLINK instead when the entry is gone by
   * then. `sent`, when given, is handed a promise of the command's landing as soon as it is sent
   * (it lands then even if this effect is interrupted, or times out: see `landedOf`), with its
   * timeout (ms).
   */
  readonly write: (
    full: string,
    value: string,
    staleUntil: number,
    sent?: (reply: Promise<unknown>, withinMs: number) => void
  ) => Effect.Effect<void, unknown>
  /**
   * The value (or null) and PTTL of a key, on the large-value connection; `false` and
   * NOT_A_STRING for a key that holds no string.
   */
  readonly read: (full: string) => Effect.Effect<readonly [unknown, unknown], unknown>
  /**
   * EVAL of `script` on one key, carrying a large value (`bytes` long) that may be written until
   * `staleUntil` (epoch ms, the tier's clock), on the large-value connection (after the marker).
   * Its arguments are `argsFor(px)`, the PX counted as the EVAL is sent: not positive when the
   * entry is gone by then (`argsFor` then says what the script does instead). `sent`, when given,
   * is handed a promise of its landing as soon as the EVAL is sent (as `write`'s).
   */
  readonly eval: (
    script: string,
    full: string,
    argsFor: (px: number) => ReadonlyArray<string>,
    bytes: number,
    staleUntil: number,
    sent?: (reply: Promise<unknown>, withinMs: number) => void
  ) => Effect.Effect<unknown, unknown>
}

/** A command sent on the large-value connection: its reply, and its timeout (ms). */
interface Sent {
  readonly reply: Promise<unknown>
  readonly within: number
}

/**
 * Sends a command carrying `bytes` (its value, or its reply's) on `client`, bounded by
 * `timeoutFor` the bytes queued ahead of it on the connection (queuedBytes.ts) and its own,
 * counted from now. Scaled to its own size only, the eighth of eight 4 MiB reads sent at once
 * timed out on a link that carried one in a quarter of its timeout.
 */
const send = (
  client: Redis,
  name: string,
  args: Array<string>,
  bytes: number,
  timeoutFor: (bytes: number) => number
): Sent => {
  const command = new Command(name, args, { replyEncoding: "utf8" })
  const reply = command.promise as Promise<unknown>
  // The large-value connection has no timeout of its own: every command gets one for its place.
  const within = timeoutFor(enqueue(client, bytes, reply) + bytes)
  command.setTimeout(within)
  client.sendCommand(command)
  return { reply, within }
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

/**
 * The large-value commands on `connection`, for keys under `prefix`; `now`: the tier's clock
 * (epoch ms), from which PXs are counted.
 */
export const make = (connection: RedisConnection.Service, prefix: string, now: () => number): LargeValues => {
  const limit = connection.largeValueBytes
  const timeoutFor = connection.timeoutFor
  const marker = prefix + MARKER
  const command = connection.client
  if (!(MARK_COMMAND in command)) command.defineCommand(MARK_COMMAND, { numberOfKeys: 1, lua: MARK_SCRIPT })
  const marking = command as unknown as Marking
  const pxFromNow = (staleUntil: number): number => pxOf(staleUntil, now())
  /**
   * The marker set to outlive a value written until `staleUntil`, on the command connection
   * (the value's PX, counted later, is shorter still).
   */
  const mark = (staleUntil: number): Effect.Effect<void, unknown> =>
    Effect.tryPromise({
      try: () =>
        marking.tiercacheMarkLarge(marker, String(Math.max(0, pxFromNow(staleUntil)) + MARKER_MARGIN_MS)),
      catch: (cause) => cause
    })
  const withBulk = <A>(use: (client: Redis) => Promise<A>): Effect.Effect<A, unknown> =>
    Effect.flatMap(
      Effect.mapError(connection.bulk, (error) => new Error(error.reason)),
      (client) => Effect.tryPromise({ try: () => use(client), catch: (cause) => cause })
    )
  // The marker's reply comes before the value is sent: a reader that can see the value sees
  // the marker. `use` counts the PX: it runs once both are done.
  const writeBulk = <A>(staleUntil: number, use: (client: Redis) => Promise<A>): Effect.Effect<A, unknown> =>
    Effect.zipRight(mark(staleUntil), withBulk(use))
  return {
    limit,
    marker,
    // A UTF-16 code unit is at most 3 bytes of UTF-8: shorter strings are small for sure.
    isLarge: (value) => value.length * 3 >= limit && Buffer.byteLength(value) >= limit,
    write: (full, value, staleUntil, sent) =>
      Effect.asVoid(
        writeBulk(staleUntil, (client) => {
          const px = pxFromNow(staleUntil)
          // Gone while the marker and the open took their time: removed, as a write of an entry
          // gone already is (tierWrites.ts), in its key's order (the UNLINK lands as the SET would).
          const { reply, within } =
            px > 0
              ? send(client, "set", [full, value, "PX", String(px)], Buffer.byteLength(value), timeoutFor)
              : send(client, "unlink", [full], 0, timeoutFor)
          sent?.(landedOf(client, reply), within)
          return reply
        })
      ),
    eval: (script, full, argsFor, bytes, staleUntil, sent) =>
      writeBulk(staleUntil, (client) => {
        const args = [script, "1", full, ...argsFor(pxFromNow(staleUntil))]
        const { reply, within } = send(client, "eval", args, bytes, timeoutFor)
        sent?.(landedOf(client, reply), within)
        return reply
      }),
    read: (full) =>
      withBulk(async (client) => {
        try {
          const length = Number(await send(client, "strlen", [full], 0, timeoutFor).reply)
          return await Promise.all([
            send(client, "get", [full], length, timeoutFor).reply,
            send(client, "pttl", [full], 0, timeoutFor).reply
          ] as const)
        } catch (error) {
          // Something other than a string now lives under the key: no entry (notAString.ts).
          if (isWrongType(error)) return [false, NOT_A_STRING] as const
          throw error
        }
      })
  }
}
