/**
 * Large values (at least the connection's `largeValueBytes`, encoded) travel on a connection of
 * their own, so that their transfer never holds up the commands of other keys on the command
 * connection, and each command carrying one is bounded by a timeout scaled to its size
 * (`commandTimeout` plus `timeoutPerMegabyte` per MiB), since moving 20 MB through a loaded
 * machine can take longer than a small command's timeout.
 */
import { Effect } from "effect"
import { Command, type Redis } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"

/** The large-value commands of one tier; failures are the driver's errors, as they come. */
export interface LargeValues {
  /** The threshold (bytes) from which a value is large. */
  readonly limit: number
  /** Whether an encoded value is large (its UTF-8 length is counted only when it may be). */
  readonly isLarge: (value: string) => boolean
  /** SET with PX on the large-value connection. */
  readonly write: (full: string, value: string, px: number) => Effect.Effect<void, unknown>
  /** The value (or null) and PTTL of a key, on the large-value connection. */
  readonly read: (full: string) => Effect.Effect<readonly [unknown, unknown], unknown>
  /** EVAL of `script` on one key, carrying a large value, on the large-value connection. */
  readonly eval: (
    script: string,
    full: string,
    args: ReadonlyArray<string>,
    bytes: number
  ) => Effect.Effect<unknown, unknown>
}

const send = (client: Redis, name: string, args: Array<string>, timeoutMs: number): Promise<unknown> => {
  const command = new Command(name, args, { replyEncoding: "utf8" })
  // The large-value connection has no timeout of its own: every command gets one for its size.
  command.setTimeout(timeoutMs)
  client.sendCommand(command)
  return command.promise as Promise<unknown>
}

/** A value that is not a string (WRONGTYPE) is not an entry: a miss. */
const orMiss = (error: unknown): Promise<null> =>
  error instanceof Error && error.message.startsWith("WRONGTYPE")
    ? Promise.resolve(null)
    : Promise.reject(error)

/**
 * The large-value commands on `connection`.
 */
export const make = (connection: RedisConnection.Service): LargeValues => {
  const limit = connection.largeValueBytes
  const timeoutFor = connection.timeoutFor
  const withBulk = <A>(use: (client: Redis) => Promise<A>): Effect.Effect<A, unknown> =>
    Effect.flatMap(
      Effect.mapError(connection.bulk, (error) => new Error(error.reason)),
      (client) => Effect.tryPromise({ try: () => use(client), catch: (cause) => cause })
    )
  return {
    limit,
    // A UTF-16 code unit is at most 3 bytes of UTF-8: shorter strings are small for sure.
    isLarge: (value) => value.length * 3 >= limit && Buffer.byteLength(value) >= limit,
    write: (full, value, px) =>
      Effect.asVoid(
        withBulk((client) =>
          send(client, "set", [full, value, "PX", String(px)], timeoutFor(Buffer.byteLength(value)))
        )
      ),
    eval: (script, full, args, bytes) =>
      withBulk((client) => send(client, "eval", [script, "1", full, ...args], timeoutFor(bytes))),
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
