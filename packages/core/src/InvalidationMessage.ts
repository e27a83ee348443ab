/**
 * The invalidation bus protocol: JSON messages compatible with the Rust crate's serde format
 * (`{"type":"Remove","key":...}`, `Update`, `RemovePattern`, `RemoveBulk`), plus tiercache's
 * own `RemoveTag` and `Clear`, each with an optional `origin` instance id and an optional
 * `namespace` (the sender's key prefix: a bus drops messages of another namespace; a message
 * without one, as the Rust crate sends, applies to every cache on the channel).
 *
 * @since 0.1.0
 */
import { Either, type ParseResult, Schema } from "effect"

const origin = Schema.optional(Schema.String)
const namespace = Schema.optional(Schema.String)

/**
 * Remove one key from every L1.
 *
 * @category schemas
 * @since 0.1.0
 */
export const Remove = Schema.Struct({ type: Schema.Literal("Remove"), key: Schema.String, origin, namespace })

/**
 * Replace one key's value in every L1. `value` is required (JSON has no `undefined`: a message
 * without one is malformed, not a value). `ttl_secs` is the seed's field (seconds, rounded up
 * when we send it); `ttl_ms`, when present, is exact and wins. `grace_ms`, `tags` and
 * `created_ms` are ours: `created_ms` is when the sender created the entry (epoch ms), so that
 * a receiver dates its copy from then (a tag invalidated after it refuses the copy, however
 * late the message), and drops rather than keeps a copy of its own created later (dated by
 * another clock, it does not tell which write landed last); without it the copy is dated
 * from its arrival, and stored only while the receiver remembers no removal of the key by
 * another instance than the sender (nor has forgotten one) and, carrying tags, while each is
 * known to the receiver as never invalidated: otherwise it only drops the receiver's copy (the
 * value may be older than that removal or tag invalidation). Either way a receiver that changed
 * the key itself, or applied another instance's change of it, within the last second drops its
 * copy instead (README, Semantics: which write landed last, only the lower tiers tell).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Update = Schema.Struct({
  type: Schema.Literal("Update"),
  key: Schema.String,
  value: Schema.Unknown.pipe(
    Schema.filter((value): boolean => value !== undefined, { message: () => "no value" })
  ),
  ttl_secs: Schema.optional(Schema.NullOr(Schema.Number)),
  ttl_ms: Schema.optional(Schema.Number),
  grace_ms: Schema.optional(Schema.Number),
  tags: Schema.optional(Schema.Array(Schema.String)),
  created_ms: Schema.optional(Schema.NullOr(Schema.Number)),
  origin,
  namespace
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
  origin,
  namespace
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
  origin,
  namespace
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
  origin,
  namespace
})

/**
 * Empty every L1 (tiercache's own).
 *
 * @category schemas
 * @since 0.1.0
 */
export const Clear = Schema.Struct({ type: Schema.Literal("Clear"), origin, namespace })

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

/**
 * Why a wire message was refused: `not_json` (not JSON at all), `unknown_type` (not an object
 * with a known `type`), `invalid_field` (a field missing or of the wrong type).
 *
 * @category models
 * @since 0.1.0
 */
export type MalformedKind = "not_json" | "unknown_type" | "invalid_field"

/**
 * A refused wire message: its kind and one short line saying what was wrong.
 *
 * @category models
 * @since 0.1.0
 */
export interface Malformed {
  readonly kind: MalformedKind
  readonly reason: string
}

const members = {
  Remove: Schema.decodeUnknownEither(Remove),
  Update: Schema.decodeUnknownEither(Update),
  RemovePattern: Schema.decodeUnknownEither(RemovePattern),
  RemoveBulk: Schema.decodeUnknownEither(RemoveBulk),
  RemoveTag: Schema.decodeUnknownEither(RemoveTag),
  Clear: Schema.decodeUnknownEither(Clear)
} as const

const PREVIEW_CHARS = 60

/**
 * `value`'s JSON cut to PREVIEW_CHARS characters (then `...`), built only that far: a wire
 * message may be megabytes long, or nested thousands deep (which JSON.stringify, like Schema's
 * formatter, would walk whole and recursively: a RangeError). Each level written adds a
 * character, so the walk is never deeper than the preview is long.
 */
