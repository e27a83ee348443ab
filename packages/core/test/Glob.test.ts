import { describe, expect, it } from "@effect/vitest"
import { Glob } from "@tiercache/core"

describe("Glob", () => {
  it("matches like Redis", () => {
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      ["user:*", "user:1", true],
      ["user:*", "user:", true],
      ["user:*", "order:1", false],
      ["h?llo", "hello", true],
      ["h?llo", "hllo", false],
      ["h[ae]llo", "hallo", true],
      ["h[ae]llo", "hillo", false],
      ["h[^e]llo", "hallo", true],
      ["h[^e]llo", "hello", false],
      ["h[a-c]llo", "hbllo", true],
      ["h[a-c]llo", "hdllo", false],
      ["a\\*b", "a*b", true],
      ["a\\*b", "axb", false],
      ["*", "line\nbreak", true],
      ["x.y", "xzy", false],
      ["(a)", "(a)", true]
    ]
    for (const [glob, key, expected] of cases)
      expect([glob, key, Glob.matcher(glob)(key)]).toEqual([glob, key, expected])
  })

  it("escapes literals so they match only themselves", () => {
    const literal = "app[1]:*?\\"
    const glob = `${Glob.escape(literal)}*`
    expect(Glob.matcher(glob)(`${literal}key`)).toBe(true)
    expect(Glob.matcher(glob)("app1:key")).toBe(false)
    expect(Glob.matcher(Glob.escape("app[1]:"))("app1:")).toBe(false)
  })
})
