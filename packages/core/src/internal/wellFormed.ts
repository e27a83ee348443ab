/**
 * Whether a string is well-formed UTF-16: a leaf module (it imports nothing of the package), so
 * that Tier.ts's input checks (tierInput.ts) can use it without an import cycle.
 */

type WellFormed = (this: string) => boolean
const nativeWellFormed = (String.prototype as { isWellFormed?: WellFormed }).isWellFormed

/**
 * A lone surrogate (with `search`, where the first one is).
 *
 * @internal
 */
export const loneSurrogate = /[\uD800-\uDFFF]/u

/**
 * Whether a string is well-formed UTF-16 (no lone surrogate). A lone surrogate has no UTF-8
 * encoding: Redis (and any byte store) would receive U+FFFD instead, so `"k\uD800"` and
 * `"k\uDBFF"` would share one entry.
 *
 * @internal
 */
export const isWellFormed: (s: string) => boolean =
  nativeWellFormed !== undefined
    ? (s) => (s as unknown as { isWellFormed: () => boolean }).isWellFormed()
    : (s) => !loneSurrogate.test(s)
