/**
 * Redis-style glob patterns (`*`, `?`, `[abc]`, `[^a-z]`, `\` escapes), for tiers that match
 * keys in memory and for building patterns from literal keys.
 *
 * @since 0.1.0
 */

const special = /[*?[\]\\]/g

/**
 * Escapes a literal so that it matches only itself inside a glob (`app[1]:` -> `app\[1\]:`).
 *
 * @category utils
 * @since 0.1.0
 */
// biome-ignore lint/suspicious/noShadowRestrictedNames: a module export, read as Glob.escape
export const escape = (literal: string): string => literal.replace(special, "\\$&")

const regexSpecial = /[.*+?^${}()|[\]\\/-]/g
const escapeRegex = (s: string): string => s.replace(regexSpecial, "\\$&")

/**
 * Compiles a glob into an anchored regular expression with Redis's semantics.
 *
 * @category utils
 * @since 0.1.0
 */
export const toRegExp = (glob: string): RegExp => {
  let out = "^"
  let i = 0
  while (i < glob.length) {
    const c = glob[i]!
    if (c === "\\" && i + 1 < glob.length) {
      out += escapeRegex(glob[i + 1]!)
      i += 2
    } else if (c === "*") {
      out += "[\\s\\S]*"
      i++
    } else if (c === "?") {
      out += "[\\s\\S]"
      i++
    } else if (c === "[") {
      const close = findClose(glob, i + 1)
      if (close === -1) {
        out += "\\["
        i++
        continue
      }
      let body = glob.slice(i + 1, close)
      let negate = false
      if (body.startsWith("^")) {
        negate = true
        body = body.slice(1)
      }
      let cls = ""
      for (let j = 0; j < body.length; j++) {
        const b = body[j]!
        if (b === "\\" && j + 1 < body.length) {
          cls += escapeRegex(body[++j]!)
        } else if (b === "-" && j > 0 && j + 1 < body.length) {
          cls += "-"
        } else {
          cls += escapeRegex(b)
        }
      }
      out += cls.length === 0 ? (negate ? "[\\s\\S]" : "(?!)") : `[${negate ? "^" : ""}${cls}]`
      i = close + 1
    } else {
      out += escapeRegex(c)
      i++
    }
  }
  return new RegExp(`${out}$`)
}

const findClose = (glob: string, from: number): number => {
  for (let j = from; j < glob.length; j++) {
    if (glob[j] === "\\") j++
    else if (glob[j] === "]") return j
  }
  return -1
}

/**
 * A predicate that tells whether a key matches the glob.
 *
 * @category utils
 * @since 0.1.0
 */
export const matcher = (glob: string): ((key: string) => boolean) => {
  if (!/[*?[\\]/.test(glob)) return (key) => key === glob
  const re = toRegExp(glob)
  return (key) => re.test(key)
}
