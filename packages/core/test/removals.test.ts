import { describe, expect, it } from "@effect/vitest"
import { BULK, removals } from "../src/internal/removals.js"

// The bus messages telling other instances that keys were removed (internal/removals.ts): one key
// as a Remove (the seed's message), more as RemoveBulks of at most BULK keys.

const keys = (n: number) => Array.from({ length: n }, (_, i) => `k${i}`)

describe("removals", () => {
  it("one key is a Remove, several a RemoveBulk", () => {
    expect(removals(["a"], "me")).toEqual([{ type: "Remove", key: "a", origin: "me" }])
    expect(removals(["a", "b"], "me")).toEqual([{ type: "RemoveBulk", keys: ["a", "b"], origin: "me" }])
  })

  it("cuts every BULK keys, each key once and in order; a last key alone is a Remove", () => {
    const all = keys(2 * BULK + 1)
    const messages = removals(all, "me")
    expect(messages.map((m) => m.type)).toEqual(["RemoveBulk", "RemoveBulk", "Remove"])
    const sent = messages.flatMap((m) =>
      m.type === "RemoveBulk" ? m.keys : m.type === "Remove" ? [m.key] : []
    )
    expect(sent).toEqual(all)
    expect(removals(keys(BULK), "me").map((m) => m.type)).toEqual(["RemoveBulk"])
  })
})
