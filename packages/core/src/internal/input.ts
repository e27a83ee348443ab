/**
 * Checks of each call's input (keys, patterns, tags, schemas, values to store, a read's
 * options): every validator of a call runs here or in callOptions.ts (durations, tags and
 * timeouts of write and compute options), before anything is written.
 */
import type { ParseResult } from "effect"
import { CacheInputError } from "../CacheError.js"
import { type AnySchema, decoderOf, encoderOf } from "./codec.js"
import {
  checkedElements,
  checkSchema,
  describe,
  jsonError,
  keyError,
  keysError,
  patternError,
  tagError,
  unreadable
} from "./validate.js"

/** A successfully encoded value (a class, so that it cannot be confused with a user's value). */
export class Encoded {
  constructor(readonly value: unknown) {}
}

const firstLine = (s: string): string => s.split("\n").slice(0, 3).join(" ")

/**
 * The first lines of a schema's error, or a line saying it could not be written: Schema's
 * formatter prints each offending value whole, recursively, and one nested thousands deep (hostile
 * JSON) overflows the stack. A call must fail with its CacheInputError, not die.
 */
const reasonOf = (error: ParseResult.ParseError): string => {
  try {
    return firstLine(error.message)
  } catch (cause) {
    const name = cause instanceof Error ? cause.name : "an exception"
    return `Schema's error could not be written (${name}: the offending value may be nested too deep to print)`
  }
}

/** The error of a bad key, or undefined. */
export const checkKey: (key: unknown) => CacheInputError | undefined = keyError

/**
 * A list of keys read once, each element by index (`length` read once too), checked as read: the
 * keys a batch read uses are the keys checked, whatever the caller's iterator or an element's
 * getter would answer on a second read. Or the error of a bad list, at its first bad key: the
 * rest is never read (a sparse array of 2^32 - 1 holes is refused at its first hole, not copied).
 */
export const keyList = (keys: unknown): ReadonlyArray<string> | CacheInputError => {
  try {
    return Array.isArray(keys) ? checkedElements(keys, checkKey) : keysError(keys)!
  } catch (cause) {
    return unreadable("keys", "InvalidKey", cause)
  }
}

/** The error of a bad glob pattern, or undefined. */
export const checkPattern: (glob: unknown) => CacheInputError | undefined = patternError

/** The error of a bad tag, or undefined. */
export const checkTag: (tag: unknown) => CacheInputError | undefined = tagError

/** Encodes a value for storage: with the schema when given, then checks it is JSON-safe. */
export const encodeValue = (value: unknown, schema: AnySchema | undefined): Encoded | CacheInputError => {
  let encoded = value
  if (schema !== undefined) {
    const e = encoderOf(schema)(value)
    if (e._tag === "Left") {
      return new CacheInputError({
        problem: "UnencodableValue",
        reason: `value does not encode with the schema: ${reasonOf(e.left)}`
      })
    }
    encoded = e.right
  }
  return jsonError(encoded) ?? new Encoded(encoded)
}

/**
 * What `schema` decodes from `encoded` (a value it encoded), or the error of a value whose
 * encoded form it does not decode: a schema that does not round-trip (a transformation whose
 * encode gives what its decode refuses). Stored, such a value would never be read back: every
 * typed read a miss, every getOrComputeTyped a new computation.
 */
export const decodeEncoded = (encoded: unknown, schema: AnySchema): unknown | CacheInputError => {
  const d = decoderOf(schema)(encoded)
  if (d._tag === "Right") return d.right
  return new CacheInputError({
    problem: "UnencodableValue",
    reason: `value's encoded form does not decode with the schema (it does not round-trip): ${reasonOf(d.left)}`
  })
}

/**
 * A typed write's schema (undefined: none), or the error of one that is not a Schema or of
 * options that cannot be read.
 */
export const schemaOf = (
  opts: { readonly schema?: unknown } | undefined
): AnySchema | undefined | CacheInputError => {
  if (opts === undefined) return undefined
  let schema: unknown
  try {
    schema = opts.schema
  } catch (cause) {
    return unreadable("options", "InvalidOption", cause)
  }
  if (schema === undefined) return undefined
  return checkSchema(schema) ?? (schema as AnySchema)
}

/**
 * A read's `allowStale` option, or the error of options that are not an object (`null`, a
 * string, from plain JS: as a write's), of an `allowStale` that is neither a boolean nor absent
 * (`"yes"` would otherwise read as false), or of options that cannot be read.
 */
export const allowStaleOf = (opts: {
  readonly allowStale?: boolean | undefined
}): boolean | CacheInputError => {
  if (typeof opts !== "object" || opts === null) {
    return new CacheInputError({
      problem: "InvalidOption",
      reason: `options must be an object, got ${describe(opts)}`
    })
  }
  let allowStale: unknown
  try {
    allowStale = opts.allowStale
  } catch (cause) {
    return unreadable("options", "InvalidOption", cause)
  }
  if (allowStale === true) return true
  if (allowStale === false || allowStale === undefined) return false
  return new CacheInputError({
    problem: "InvalidOption",
    reason: `allowStale must be a boolean, got ${describe(allowStale)}`
  })
}
