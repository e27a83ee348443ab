/**
 * A write's PX: the milliseconds from `now` until its entry's `staleUntil` (both epoch ms, the
 * tier's clock), counted as the write is sent; not positive when the entry is gone by then (it
 * is removed, not stored).
 */
export const pxOf = (staleUntil: number, now: number): number => Math.ceil(staleUntil - now)
