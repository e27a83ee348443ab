/**
 * Schemas' decoders and encoders, built once per schema, and the decoding of stored values.
 */
import { Either, ParseResult, Schema } from "effect"

/** A schema as the cache holds it (type parameters erased). */
export type AnySchema = Schema.Schema<unknown, unknown, never>

type Coder = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

const decoders = new WeakMap<object, Coder>()
const encoders = new WeakMap<object, Coder>()

/** The parse error of a schema's coder that threw `cause` on `u`. */
const threw = (
  schema: AnySchema,
  u: unknown,
  cause: unknown
): Either.Either<never, ParseResult.ParseError> => {
  const message = cause instanceof Error ? cause.message : String(cause)
  // `schema.ast` itself may be what is missing (plain JS: Schema's mark on another object).
  return Either.left(
    new ParseResult.ParseError({ issue: new ParseResult.Type(astOf(schema), u, `threw: ${message}`) })
  )
}
/** The schema's AST where it has one the error can be described with, else Unknown's. */
const astOf = (schema: AnySchema): ParseResult.Type["ast"] => {
  try {
    const ast: unknown = (schema as { readonly ast?: unknown }).ast
    if (
      typeof ast === "object" &&
      ast !== null &&
      typeof (ast as { readonly _tag?: unknown })._tag === "string" &&
      typeof (ast as { readonly annotations?: unknown }).annotations === "object" &&
      (ast as { readonly annotations?: unknown }).annotations !== null
    ) {
      return ast as ParseResult.Type["ast"]
    }
  } catch {
    // A getter that throws: described as Unknown's.
  }
  return Schema.Unknown.ast
}

/**
 * The coder `build` makes of `schema`, answering a Left where it throws: a schema's
 * transformation may throw on a value it does not expect (`JSON.parse` of text another
 * application stored), which Schema passes on as a throw; so may Schema while it builds the
 * coder (a `Schema.declare` whose factory throws; from plain JavaScript, an object with Schema's
 * mark and no AST), and then every value is answered so. A read must take such data as data that
 * does not decode (a miss), a write as a value that does not encode (a CacheInputError), not die.
 */
const total = (schema: AnySchema, build: (schema: AnySchema) => Coder): Coder => {
  let coder: Coder
  try {
    coder = build(schema)
  } catch (cause) {
    return (u) => threw(schema, u, cause)
  }
  return (u) => {
    try {
      return coder(u)
    } catch (cause) {
      return threw(schema, u, cause)
    }
  }
}

/** The (memoized) decoder of a schema. */
export const decoderOf = (schema: AnySchema): Coder => {
  let d = decoders.get(schema)
  if (d === undefined) {
    d = total(schema, (s) => Schema.decodeUnknownEither(s))
    decoders.set(schema, d)
  }
  return d
}

/** The (memoized) encoder of a schema. */
export const encoderOf = (schema: AnySchema): Coder => {
  let e = encoders.get(schema)
  if (e === undefined) {
    e = total(schema, (s) => Schema.encodeUnknownEither(s))
    encoders.set(schema, e)
  }
  return e
}

/** What `decode` answers for a value that does not decode. */
export const NOT_DECODED: unique symbol = Symbol("NotDecoded")

/** `value` decoded for `schema` (as is without one), or NOT_DECODED. */
export const decode = (schema: AnySchema | undefined, value: unknown): unknown => {
  if (schema === undefined) return value
  const d = decoderOf(schema)(value)
  return d._tag === "Left" ? NOT_DECODED : d.right
}
