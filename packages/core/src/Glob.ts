/**
 * Redis-style glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\` escapes), for tiers that match
 * keys in memory and for building patterns from literal keys.
 *
 * Matching follows Redis's own matcher (`stringmatchlen` in `util.c`, used by `SCAN MATCH` and
 * `KEYS`) exactly, so that a tier matching in memory removes the keys Redis would remove:
 * - it works on the bytes of the UTF-8 encoding: `?` and a `[...]` class match one byte, so
 *   `u:??` matches `u:é` (two bytes) and `u:日?` does not match `u:日本` (three bytes per
 *   character); a range compares bytes as C's signed `char` does (bytes 0x80-0xFF come before
 *   `\0`);
 * - `\x` is a literal `x` (a trailing `\` is a literal `\`); inside a class `\x` is `x`, `a-z` a
 *   range (reversed ends are swapped), `^` first negates; an unclosed class ends with the
 *   pattern (`[ab` is `[ab]`), `[` or `[]` alone matches nothing, `[^` alone any one byte;
 * - a key of zero bytes matches only the empty pattern, and patterns with more than 1,000 nested `*`
 *   match nothing (Redis's guard against abusive patterns).
 *
 * An ASCII pattern with at most one `*` is compiled once into a regular expression for ASCII keys
 * (their characters are their bytes); other keys and patterns (and patterns too large for a
 * regular expression) are encoded to UTF-8 and go through a port of Redis's matcher.
 *
 * @since 0.1.0
 */

import { globWork } from "./internal/globWork.js"

const special = /[*?[\]\\]/g

/**
 * Escapes a literal so that it matches only itself inside a glob (`app[1]:` -> `app\[1\]:`).
 *
 * @category utils
 * @since 0.1.0
 */
// biome-ignore lint/suspicious/noShadowRestrictedNames: a module export, read as Glob.escape
export const escape = (literal: string): string => literal.replace(special, "\\$&")

const STAR = 42
const QUESTION = 63
const OPEN = 91
const CLOSE = 93
const BACKSLASH = 92
const CARET = 94
const DASH = 45
/** Redis gives up on patterns whose `*` nest deeper than this. */
const MAX_NESTING = 1000

const nonAscii = /[\u0080-\uffff]/

/**
 * The UTF-8 bytes of a string, one character (0-255) per byte. A lone surrogate becomes the
 * replacement character's bytes, as Node's encoder (and so ioredis) writes it.
 */
const utf8 = (s: string): string => {
  let out = ""
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i)
    if (c < 0x80) {
      out += s[i]
      continue
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = i + 1 < s.length ? s.charCodeAt(i + 1) : 0
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        c = 0x10000 + ((c - 0xd800) << 10) + (next - 0xdc00)
        i++
      } else {
        c = 0xfffd
      }
    }
    if (c < 0x800) {
      out += String.fromCharCode(0xc0 | (c >> 6), 0x80 | (c & 0x3f))
    } else if (c < 0x10000) {
      out += String.fromCharCode(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f))
    } else {
      out += String.fromCharCode(
        0xf0 | (c >> 18),
        0x80 | ((c >> 12) & 0x3f),
        0x80 | ((c >> 6) & 0x3f),
        0x80 | (c & 0x3f)
      )
    }
  }
  return out
}

/** A byte as C's signed `char` reads it (Redis compares range ends that way). */
const signed = (b: number): number => (b > 127 ? b - 256 : b)

/**
 * Redis's `skipLongerMatches`: once the rest of a pattern failed from every position, earlier
 * `*` need not try longer runs. Matching is synchronous, so one flag serves every match.
 */
let skipLonger = false

/** The pattern's byte at `i`, or 0 past its end (the C code reads the terminating NUL there). */
const byteAt = (p: string, i: number): number => (i < p.length ? p.charCodeAt(i) : 0)

/** Whether the byte at `i` of the pattern must equal the key's byte (no wildcard, class or escape). */
const isLiteral = (c: number): boolean => c !== STAR && c !== QUESTION && c !== OPEN && c !== BACKSLASH

