/**
 * Whether a string is well-formed UTF-16 (no lone surrogate). Redis holds text as UTF-8, where
 * a lone surrogate has no form: the driver sends U+FFFD for it, so `"u-\uD800"` and
 * `"u-\uDBFF"` would name one stream (or key, or channel), a field would read back altered, and
 * a channel name would come back from Redis unlike the one subscribed to. (Node 20.19, the
 * oldest supported, has `String.prototype.isWellFormed`; ES2022's types do not name it.)
 */
export const isWellFormed = (s: string): boolean =>
  (s as unknown as { isWellFormed: () => boolean }).isWellFormed()
