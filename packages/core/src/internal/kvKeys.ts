/**
 * Where a KeyValueStore tier keeps a key's value. A key is stored as `<prefix><key>`, unless a
 * file system could not keep it apart: the file-system store names a file
 * `encodeURIComponent(<store key>)`, and
 * - a name over 255 bytes cannot be opened (ENAMETOOLONG), so a key whose store key would
 *   encode to more than {@link MAX_NAME_BYTES} bytes (say 30 Japanese characters) could never
 *   be read or written;
 * - a lone surrogate has no encoding at all;
 * - macOS's and Windows' file systems ignore case by default (`session:aB3x` and `session:Ab3X`
 *   were one file, and a read of one answered the other's value), Windows drops a name's
 *   trailing dots (`user:1.` was `user:1`'s file) and refuses a `*` in a name, and the store
 *   refuses the names `.` and `..` (an empty prefix);
 * such a key, one with an ASCII capital letter or a `*`, or ending with a dot, is stored as
 * `<prefix>__tiercache:kv-hash:<SHA-256 of the key as JSON, hex>` instead (as JSON: lone
 * surrogates stay apart; lowercase hex: no two differ only by case), and its record carries the
 * key, `{"k":<key>,` before the envelope's fields, so that a read tells the key's record from
 * another key's with the same hash (a miss). Keys that start with `__tiercache:kv-hash:` are
 * hashed too, so that no key is stored under another's hashed name. The index holds the keys
 * themselves.
 */
import { createHash } from "node:crypto"
import { isReservedKey, reservedPrefix } from "../Tier.js"
import { isWellFormed } from "./validate.js"

/** Where hashed keys live, after the prefix. */
export const HASHED = `${reservedPrefix}kv-hash:`

/** The longest encoded store key kept as it is (file names end at 255 bytes). */
export const MAX_NAME_BYTES = 200

/** The most bytes one UTF-16 code unit takes in `encodeURIComponent` (3 UTF-8 bytes as %XX). */
const MAX_UNIT_BYTES = 9

/** Characters `encodeURIComponent` leaves as they are: A-Z a-z 0-9 - _ . ! ~ * ' ( ). */
const isUnreserved = (c: number): boolean =>
  (c >= 97 && c <= 122) ||
  (c >= 65 && c <= 90) ||
  (c >= 48 && c <= 57) ||
  c === 45 ||
  c === 95 ||
  c === 46 ||
  c === 33 ||
  c === 126 ||
  c === 42 ||
  c === 39 ||
  c === 40 ||
  c === 41

/**
 * The length of `encodeURIComponent(s)` counted without building it, stopping once past
 * `limit`; Infinity for a lone surrogate (which `encodeURIComponent` refuses).
 */
export const encodedLength = (s: string, limit: number): number => {
  let n = 0
  for (let i = 0; i < s.length && n <= limit; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += isUnreserved(c) ? 1 : 3
    else if (c < 0x800) n += 6
    else if (c < 0xd800 || c > 0xdfff) n += 9
    else {
      const next = s.charCodeAt(i + 1)
      if (c > 0xdbff || !(next >= 0xdc00 && next <= 0xdfff)) return Number.POSITIVE_INFINITY
      n += 12
      i++
    }
  }
  return n
}

/**
 * Whether a file system may confuse the file of `key` with another's: an ASCII capital letter
 * (case-insensitive file systems) or a `*` (refused by Windows), or a trailing dot (dropped by
 * Windows; the names `.` and `..`).
 */
const isFoldable = (key: string): boolean => {
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    if ((c >= 65 && c <= 90) || c === 42) return true
  }
  return key.charCodeAt(key.length - 1) === 46
}

/** How the record of a hashed key starts: the key, then the envelope's fields. */
const ownerField = (key: string): string => `{"k":${JSON.stringify(key)},`
const OWNED = '{"k":'

/** The store keys and records of a tier under `prefix`. */
export const make = (prefix: string) => {
  const prefixBytes = encodedLength(prefix, Number.POSITIVE_INFINITY)
  const budget = MAX_NAME_BYTES - prefixBytes
  /** Whether `key` has no name of its own: too long, or no encoding (a lone surrogate). */
  const isNameless = (key: string): boolean =>
    // Short keys (the usual ones) need no count (no unit encodes to more than 9 bytes), only
    // the check for a lone surrogate, which has no encoding at any length.
    key.length * MAX_UNIT_BYTES > budget ? encodedLength(key, budget) > budget : !isWellFormed(key)
  /** Whether `key` is stored under its hash. */
  const isHashed = (key: string): boolean => isNameless(key) || isFoldable(key) || key.startsWith(HASHED)
  const hashed = (key: string): string =>
    `${prefix}${HASHED}${createHash("sha256").update(JSON.stringify(key)).digest("hex")}`

  return {
    /** Where the value of `key` is stored. */
    storeKey: (key: string): string => (isHashed(key) ? hashed(key) : prefix + key),
    /** Where the value of `key` is stored, and the record to store there for `envelope`. */
    record: (key: string, envelope: string): readonly [string, string] =>
      isHashed(key) ? [hashed(key), ownerField(key) + envelope.slice(1)] : [prefix + key, envelope],
    /**
     * Where earlier versions stored the cache's own record `key` (a tag's time) that is now
     * stored under its hash because a file system could confuse its name (a capital letter, a
     * `*`, a trailing dot); undefined for any other key. Read when the hashed record is absent:
     * a tag's time left unread would let the entries it refuses answer. (An entry's old record
     * is left unread: a miss.)
     */
    legacyStoreKey: (key: string): string | undefined =>
      isReservedKey(key) && isFoldable(key) && !isNameless(key) && !key.startsWith(HASHED)
        ? prefix + key
        : undefined,
    /**
     * Whether a record read at `key`'s store key is `key`'s: one naming its key (a hashed
     * key's) must name this one.
     */
    owns: (key: string, text: string): boolean => !text.startsWith(OWNED) || text.startsWith(ownerField(key))
  }
}

/** The store keys of one KeyValueStore tier. */
export type KvKeys = ReturnType<typeof make>