/**
 * Redis's matcher over two strings of bytes (one character per byte). Each byte of the pattern
 * or key it looks at is a step of `globWork` (counted for tests).
 */
const matchBytes = (p: string, pi: number, s: string, si: number, nesting: number): boolean => {
  if (nesting > MAX_NESTING) return false
  const pEnd = p.length
  const sEnd = s.length
  while (pi < pEnd && si < sEnd) {
    globWork.steps++
    const c = p.charCodeAt(pi)
    if (c === STAR) {
      while (pi < pEnd && byteAt(p, pi + 1) === STAR) pi++
      if (pEnd - pi === 1) return true
      // Where the rest starts with a literal byte, only the positions holding it can match
      // (the others would fail at once, without touching skipLonger).
      const next = p.charCodeAt(pi + 1)
      const literal = isLiteral(next)
      while (si < sEnd) {
        globWork.steps++
        if (!literal || s.charCodeAt(si) === next) {
          if (matchBytes(p, pi + 1, s, si, nesting + 1)) return true
          if (skipLonger) return false
        }
        si++
      }
      skipLonger = true
      return false
    } else if (c === QUESTION) {
      si++
    } else if (c === OPEN) {
      pi++
      const not = byteAt(p, pi) === CARET
      if (not) pi++
      let match = false
      const b = s.charCodeAt(si)
      for (;;) {
        globWork.steps++
        const left = pEnd - pi
        const pc = byteAt(p, pi)
        if (pc === BACKSLASH && left >= 2) {
          pi++
          if (p.charCodeAt(pi) === b) match = true
        } else if (pc === CLOSE) {
          break
        } else if (left === 0) {
          pi--
          break
        } else if (left >= 3 && p.charCodeAt(pi + 1) === DASH) {
          const x = signed(pc)
          const y = signed(p.charCodeAt(pi + 2))
          const sb = signed(b)
          pi += 2
          if (x <= y ? sb >= x && sb <= y : sb >= y && sb <= x) match = true
        } else if (pc === b) {
          match = true
        }
        pi++
      }
      if (not) match = !match
      if (!match) return false
      si++
    } else {
      if (c === BACKSLASH && pEnd - pi >= 2) pi++
      if (p.charCodeAt(pi) !== s.charCodeAt(si)) return false
      si++
    }
    pi++
    if (si === sEnd) {
      while (byteAt(p, pi) === STAR) pi++
      break
    }
  }
  return pi === pEnd && si === sEnd
}

/** Whether the key's bytes match the pattern's, from the start. */
const matchAll = (p: string, s: string): boolean => {
  skipLonger = false
  return matchBytes(p, 0, s, 0, 0)
}

/** `\xHH` (or `\uHHHH` past Latin-1) for a character, so that it is literal in a regular expression. */
const hex = (c: number): string =>
  c <= 0xff ? `\\x${c.toString(16).padStart(2, "0")}` : `\\u${c.toString(16).padStart(4, "0")}`

/**
 * Compiles an ASCII glob into a regular expression that accepts exactly the ASCII keys Redis's
 * matcher accepts (the byte matcher's grammar, read once: Redis's reading of the pattern never
 * depends on the key). Every key byte is ASCII there, so ranges compare the same signed or not.
 */
const asciiRegExp = (glob: string): RegExp => {
  const n = glob.length
  let out = "^"
  for (let i = 0; i < n; i++) {
    const c = glob.charCodeAt(i)
    if (c === STAR) {
      while (i < n && byteAt(glob, i + 1) === STAR) i++
      out += "[\\s\\S]*"
    } else if (c === QUESTION) {
      out += "[\\s\\S]"
    } else if (c === OPEN) {
      i++
      const not = byteAt(glob, i) === CARET
      if (not) i++
      let set = ""
      for (;;) {
        const left = n - i
        const pc = byteAt(glob, i)
        if (pc === BACKSLASH && left >= 2) {
          i++
          set += hex(glob.charCodeAt(i))
        } else if (pc === CLOSE) {
          break
        } else if (left === 0) {
          i--
          break
        } else if (left >= 3 && glob.charCodeAt(i + 1) === DASH) {
          const end = glob.charCodeAt(i + 2)
          set += `${hex(Math.min(pc, end))}-${hex(Math.max(pc, end))}`
          i += 2
        } else {
          set += hex(pc)
        }
        i++
      }
      out += set === "" ? (not ? "[\\s\\S]" : "(?!)") : `[${not ? "^" : ""}${set}]`
    } else {
      if (c === BACKSLASH && n - i >= 2) i++
      out += hex(glob.charCodeAt(i))
    }
  }
  return new RegExp(`${out}$`)
}

