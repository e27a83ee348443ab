import { CacheInputError } from "../CacheError.js"

/**
 * The deepest nesting of arrays and objects a value may have (a value that is an array holds
 * depth 1). Deeper values are refused: encoding them (JSON.stringify) would overflow the stack.
 *
 * @internal
 */
export const MAX_DEPTH = 1000

/**
 * Checks that a value survives JSON encoding unchanged in meaning: plain objects, plain arrays
 * (no subclass), strings, finite numbers, booleans and null, nested at most {@link MAX_DEPTH}
 * deep, none of them with a `toJSON` method (JSON.stringify would encode its answer). Answers
 * the error naming the first offending path (a property whose getter throws is one), or
 * `undefined`. The walk is iterative, so no input overflows the stack.
 *
 * @internal
 */
export const jsonError = (value: unknown): CacheInputError | undefined => {
  if (surelyPlain(value)) return undefined
  let reason: string | undefined
  try {
    reason = jsonProblem(value)
  } catch (cause) {
    // A proxy whose traps throw (ownKeys, getPrototypeOf...).
    reason = `value could not be inspected: ${causeText(cause)}`
  }
  return reason === undefined ? undefined : new CacheInputError({ problem: "UnencodableValue", reason })
}

/**
 * The quick check of the usual value, on the write and compute paths: true only where the walk
 * below finds no problem (plain objects of this realm, plain arrays, strings, finite numbers,
 * booleans, null, within MAX_DEPTH, no `toJSON`), false for anything else, which the walk then
 * judges and names. Recursive (at most MAX_DEPTH frames, as the limit bounds it), with no frame
 * objects and no path kept: on a 200-byte object about a quarter of the walk's time.
 *
 * @internal
 */
export const surelyPlain = (value: unknown): boolean => {
  try {
    return plainAt(value, 0)
  } catch {
    // A getter or proxy trap threw: the walk names it.
    return false
  }
}

const plainAt = (value: unknown, depth: number): boolean => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true
    case "number":
      return Number.isFinite(value)
    case "object": {
      if (value === null) return true
      if (depth >= MAX_DEPTH) return false
      if (typeof (value as { readonly toJSON?: unknown }).toJSON === "function") return false
      if (Array.isArray(value)) {
        if (Object.getPrototypeOf(value) !== Array.prototype) return false
        for (let i = 0; i < value.length; i++) if (!plainAt(value[i], depth + 1)) return false
        return true
      }
      const proto = Object.getPrototypeOf(value)
      if (proto !== Object.prototype && proto !== null) return false
      const record = value as Record<string, unknown>
      // for-in takes no array of keys; it also meets inherited enumerable properties (of a
      // polluted Object.prototype), which only makes this check stricter than JSON.
      for (const key in record) {
        const child = record[key]
        // JSON drops object properties that are undefined.
        if (child !== undefined && !plainAt(child, depth + 1)) return false
      }
      return true
    }
    default:
      return false
  }
}

/** An array or object being walked: its keys (undefined for arrays) and the next child's index. */
interface Frame {
  readonly container: object
  readonly keys: ReadonlyArray<string> | undefined
  next: number
}

/** The path of the child last taken from each frame (`value.a[3].b`), shortened when very deep. */
const pathOf = (frames: ReadonlyArray<Frame>): string => {
  let out = "value"
  const shown = frames.length > 12 ? 10 : frames.length
  for (let d = 0; d < shown; d++) {
    const f = frames[d]!
    out += f.keys === undefined ? `[${f.next - 1}]` : `.${f.keys[f.next - 1]}`
  }
  return shown < frames.length ? `${out}... (${frames.length} levels down)` : out
}

const causeText = (cause: unknown): string =>
  cause instanceof Error ? cause.message : typeof cause === "string" ? cause : "a non-Error was thrown"

/** What is wrong with a scalar, or CONTAINER for arrays and objects to walk into. */
const CONTAINER = "container"
const scalarProblem = (value: unknown, path: () => string): string | undefined => {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined
    case "number":
      return Number.isFinite(value) ? undefined : `${path()} is ${value}, which JSON cannot hold`
    case "bigint":
      return `${path()} is a bigint, which JSON cannot hold (encode it with a Schema, e.g. Schema.BigInt)`
    case "undefined":
      return `${path()} is undefined, which JSON cannot hold`
    case "function":
    case "symbol":
      return `${path()} is a ${typeof value}, which JSON cannot hold`
    case "object":
      return value === null ? undefined : CONTAINER
  }
}

