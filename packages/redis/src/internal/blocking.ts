/**
 * The shared connection for blocking reads: opened on first use, used by one caller at a time,
 * and woken with CLIENT UNBLOCK when a use ends early. The open runs to its end in the layer's
 * scope even when the use that started it gives up (is interrupted, or its read's time runs
 * out), and the connection is kept for the next use: never one left open beside it.
 */
import { type Duration, Effect, Exit, Scope } from "effect"
import type { Redis } from "ioredis"
import type { RedisConnection } from "../RedisConnection.js"
import type { RedisConnectionError } from "./connectionError.js"
import type { Opener } from "./opener.js"
import { openOnce } from "./openOnce.js"

interface BlockingConnection {
  readonly client: Redis
  /** The server-side id of the connection now (it changes on reconnect). */
  id: string | undefined
}

/** The `blocking` of one RedisConnection. */
export const makeBlocking = (
  opener: Opener,
  commands: Redis,
  commandTimeout: Duration.Duration,
  closed: () => RedisConnectionError
): Effect.Effect<RedisConnection.Service["blocking"], never, Scope.Scope> =>
  Effect.gen(function* () {
    const scope = yield* Effect.scope
    const lock = yield* Effect.makeSemaphore(1)
    const readId = (conn: BlockingConnection) =>
      conn.client.client("ID").then(
        (id) => {
          conn.id = String(id)
        },
        () => {
          conn.id = undefined
        }
      )
    const get = yield* openOnce(
      Effect.gen(function* () {
        const client = yield* Scope.extend(opener.open("blocking"), scope)
        const conn: BlockingConnection = { client, id: undefined }
        // The id names this connection only while it is up: once it is lost, the server may give
        // the id to another client (ids start again after a restart), which an UNBLOCK would wake.
        client.on("close", () => {
          conn.id = undefined
        })
        client.on("ready", () => void readId(conn))
        yield* Effect.promise(() => readId(conn)).pipe(Effect.timeout(commandTimeout), Effect.ignore)
        return conn
      }),
      scope,
      closed
    )
    const unblock = (conn: BlockingConnection) =>
      conn.id === undefined
        ? Effect.void
        : Effect.tryPromise(() => commands.client("UNBLOCK", conn.id!)).pipe(
            Effect.timeout(commandTimeout),
            Effect.ignore
          )
    return <A, E, R>(use: (client: Redis) => Effect.Effect<A, E, R>) =>
      lock.withPermits(1)(
        Effect.flatMap(get, (conn) =>
          // Whether interrupted or failed (e.g. timed out), the command may still be blocked
          // on the connection: wake it so that the next use does not queue behind it.
          use(conn.client).pipe(Effect.onExit((exit) => (Exit.isSuccess(exit) ? Effect.void : unblock(conn))))
        )
      )
  })
