/**
 * Schemas' decoders and encoders, built once per schema, and the decoding of stored values.
 */
import { Either, ParseResult, Schema } from "effect"

/** A schema as the cache holds it (type parameters erased). */
export type AnySchema = Schema.Schema<unknown, unknown, never>

type Coder = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

const decoders = new WeakMap<object, Coder>()
const encoders = new WeakMap<object, Coder>()

/**
 * `coder`, answering a Left where it throws: a schema's transformation may throw on a value it
 * does not expect (`JSON.parse` of text another application stored), which Schema passes on as
 * a throw. A read must take such data as data that does not decode (a miss), a write as a value
 * that does not encode (a CacheInputError), not die.
 */
const total =
  (schema: AnySchema, coder: Coder): Coder =>
  (u) => {
    try {
      return coder(u)
    } catch (cause) {
      const message = cause instanceof Error ? cause.message : String(cause)
      return Either.left(
        new ParseResult.ParseError({ issue: new ParseResult.Type(schema.ast, u, `threw: ${message}`) })
      )
    }
  }

/** The (memoized) decoder of a schema. */
export const decoderOf = (schema: AnySchema): Coder => {
  let d = decoders.get(schema)
  if (d === undefined) {
    d = total(schema, Schema.decodeUnknownEither(schema))
    decoders.set(schema, d)
  }
  return d
}

/** The (memoized) encoder of a schema. */
export const encoderOf = (schema: AnySchema): Coder => {
  let e = encoders.get(schema)
  if (e === undefined) {
    e = total(schema, Schema.encodeUnknownEither(schema))
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