/** Whether `value` is a function of the engine's own (`[native code]`), not one of a script's. */
const isNative = (value: unknown): boolean =>
  typeof value === "function" && Function.prototype.toString.call(value).endsWith("{ [native code] }")

/**
 * Whether `proto` is the Object.prototype of some realm (node:vm, another frame): the end of its
 * chain, with no enumerable data, whose native `Object` constructor names it as its prototype,
 * holding Object.prototype's native methods (a null-prototype object of a script's that merely
 * names or copies them is not: JSON would drop what it passes on).
 */
const isObjectPrototype = (proto: object): boolean => {
  if (Object.getPrototypeOf(proto) !== null || Object.keys(proto).length > 0) return false
  const own = proto as Record<string, unknown>
  const maker = Object.getOwnPropertyDescriptor(proto, "constructor")?.value as
    | { readonly name?: unknown; readonly prototype?: unknown }
    | undefined
  return (
    isNative(maker) &&
    maker!.name === "Object" &&
    maker!.prototype === proto &&
    isNative(own.hasOwnProperty) &&
    isNative(own.isPrototypeOf) &&
    isNative(own.propertyIsEnumerable)
  )
}

/** At the depth limit: a cycle (a container repeated on the path) or a value too deep. */
const depthProblem = (frames: ReadonlyArray<Frame>, value: object): string => {
  const path = frames.map((f) => f.container)
  path.push(value)
  for (let k = 1; k < path.length; k++) {
    if (path.indexOf(path[k]!) < k) return `${pathOf(frames.slice(0, k))} is a circular reference`
  }
  return `value is nested deeper than ${MAX_DEPTH} levels (${pathOf(frames)})`
}

/**
 * The walk: the first problem JSON would have with `root`, with its path, or `undefined`.
 *
 * @internal
 */
export const jsonProblem = (root: unknown): string | undefined => {
  const frames: Array<Frame> = []
  const path = () => pathOf(frames)
  let value = root
  for (;;) {
    const problem = scalarProblem(value, path)
    if (problem === CONTAINER) {
      const container = value as object
      if (frames.length === MAX_DEPTH) return depthProblem(frames, container)
      const proto = Object.getPrototypeOf(container)
      const isArray = Array.isArray(container)
      // A plain array's prototype is an Array.prototype (this realm's, or another's, which is an
      // array itself); a plain object's is an Object.prototype (or null). A subclass's is not.
      if (
        isArray
          ? proto !== Array.prototype && !Array.isArray(proto)
          : proto !== Object.prototype && proto !== null && !isObjectPrototype(proto)
      ) {
        const name = container.constructor?.name ?? "object"
        return `${path()} is a ${name}, not a plain ${isArray ? "array" : "object"} (encode it with a Schema, e.g. Schema.Date)`
      }
      // JSON.stringify would encode what a toJSON method answers instead (own or inherited,
      // enumerable or not), read as it reads it; a toJSON that is data is encoded as such.
      if (typeof (container as { readonly toJSON?: unknown }).toJSON === "function") {
        return `${path()} has a toJSON method, which JSON would encode in its place (encode the value with a Schema instead)`
      }
      frames.push({ container, keys: isArray ? undefined : Object.keys(container), next: 0 })
    } else if (problem !== undefined) {
      return problem
    }
    // The next child to check: the next element of the innermost unfinished container.
    for (;;) {
      const top = frames[frames.length - 1]
      if (top === undefined) return undefined
      const keys = top.keys
      if (top.next >= (keys === undefined ? (top.container as Array<unknown>).length : keys.length)) {
        frames.pop()
        continue
      }
      const i = top.next++
      try {
        value =
          keys === undefined
            ? (top.container as Array<unknown>)[i]
            : (top.container as Record<string, unknown>)[keys[i]!]
      } catch (cause) {
        return `${path()} could not be read: its getter threw (${causeText(cause)})`
      }
      // JSON drops object properties that are undefined.
      if (keys !== undefined && value === undefined) continue
      break
    }
  }
}
