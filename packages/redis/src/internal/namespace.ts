/**
 * The key namespace (prefix) shared by RedisTier, RedisStreams and RedisInvalidationBus:
 * non-empty by default, so that the cache never touches keys it did not write; an empty one
 * must be asked for with `allowEmptyPrefix: true`.
 */
import { CacheError } from "@tiercache/core"
import { Effect } from "effect"
import { isWellFormed } from "./wellFormed.js"

/** The namespace used when none is given. */
export const DEFAULT_PREFIX = "tiercache:"

/**
 * The prefix to use: `given` if present (checked), else `fallback` (already checked where it
 * was given). An empty prefix is refused unless `allowEmpty` is `true`.
 */
export const resolvePrefix = (
  option: string,
  given: unknown,
  allowEmpty: boolean | undefined,
  fallback: string
): Effect.Effect<string, CacheError.CacheConfigError> => {
  if (given === undefined) return Effect.succeed(fallback)
  if (typeof given !== "string") {
    return Effect.fail(new CacheError.CacheConfigError({ option, reason: "must be a string" }))
  }
  // Redis would hold its U+FFFD form: "app\uD800:" and "app\uDBFF:" would share every key (one
  // clear removing the other's) while their bus namespaces, compared as given, stay apart.
  if (!isWellFormed(given)) {
    return Effect.fail(
      new CacheError.CacheConfigError({
        option,
        reason: "must be well-formed UTF-16 (a lone surrogate reaches Redis as U+FFFD)"
      })
    )
  }
  if (given.length === 0 && allowEmpty !== true) {
    return Effect.fail(
      new CacheError.CacheConfigError({
        option,
        reason:
          "an empty prefix makes clear and invalidatePattern reach every key of the database; pass allowEmptyPrefix: true to mean it"
      })
    )
  }
  return Effect.succeed(given)
}

/** A namespace that names a database itself: `<base>@<digits>`. */
const namesDatabase = /@\d+$/

/**
 * The bus namespace of a connection to database `db`: `base` (the bus's `namespace` option, or
 * the connection's `keyPrefix`), followed by `@<db>` when `db` is not 0. Pub/Sub channels are
 * shared by every database of a server, while keys are not: the database is part of the key
 * space a namespace names, whether it was given or defaulted. On db 0, `base` stands alone,
 * unless it ends in `@<digits>` itself: then it is followed by `@0`, or `app:@1` on db 0 would
 * stamp what `app:` on db 1 stamps (one's updates stored in the other's L1). So no two pairs of
 * a base and a database share a namespace.
 */
export const busNamespace = (base: string, db: number): string =>
  db === 0 && !namesDatabase.test(base) ? base : `${base}@${db}`
