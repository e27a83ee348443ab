/**
 * The error of a test server that could not be found, started or stopped (re-exported by
 * RedisServer).
 *
 * @internal
 */
import { Schema } from "effect"

/**
 * The server could not be found, started or stopped.
 *
 * @since 0.1.0
 */
export class RedisServerError extends Schema.TaggedError<RedisServerError>(
  "@tiercache/testing/RedisServerError"
)("RedisServerError", {
  /** What went wrong, for people. */
  reason: Schema.String,
  /** The underlying failure, when there is one. */
  cause: Schema.optional(Schema.Defect)
}) {
  /** @since 0.1.0 */
  override get message(): string {
    return this.reason
  }
}
