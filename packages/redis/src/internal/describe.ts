/**
 * A driver failure for people: the `reason` of the errors RedisTier, RedisInvalidationBus and
 * RedisStreams fail with.
 */

/**
 * The reason of a failure with `cause`: the driver's message, or what a command refused while
 * disconnected means.
 */
export const describe = (cause: unknown): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  if (message.includes("enableOfflineQueue")) return "not connected (reconnecting in the background)"
  return message
}
