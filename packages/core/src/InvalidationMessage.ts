/**
 * The invalidation bus protocol: JSON messages compatible with the Rust crate's serde format
 * (`{"type":"Remove","key":...}`, `Update`, `RemovePattern`, `RemoveBulk`), plus tiercache's
 * own `RemoveTag` and `Clear`, each with an optional `origin` instance id.
 *
 * @since 0.1.0
 */
import { Either, Schema } from "effect"

const origin = Schema.optional(Schema.String)

/**
 * Remove one key from every L1.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Remove = Schema.Struct({ type: Schema.Literal("Remove"), key: Schema.String, origin })

/**
 * Replace one key's value in every L1. `ttl_secs` is the seed's field (seconds, rounded up
 * when we send it); `ttl_ms`, when present, is exact and wins. `grace_ms` and `tags` are ours.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Update = Schema.Struct({
  type: Schema.Literal("Update"),
  key: Schema.String,
  value: Schema.Unknown,
  ttl_secs: Schema.optional(Schema.NullOr(Schema.Number)),
  ttl_ms: Schema.optional(Schema.Number),
  grace_ms: Schema.optional(Schema.Number),
  tags: Schema.optional(Schema.Array(Schema.String)),
  origin
})

/**
 * Remove every key matching a Redis-style glob from every L1.
 *
 * @category schemas
 * @since 0.1.0
 */
export const RemovePattern = Schema.Struct({
  type: Schema.Literal("RemovePattern"),
  pattern: Schema.String,
  origin
})

/**
 * Remove several keys from every L1.
 *
 * @category schemas
 * @since 0.1.0
 */
export const RemoveBulk = Schema.Struct({
  type: Schema.Literal("RemoveBulk"),
  keys: Schema.Array(Schema.String),
  origin
})

/**
 * Remove every entry carrying a tag from every L1 (tiercache's own).
 *
 * @category schemas
 * @since 0.1.0
 */
export const RemoveTag = Schema.Struct({
  type: Schema.Literal("RemoveTag"),
  tag: Schema.String,
  /** When the tag was invalidated (epoch ms); entries created at or before it are invalid. */
  at: Schema.optional(Schema.Number),
  origin
})

/**
 * Empty every L1 (tiercache's own).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Clear = Schema.Struct({ type: Schema.Literal("Clear"), origin })

/**
 * Any bus message.
 *
 * @category schemas
 * @since 0.1.0
 */
export const InvalidationMessage = Schema.Union(Remove, Update, RemovePattern, RemoveBulk, RemoveTag, Clear)

/**
 * @category schemas
 * @since 0.1.0
 */
export type InvalidationMessage = typeof InvalidationMessage.Type

const decodeJson = Schema.decodeUnknownEither(Schema.parseJson(InvalidationMessage))

/**
 * Serializes a message to its JSON wire form.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encode = (message: InvalidationMessage): string => JSON.stringify(message)

/**
 * Parses a wire message; `Left` carries a short reason when it is not JSON or not a message.
 *
 * @category encoding
 * @since 0.1.0
 */
export const decode = (raw: string): Either.Either<InvalidationMessage, string> =>
  Either.mapLeft(decodeJson(raw), (error) => error.message.split("\n")[0] ?? "malformed message")