/**
 * Compiles a glob into an anchored regular expression with Redis's grammar, matching UTF-16
 * code units. For ASCII keys it accepts exactly what Redis's `SCAN MATCH` accepts; Redis
 * matches bytes of UTF-8, so `?` and `[...]` differ on other keys (`u:??` matches `u:é` in
 * Redis, not here).
 *
 * A glob of more than some 32,000 atoms makes an expression V8 refuses at its first test
 * ("Regular expression too large"); {@link matcher} has no such limit.
 *
 * @deprecated Use {@link matcher}, which matches every key as Redis does.
 * @category utils
 * @since 0.1.0
 */
export const toRegExp = (glob: string): RegExp => asciiRegExp(glob)

/**
 * Above this many `*`, an ASCII glob is matched by the byte matcher too: a regular expression
 * backtracks through every split of the key between its stars, where Redis's matcher prunes
 * (with two stars a miss costs the square of the key's length, with three its cube: `*a*a*ab`
 * against 2,000 `a` took 3 s, blocking the event loop). With one star it is linear.
 */
const MAX_REGEXP_STARS = 1

/**
 * `asciiRegExp(glob)` compiled, or undefined when V8 refuses it. V8 compiles a regular expression
 * at its first test, not when it is made, and refuses one of more than some 32,000 atoms there
 * ("Regular expression too large", a SyntaxError): e.g. a glob of 40,000 literal characters and a
 * `*`. Tested once here on an empty key, so that the refusal comes now and the glob goes to the
 * byte matcher, instead of being thrown by the predicate at its first key.
 */
const compiledRegExp = (glob: string): RegExp | undefined => {
  try {
    const regExp = asciiRegExp(glob)
    regExp.test("")
    return regExp
  } catch {
    return undefined
  }
}

/**
 * A predicate that tells whether a key matches the glob, as Redis's `SCAN MATCH` does (see the
 * module's description), for globs of any length. Compile once, test many keys.
 *
 * @category utils
 * @since 0.1.0
 */
export const matcher = (glob: string): ((key: string) => boolean) => {
  const asciiGlob = !nonAscii.test(glob)
  if (!/[*?[\\]/.test(glob) && asciiGlob) return (key) => key === glob
  const globBytes = asciiGlob ? glob : utf8(glob)
  const stars = glob.split("*").length - 1
  const regExp = asciiGlob && stars <= MAX_REGEXP_STARS ? compiledRegExp(glob) : undefined
  if (regExp === undefined) return (key) => matchAll(globBytes, nonAscii.test(key) ? utf8(key) : key)
  const re = globWork.counting ? charged(regExp, stars, glob.length) : regExp
  // A key of zero bytes matches no pattern but the empty one, which took the first branch.
  // Without `?` or a class, only ASCII literals and `*` remain: a non-ASCII character matches
  // them exactly when its bytes do, so the key need not be looked at first.
  if (!/[?[]/.test(glob)) return (key) => key.length > 0 && re.test(key)
  return (key) => (nonAscii.test(key) ? matchAll(globBytes, utf8(key)) : key.length > 0 && re.test(key))
}

/**
 * A regular expression's test, charged to `globWork` (tests that count). V8 does not report a
 * match's steps, so each test is charged its worst case: every split of the key between the
 * expression's `stars` (the key's length plus one, to the power of the stars), and the pattern.
 */
const charged = (regExp: RegExp, stars: number, patternLength: number): Pick<RegExp, "test"> => ({
  test: (key) => {
    globWork.steps += (key.length + 1) ** Math.max(stars, 1) + patternLength
    return regExp.test(key)
  }
})
