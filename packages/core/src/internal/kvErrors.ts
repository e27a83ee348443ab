/**
 * A KeyValueStore's errors as KeyValueStoreTier reports them: whether one says the key was not
 * there, its text, and the error without the file path a file-system store quotes.
 *
 * @internal
 */
import type { PlatformError } from "@effect/platform/Error"

/** Whether a store error says the key was not there (nothing to remove). */
export const isNotFound = (error: PlatformError): boolean =>
  error._tag === "SystemError" && error.reason === "NotFound"

/** The text of a store's error. */
export const describe = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : String(cause)

/**
 * A store's failure without the file it names: a file-system store's errors (SystemError) quote
 * the file's path, and with it the key (`tiercache%3Auser%3A42`), in their message, description
 * and cause; kept in a TierError, they reached the cache's tier spans, which leave keys out
 * unless `keysInSpans`. The path is replaced by `<file>`; the kept cause is a copy of the error
 * (its class, name, scrubbed message, tag, reason, module, method and syscall), without the
 * path, its description or the underlying Node error.
 */
export const withoutPath = (cause: unknown): { readonly reason: string; readonly cause: unknown } => {
  const reason = describe(cause)
  const path =
    typeof cause === "object" && cause !== null && (cause as { _tag?: unknown })._tag === "SystemError"
      ? (cause as { pathOrDescriptor?: unknown }).pathOrDescriptor
      : undefined
  if (typeof path !== "string" || path === "") return { reason, cause }
  const scrubbed = reason.split(path).join("<file>")
  const copy: Error = Object.create(Object.getPrototypeOf(cause) as object)
  Object.defineProperty(copy, "message", { value: scrubbed, writable: true, configurable: true })
  Object.defineProperty(copy, "name", { value: (cause as Error).name, writable: true, configurable: true })
  Object.defineProperty(copy, "stack", {
    value: `${(cause as Error).name}: ${scrubbed}`,
    writable: true,
    configurable: true
  })
  // Its kind and where it failed, not its path nor its description (Node's message, path and all).
  for (const field of ["_tag", "reason", "module", "method", "syscall"]) {
    const value = (cause as unknown as Record<string, unknown>)[field]
    if (typeof value === "string") Object.defineProperty(copy, field, { value, enumerable: true })
  }
  return { reason: scrubbed, cause: copy }
}
