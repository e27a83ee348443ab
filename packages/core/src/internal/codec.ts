/**
 * Schemas' decoders and encoders, built once per schema, and the decoding of stored values.
 */
import type { Either, ParseResult } from "effect"
import { Schema } from "effect"

/** A schema as the cache holds it (type parameters erased). */
export type AnySchema = Schema.Schema<unknown, unknown, never>

type Coder = (u: unknown) => Either.Either<unknown, ParseResult.ParseError>

const decoders = new WeakMap<object, Coder>()
const encoders = new WeakMap<object, Coder>()

/** The (memoized) decoder of a schema. */
export const decoderOf = (schema: AnySchema): Coder => {
  let d = decoders.get(schema)
  if (d === undefined) {
    d = Schema.decodeUnknownEither(schema)
    decoders.set(schema, d)
  }
  return d
}

/** The (memoized) encoder of a schema. */
export const encoderOf = (schema: AnySchema): Coder => {
  let e = encoders.get(schema)
  if (e === undefined) {
    e = Schema.encodeUnknownEither(schema)
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
