/**
 * A driver failure for people: the `reason` of the errors RedisTier, RedisInvalidationBus and
 * RedisStreams fail with.
 */
import { withoutUser } from "./sanitize.js"

/**
 * The reason of a failure with `cause`: the driver's message (without the ACL user a refusal
 * names, see sanitize.ts), or what a command refused while disconnected, or left unanswered by a
 * lost connection, means.
 */
export const describe = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.includes("enableOfflineQueue")) return "not connected (reconnecting in the background)"
  // What ioredis fails the commands a lost connection left unanswered with (the connections
  // retry none: maxRetriesPerRequest 0), in words that do not send the user to that option.
  if (cause instanceof Error && cause.name === "MaxRetriesPerRequestError")
    return "connection lost before Redis answered (reconnecting in the background)"
  return withoutUser(message)
}
