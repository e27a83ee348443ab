import { describe, expect, it } from "@effect/vitest"
import { Entry, InvalidationMessage } from "@tiercache/core"
import { Either } from "effect"

describe("bus messages", () => {
  it("decode the Rust crate's serde JSON", () => {
    const seed = [
      '{"type":"Remove","key":"user:1"}',
      '{"type":"Update","key":"user:1","value":{"name":"a"},"ttl_secs":300}',
      '{"type":"Update","key":"user:1","value":1,"ttl_secs":null}',
      '{"type":"Update","key":"user:1","value":null,"ttl_secs":300}',
      '{"type":"RemovePattern","pattern":"user:*"}',
      '{"type":"RemoveBulk","keys":["a","b"]}'
    ]
    for (const raw of seed) {
      const decoded = InvalidationMessage.decode(raw)
      expect(Either.isRight(decoded)).toBe(true)
      expect(Either.getOrThrow(decoded)).toEqual(JSON.parse(raw))
    }
  })

  it("round-trip our own, and reject malformed ones with a reason", () => {
    const ours: ReadonlyArray<InvalidationMessage.InvalidationMessage> = [
      { type: "RemoveTag", tag: "t", origin: "i1" },
      { type: "Clear", origin: "i1" },
      {
        type: "Update",
        key: "k",
        value: [1],
        ttl_secs: 2,
        ttl_ms: 1500,
        grace_ms: 0,
        tags: ["t"],
        created_ms: 1_700_000_000_000,
        origin: "i2"
      }
    ]
    for (const m of ours)
      expect(Either.getOrThrow(InvalidationMessage.decode(InvalidationMessage.encode(m)))).toEqual(m)
    for (const raw of [
      "",
      "{",
      "null",
      '{"type":"Remove"}',
      '{"type":"Nope","key":"k"}',
      '{"type":"RemoveBulk","keys":[1]}'
    ]) {
      const decoded = InvalidationMessage.decode(raw)
      expect(Either.isLeft(decoded)).toBe(true)
      if (Either.isLeft(decoded)) expect(decoded.left.length).toBeGreaterThan(0)
    }
    // An Update without a value (JSON has no undefined) is malformed, not an undefined value.
    expect(InvalidationMessage.decodeDetailed('{"type":"Update","key":"k","ttl_secs":300}')).toEqual(
      Either.left({ kind: "invalid_field", reason: expect.stringContaining('"value" is missing') })
    )
  })

  it("describe a wrong field nested 100,000 deep, or megabytes long, in one short line", () => {
    const depth = 100_000
    const array = "[".repeat(depth) + "]".repeat(depth)
    const object = `${'{"a":'.repeat(depth)}1${"}".repeat(depth)}`
    const wide = JSON.stringify(Array.from({ length: 1_000_000 }, (_, i) => i))
    const cases: ReadonlyArray<readonly [string, InvalidationMessage.MalformedKind, string]> = [
      [
        `{"type":"RemoveBulk","keys":["a",${array}]}`,
        "invalid_field",
        'RemoveBulk: field "keys.1" has the wrong type ([[['
      ],
      [
        `{"type":"Remove","key":${object}}`,
        "invalid_field",
        'Remove: field "key" has the wrong type ({"a":{"a":'
      ],
      [
        `{"type":"Remove","key":${wide}}`,
        "invalid_field",
        'Remove: field "key" has the wrong type ([0,1,2,3,'
      ],
      [`{"type":${array}}`, "unknown_type", "unknown type [[[["],
      [`garbage ${"x".repeat(1_000_000)}`, "not_json", 'not JSON: "garbage xxx']
    ]
    for (const [raw, kind, start] of cases) {
      const decoded = InvalidationMessage.decodeDetailed(raw)
      expect(decoded).toEqual(Either.left({ kind, reason: expect.stringContaining("...") }))
      if (Either.isLeft(decoded)) {
        expect(decoded.left.reason.startsWith(start)).toBe(true)
        expect(decoded.left.reason.length).toBeLessThan(120)
      }
    }
  })
})

describe("entry envelope", () => {
  it("serializes and parses; anything else is undefined", () => {
    const e = Entry.make({ value: { a: [1, "x", null] }, now: 1000, ttlMs: 500, graceMs: 100, tags: ["t"] })
    expect(Entry.deserialize(Entry.serialize(e))).toEqual(e)
    for (const raw of ["", "not json", "{}", '{"v":1,"e":"x","s":1,"c":1}', '{"v":1,"e":5,"s":4,"c":1}']) {
      expect(Entry.deserialize(raw)).toBeUndefined()
    }
  })

  it("rebases lifetimes on a remaining countdown, keeping the grace window", () => {
    const e = Entry.make({ value: 1, now: 0, ttlMs: 1000, graceMs: 200 })
    const r = Entry.rebase(e, 50_000, 700)
    expect([r.expiresAt, r.staleUntil]).toEqual([50_500, 50_700])
  })
})