const preview = (value: unknown): string => {
  let out = ""
  /** Appends `text`; false once the preview is full. */
  const put = (text: string): boolean => {
    out += text
    return out.length <= PREVIEW_CHARS
  }
  const scalar = (v: unknown): string =>
    typeof v === "string" ? JSON.stringify(v.slice(0, PREVIEW_CHARS + 1)) : (JSON.stringify(v) ?? String(v))
  const write = (v: unknown): boolean => {
    if (v === null || typeof v !== "object") return put(scalar(v))
    if (Array.isArray(v)) {
      if (!put("[")) return false
      for (let i = 0; i < v.length; i++) {
        if ((i > 0 && !put(",")) || !write(v[i])) return false
      }
      return put("]")
    }
    if (!put("{")) return false
    let first = true
    for (const key in v) {
      if (!Object.hasOwn(v, key)) continue
      if ((!first && !put(",")) || !put(`${scalar(key)}:`) || !write((v as Record<string, unknown>)[key])) {
        return false
      }
      first = false
    }
    return put("}")
  }
  write(value)
  return out.length <= PREVIEW_CHARS ? out : `${out.slice(0, PREVIEW_CHARS)}...`
}

/**
 * The first issue of a failed decode and where it is, found by walking the issue's tree as
 * Schema's ArrayFormatter does, without formatting any message (the formatter prints each
 * value it reports whole: see {@link preview}).
 */
const firstIssue = (
  issue: ParseResult.ParseIssue,
  path: ReadonlyArray<PropertyKey>
): { readonly tag: ParseResult.ParseIssue["_tag"]; readonly path: ReadonlyArray<PropertyKey> } => {
  switch (issue._tag) {
    case "Pointer":
      return firstIssue(issue.issue, path.concat(issue.path))
    case "Composite":
      return firstIssue(
        Array.isArray(issue.issues) ? issue.issues[0]! : (issue.issues as ParseResult.ParseIssue),
        path
      )
    case "Refinement":
    case "Transformation":
      return firstIssue(issue.issue, path)
    default:
      return { tag: issue._tag, path }
  }
}

/** One line naming the first offending field, e.g. `field "keys.1" has the wrong type (42)`. */
const describeIssue = (error: ParseResult.ParseError): string => {
  const issue = firstIssue(error.issue, [])
  const field = issue.path.length === 0 ? "message" : `field "${issue.path.join(".")}"`
  if (issue.tag === "Missing") return `${field} is missing`
  const actual = issue.path.reduce<unknown>(
    (value, key) =>
      value !== null && typeof value === "object" ? (value as Record<PropertyKey, unknown>)[key] : undefined,
    error.issue.actual
  )
  return `${field} has the wrong type (${preview(actual)})`
}

/**
 * Parses a wire message, saying precisely what was wrong with one that is refused.
 *
 * @category encoding
 * @since 0.1.0
 */
export const decodeDetailed = (raw: string): Either.Either<InvalidationMessage, Malformed> => {
  let json: unknown
  try {
    json = JSON.parse(raw)
  } catch {
    return Either.left({ kind: "not_json", reason: `not JSON: ${preview(raw)}` })
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    return Either.left({ kind: "unknown_type", reason: "not a JSON object" })
  }
  const type = (json as { readonly type?: unknown }).type
  if (typeof type !== "string" || !Object.hasOwn(members, type)) {
    return Either.left({
      kind: "unknown_type",
      reason: type === undefined ? 'no "type" field' : `unknown type ${preview(type)}`
    })
  }
  // A payload that makes decoding throw (a stack overflow, however it comes) is malformed like
  // any other: thrown, it would end the bus's subscription, and every later message with it.
  try {
    return Either.mapLeft(
      members[type as keyof typeof members](json) as Either.Either<
        InvalidationMessage,
        ParseResult.ParseError
      >,
      (error): Malformed => ({ kind: "invalid_field", reason: `${type}: ${describeIssue(error)}` })
    )
  } catch (cause) {
    const name = cause instanceof Error ? cause.name : "an exception"
    return Either.left({ kind: "invalid_field", reason: `${type}: does not decode (${name})` })
  }
}

/**
 * Serializes a message to its JSON wire form.
 *
 * @category encoding
 * @since 0.1.0
 */
export const encode = (message: InvalidationMessage): string => JSON.stringify(message)

/**
 * Parses a wire message; `Left` carries one short line saying what was wrong (see
 * {@link decodeDetailed}).
 *
 * @category encoding
 * @since 0.1.0
 */
export const decode = (raw: string): Either.Either<InvalidationMessage, string> =>
  Either.mapLeft(decodeDetailed(raw), (malformed) => malformed.reason)
