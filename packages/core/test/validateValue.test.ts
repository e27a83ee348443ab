/**
 * The quick check of values (internal/validateValue.ts `surelyPlain`) in front of the walk that
 * names problems (`jsonProblem`): it may answer false for a value the walk accepts (the walk
 * then decides), never true for one the walk refuses, and it takes the usual JSON value.
 */
import { runInNewContext } from "node:vm"
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { jsonError, jsonProblem, surelyPlain } from "../src/internal/validateValue.js"

/** Values of every kind, including what JSON cannot hold. */
const anything = fc.anything({
  maxDepth: 4,
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withNullPrototype: true,
  withObjectString: true,
  withSparseArray: true,
  withTypedArray: true,
  withUnicodeString: true
})

/** `anything`, also inside functions, class instances, arrays with holes and non-finite numbers. */
const hostile = fc.oneof(
  anything,
  fc.constantFrom(undefined, Number.NaN, Number.POSITIVE_INFINITY, () => 1, Symbol("s")),
  anything.map((v) => ({ inner: v, f: () => v })),
  anything.map((v) => [v, undefined]),
  anything.map((v) => Object.assign(new (class Box {})(), { v })),
  anything.map((v) => {
    const list = new (class List extends Array<unknown> {})()
    list.push(v)
    return list
  }),
  anything.map((v) => ({ v, toJSON: () => "other" })),
  // A toJSON JSON would call that no key walk meets (not enumerable).
  anything.map((v) => Object.defineProperty({ v }, "toJSON", { value: () => "other", enumerable: false })),
  anything.map((v) => Object.defineProperty([v], "toJSON", { value: () => "other", enumerable: false })),
  anything.map((v) => ({ nested: [{ v }], bad: [1, Number.NaN] }))
)

describe("the quick value check", () => {
  it("never takes a value the walk refuses", () => {
    fc.assert(
      fc.property(hostile, (value) => {
        if (surelyPlain(value)) expect(jsonProblem(value)).toBeUndefined()
      }),
      { numRuns: 3000 }
    )
  })

  it("takes every JSON value (the usual value never goes through the walk)", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(surelyPlain(value)).toBe(true)
      }),
      { numRuns: 1000 }
    )
  })

  it("leaves to the walk what it cannot judge, and the walk's answer stands", () => {
    // Another realm's plain object and array: refused by the quick check, accepted by the walk.
    const foreign = runInNewContext("({ a: [1, 'x', { b: null }] })")
    expect(surelyPlain(foreign)).toBe(false)
    expect(jsonError(foreign)).toBeUndefined()
    // A cycle: the quick check stops at the depth limit; the walk names the cycle.
    const cyclic: Record<string, unknown> = { a: 1 }
    cyclic.self = { back: cyclic }
    expect(surelyPlain(cyclic)).toBe(false)
    expect(jsonError(cyclic)?.reason).toContain("circular reference")
    // A getter that throws.
    const throwing = Object.defineProperty({}, "x", {
      enumerable: true,
      get: () => {
        throw new Error("boom")
      }
    })
    expect(surelyPlain(throwing)).toBe(false)
    expect(jsonError(throwing)?.reason).toContain("could not be read")
  })

  it("an enumerable function on Object.prototype makes the quick check refuse, not the value", () => {
    const proto = Object.prototype as Record<string, unknown>
    proto.polluted = () => 1
    try {
      const value = { a: 1, b: [2] }
      expect(surelyPlain(value)).toBe(false)
      // JSON ignores inherited properties, and so does the walk.
      expect(jsonError(value)).toBeUndefined()
    } finally {
      delete proto.polluted
    }
  })
})
