/**
 * Stream entry ids of TestStreams, held as Redis holds them: two unsigned 64-bit numbers
 * `<ms>-<seq>`, here as one BigInt (`<ms> * 2^64 + <seq>`) that compares as the ids do; read
 * from what a caller gives as redis-server reads them.
 *
 * @internal
 */

/** An id as one number, `<ms> * 2^64 + <seq>`: ids compare as these do. */
export type Id = bigint

const U64 = 2n ** 64n

/** The id `0-0`, before every entry. */
export const ZERO: Id = 0n

/** The id as Redis writes it, `<ms>-<seq>`. */
export const format = (id: Id): string => `${id / U64}-${id % U64}`

/** The id of an entry published at `now` (Clock ms) in a stream whose last id is `last`. */
export const nextId = (now: number, last: Id): Id =>
  BigInt(now) > last / U64 ? BigInt(now) * U64 : last + 1n

/**
 * A number of an id as Redis reads it (its string2ull): a plain negative number is refused;
 * otherwise as C's strtoull in base 10: spaces (C's isspace) and a sign in front, digits to the
 * end, at most 2^64-1, and a "-" wrapping the number around 2^64. Undefined when refused.
 */
const u64 = (text: string): bigint | undefined => {
  if (/^-[1-9]\d*$/.test(text) && text.length < 21 && BigInt(text) >= -(U64 / 2n)) return undefined
  const match = /^[ \t\n\v\f\r]*([+-]?)(\d+)$/.exec(text)
  if (match === null) return undefined
  const n = BigInt(match[2]!)
  if (n >= U64) return undefined
  return match[1] === "-" ? (U64 - n) % U64 : n
}

/**
 * An id given to `read`, `createGroup` or `ack`, as Redis reads one (checked on redis-server
 * 7.0): at most 127 bytes, ending at a NUL if it holds one, `"<ms>"` (`"<ms>-0"`) or
 * `"<ms>-<seq>"` with each number as {@link u64} reads it. Undefined for anything else.
 */
export const parseId = (text: string): Id | undefined => {
  if (text.length > 42 && new TextEncoder().encode(text).length > 127) return undefined
  const nul = text.indexOf("\u0000")
  const id = nul < 0 ? text : text.slice(0, nul)
  const dash = id.indexOf("-")
  const ms = u64(dash < 0 ? id : id.slice(0, dash))
  const seq = dash < 0 ? 0n : u64(id.slice(dash + 1))
  return ms === undefined || seq === undefined ? undefined : ms * U64 + seq
}
