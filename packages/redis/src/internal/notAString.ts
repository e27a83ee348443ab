/**
 * A key under the prefix holding something other than a string (a hash, a list...: Redis
 * answers WRONGTYPE) is no cache entry: a foreign value. Every read path answers it as a value
 * of `false` with the remaining lifetime NOT_A_STRING, so that the decoding tells it from a key
 * that is not there.
 */

/** The remaining lifetime answered for a key that holds no string (PTTL itself never says -3). */
export const NOT_A_STRING = -3

/** Whether a command failed because its key holds no string. */
export const isWrongType = (error: unknown): boolean =>
  error instanceof Error && error.message.startsWith("WRONGTYPE")
