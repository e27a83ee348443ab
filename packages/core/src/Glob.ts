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
 * Keys and patterns that are ASCII are matched on their characters directly; only those with
 * other characters are encoded to UTF-8 first.
 *
 * @since 0.1.0
 */

const special = /[*?[\]\\]/g

/**
 * Escapes a literal so that it matches only itself inside a glob (`app[1]:` -> `app\[1\]:`).
 *
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
 * Redis's matcher over two strings of bytes (one character per byte). Reading the pattern past
 * its end yields 0, as the C code reads the string's terminating NUL. `skip` carries Redis's
 * `skipLongerMatches`: once the rest of a pattern failed from every position, earlier `*` need
 * not try longer runs.
 */
const matchBytes = (
  p: string,
  pi: number,
  s: string,
  si: number,
  skip: { value: boolean },
  nesting: number
): boolean => {
  if (nesting > MAX_NESTING) return false
  const pEnd = p.length
  const sEnd = s.length
  const at = (i: number): number => (i < pEnd ? p.charCodeAt(i) : 0)
  while (pi < pEnd && si < sEnd) {
    const c = p.charCodeAt(pi)
    if (c === STAR) {
      while (pi < pEnd && at(pi + 1) === STAR) pi++
      if (pEnd - pi === 1) return true
      while (si < sEnd) {
        if (matchBytes(p, pi + 1, s, si, skip, nesting + 1)) return true
        if (skip.value) return false
        si++
      }
      skip.value = true
      return false
    } else if (c === QUESTION) {
      si++
    } else if (c === OPEN) {
      pi++
      const not = at(pi) === CARET
      if (not) pi++
      let match = false
      const b = s.charCodeAt(si)
      for (;;) {
        const left = pEnd - pi
        const pc = at(pi)
        if (pc === BACKSLASH && left >= 2) {
          pi++
          if (p.charCodeAt(pi) === b) match = true
        } else if (pc === CLOSE) {
          break
        } else if (left === 0) {
          pi--
          break
        } else if (left >= 3 && p.charCodeAt(pi + 1) === DASH) {
          let start = signed(pc)
          let end = signed(p.charCodeAt(pi + 2))
          if (start > end) [start, end] = [end, start]
          const sb = signed(b)
          pi += 2
          if (sb >= start && sb <= end) match = true
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
      while (at(pi) === STAR) pi++
      break
    }
  }
  return pi >= pEnd && si === sEnd
}

/**
 * A predicate that tells whether a key matches the glob, as Redis's `SCAN MATCH` does (see the
 * module's description). Compile once, test many keys.
 *
 * @since 0.1.0
 */
export const matcher = (glob: string): ((key: string) => boolean) => {
  const asciiGlob = !nonAscii.test(glob)
  if (!/[*?[\\]/.test(glob) && asciiGlob) return (key) => key === glob
  const globBytes = asciiGlob ? glob : utf8(glob)
  return (key) => matchBytes(globBytes, 0, nonAscii.test(key) ? utf8(key) : key, 0, { value: false }, 0)
}
