/**
 * The check every constructor of this package makes first: options from plain JavaScript that
 * are not an object (`null`, a string) are a CacheConfigError, not a defect on the first field
 * read.
 */
import { CacheError } from "@tiercache/core"

/** The error of options that are not an object, or undefined. */
export const notAnObject = (options: unknown): CacheError.CacheConfigError | undefined =>
  typeof options === "object" && options !== null
    ? undefined
    : new CacheError.CacheConfigError({ option: "options", reason: "must be an object" })
