import { describe, expect, it } from "@effect/vitest"
import { Glob } from "@tiercache/core"
import { globWork } from "../src/internal/globWork.js"

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

  it("matches the UTF-8 bytes of the key, as Redis does", () => {
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      ["u:日?", "u:日本", false], // 本 is three bytes
      ["u:日???", "u:日本", true],
      ["u:??", "u:é", true], // é is two bytes
      ["u:?", "u:é", false],
      ["u:[é]", "u:é", false], // a class matches one byte
      ["u:[^a]?", "u:é", true],
      ["?", "\u{1F600}", false],
      ["????", "\u{1F600}", true],
      ["[\u00e9]*", "\u00e9", true],
      ["*本", "日本", true],
      ["日*", "日本", true],
      ["[ß-a]", "a", true] // range ends compare as signed char: 0xC3 < 'a'
    ]
    for (const [glob, key, expected] of cases) {
      const [g, k] = [JSON.parse(`"${glob}"`) as string, JSON.parse(`"${key}"`) as string]
      expect([glob, key, Glob.matcher(g)(k)]).toEqual([glob, key, expected])
    }
  })

  it("reads Redis's class edge cases as Redis does", () => {
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      ["a[", "a[", false], // an unclosed "[" at the end matches nothing
      ["a[]", "a]", false],
      ["a[^", "ab", true], // "[^" at the end matches any one byte
      ["a[bc", "ac", true], // an unclosed class ends with the pattern
      ["a[b-", "a-", true],
      ["a[z-a]", "am", true], // reversed ends are swapped
      ["a[\\]]", "a]", true],
      ["a\\", "a\\", true], // a trailing backslash is literal
      ["a*", "a", true],
      ["*", "", false], // a key of zero bytes matches only the empty pattern
      ["", "", true]
    ]
    for (const [glob, key, expected] of cases)
      expect([glob, key, Glob.matcher(glob)(key)]).toEqual([glob, key, expected])
    expect(Glob.matcher("*a".repeat(1000))("a".repeat(1000))).toBe(true)
    expect(Glob.matcher("*a".repeat(1001))("a".repeat(1001))).toBe(false)
  })

  it("several stars against a long key take steps linear in the key (no backtracking through every split)", () => {
    // As a regular expression, each of these cost the square or the cube of the key's length:
    // `*a*a*ab` against 20,000 "a" would run for hours on the event loop. The matcher's steps
    // are counted (globWork), not timed: Redis's matcher looks at each byte a few times (4 at
    // most here), a backtracking one at every split of the key between its stars (a regular
    // expression is charged that). The short keys come first, so that a backtracking matcher
    // fails there at once rather than running for hours on the long ones.
    globWork.counting = true
    try {
      for (const length of [200, 20_000]) {
        const long = "a".repeat(length)
        for (const glob of ["*a*ab", "*a*a*ab", "*a*[a]*a?b", "a*a*a*b"]) {
          const matches = Glob.matcher(glob)
          for (const [key, expected] of [
            [long, false],
            [`${long}é`, false],
            [`é${long}`, false],
            [`${long}ab`, true]
          ] as const) {
            globWork.steps = 0
            const matched = matches(key)
            const bound = 8 * (glob.length + key.length)
            expect([glob, key.length, matched, globWork.steps <= bound ? "linear" : globWork.steps]).toEqual([
              glob,
              key.length,
              expected,
              "linear"
            ])
          }
        }
      }
    } finally {
      globWork.counting = false
    }
  })

  it("a glob too large for a regular expression (V8: some 32,000 atoms) is matched byte by byte", () => {
    // As a regular expression, these threw "Regular expression too large" (a SyntaxError) at
    // the predicate's first key, out of an invalidatePattern or a received RemovePattern.
    const n = 40_000
    const long = "a".repeat(n)
    const cases: ReadonlyArray<readonly [string, string, boolean]> = [
      [`${long}*`, long, true],
      [`${long}*`, `${long}xyz`, true],
      [`${long}*`, `${long}\u00e9`, true],
      [`${long}*`, `${"a".repeat(n - 1)}b`, false],
      [`${long}*`, "", false],
      ["?".repeat(n), long, true],
      ["?".repeat(n), "\u00e9".repeat(n / 2), true], // two bytes each
      ["?".repeat(n), long.slice(1), false],
      ["[ab]".repeat(n), "ab".repeat(n / 2), true],
      ["[ab]".repeat(n), `${"ab".repeat(n / 2 - 1)}ac`, false],
      [`*:${"[^b]".repeat(n)}`, `bb:${long}`, true],
      [`*:${"[^b]".repeat(n)}`, `bb:${long.slice(1)}b`, false]
    ]
    for (const [glob, key, expected] of cases)
      expect([glob.slice(0, 8), key.length, Glob.matcher(glob)(key)]).toEqual([
        glob.slice(0, 8),
        key.length,
        expected
      ])
  })

  it("escapes literals so they match only themselves", () => {
    const literal = "app[1]:*?\\"
    const glob = `${Glob.escape(literal)}*`
    expect(Glob.matcher(glob)(`${literal}key`)).toBe(true)
    expect(Glob.matcher(glob)("app1:key")).toBe(false)
    expect(Glob.matcher(Glob.escape("app[1]:"))("app1:")).toBe(false)
  })
  it("toRegExp (deprecated) agrees with matcher on ASCII keys and compiles non-ASCII patterns", () => {
    const globs = ["u:*", "a[b-d]?", "a[^x]*z", "a\\*b", "[z-a]", "x?y", "*"]
    const keys = ["u:1", "u:", "ab1", "ac", "aqqz", "a*b", "ab", "m", "xay", "x"]
    for (const glob of globs) {
      const re = Glob.toRegExp(glob)
      for (const key of keys) expect([glob, key, re.test(key)]).toEqual([glob, key, Glob.matcher(glob)(key)])
    }
    expect(Glob.toRegExp("日*").test("日本")).toBe(true)
    expect(Glob.toRegExp("日*").test("本日")).toBe(false)
  })
})
