/**
 * The error of a connection that could not be opened (re-exported by RedisConnection).
 */
import { Schema } from "effect"

/**
 * A connection could not be opened (unreachable server, wrong credentials, timeout).
 *
 * @since 0.1.0
 */
export class RedisConnectionError extends Schema.TaggedError<RedisConnectionError>(
  "@tiercache/redis/RedisConnectionError"
)("RedisConnectionError", {
  /** What went wrong, for people (never contains credentials). */
  reason: Schema.String,
  /**
   * The underlying failure, when there is one: the driver's error reduced to its class,
   * message, stack and network details (the failed command and its arguments, which for AUTH
   * are the user name and password, are dropped).
   */
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return `redis connection failed: ${this.reason}`
  }
}

/** The end of the reason of a connection asked for once its layer is closed. */
const CLOSED = "the connection layer is closed"

/**
 * The errors `layerClosed` made: the mark `isLayerClosed` reads, so that no other error whose
 * reason reads the same is taken for one, and the reason's text can change alone. Outside the
 * error, it is no part of its shape (fields, JSON, inspect, encoding).
 */
const madeForClosedLayer = new WeakSet<RedisConnectionError>()

/** The error of a `role` connection asked for once its layer is closed. */
export const layerClosed = (role: string): RedisConnectionError => {
  const error = new RedisConnectionError({ reason: `${role} connection: ${CLOSED}` })
  madeForClosedLayer.add(error)
  return error
}

/** Whether `error` says the connection layer is closed (no connection will ever open). */
export const isLayerClosed = (error: RedisConnectionError): boolean => madeForClosedLayer.has(error)
