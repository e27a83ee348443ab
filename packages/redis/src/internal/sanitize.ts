/**
 * Driver errors made safe to keep: ioredis attaches the failed command to its errors
 * (`command.args`), and for AUTH / HELLO those arguments are the ACL user name and the
 * password; for SET they are the cached value. Every error this package keeps as a `cause`
 * goes through {@link sanitize} first, and every text of Redis's it shows (a reason, a log
 * line) through {@link withoutUser}.
 */

/**
 * Redis 7.2 and later name the ACL user in a refusal: "NOPERM User alice has no permissions to
 * run the 'publish' command" (keys and channels alike). Up to the last "has no permissions" of
 * the text, newlines included: whatever the name holds goes.
 */
const NAMED_USER = /\bUser\s[\s\S]*\shas no permissions/gi

/**
 * `text` without the ACL user's name Redis puts in its refusals (NAMED_USER), worded as Redis
 * before 7.2 put it ("this user has no permissions ..."): the user name is a credential, kept
 * `Redacted` up to the driver, and never shown.
 */
export const withoutUser = (text: string): string => text.replace(NAMED_USER, "this user has no permissions")

/** The properties of an error worth keeping: none of them holds a command argument. */
const KEPT = ["code", "errno", "syscall", "address", "port"] as const

/**
 * A copy of `cause` with its class (so `instanceof ReplyError` still holds), name, message,
 * stack and network details (code, errno, syscall, address, port), and nothing else: no
 * `command`, no `args`, no nested `previousErrors`; its message and stack without the ACL user
 * (see {@link withoutUser}). Anything that is not an Error becomes its description.
 */
export const sanitize = (cause: unknown): unknown => {
  if (!(cause instanceof Error)) {
    return typeof cause === "string" ? withoutUser(cause) : cause === undefined ? undefined : "unknown error"
  }
  const copy: Error = Object.create(Object.getPrototypeOf(cause) as object)
  const message = withoutUser(cause.message)
  Object.defineProperty(copy, "message", { value: message, writable: true, configurable: true })
  Object.defineProperty(copy, "name", { value: cause.name, writable: true, configurable: true })
  if (cause.stack !== undefined) {
    const stack = withoutUser(cause.stack)
    Object.defineProperty(copy, "stack", { value: stack, writable: true, configurable: true })
  }
  const source = cause as unknown as Record<string, unknown>
  const target = copy as unknown as Record<string, unknown>
  for (const key of KEPT) {
    const value = source[key]
    if (typeof value === "string" || typeof value === "number") target[key] = value
  }
  return copy
}
