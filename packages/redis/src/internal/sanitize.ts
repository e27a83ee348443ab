/**
 * Driver errors made safe to keep: ioredis attaches the failed command to its errors
 * (`command.args`), and for AUTH / HELLO those arguments are the ACL user name and the
 * password; for SET they are the cached value. Every error this package keeps as a `cause`
 * goes through {@link sanitize} first.
 */

/** The properties of an error worth keeping: none of them holds a command argument. */
const KEPT = ["code", "errno", "syscall", "address", "port"] as const

/**
 * A copy of `cause` with its class (so `instanceof ReplyError` still holds), name, message,
 * stack and network details (code, errno, syscall, address, port), and nothing else: no
 * `command`, no `args`, no nested `previousErrors`. Anything that is not an Error becomes its
 * description.
 */
export const sanitize = (cause: unknown): unknown => {
  if (!(cause instanceof Error)) {
    return typeof cause === "string" ? cause : cause === undefined ? undefined : "unknown error"
  }
  const copy: Error = Object.create(Object.getPrototypeOf(cause) as object)
  Object.defineProperty(copy, "message", { value: cause.message, writable: true, configurable: true })
  Object.defineProperty(copy, "name", { value: cause.name, writable: true, configurable: true })
  if (cause.stack !== undefined) {
    Object.defineProperty(copy, "stack", { value: cause.stack, writable: true, configurable: true })
  }
  const source = cause as unknown as Record<string, unknown>
  const target = copy as unknown as Record<string, unknown>
  for (const key of KEPT) {
    const value = source[key]
    if (typeof value === "string" || typeof value === "number") target[key] = value
  }
  return copy
}
