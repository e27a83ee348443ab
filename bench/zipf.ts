/**
 * Zipf-distributed key indexes from a seeded generator, so that every case of a round reads
 * the same sequence.
 */

/** mulberry32: a small seeded generator of uniform numbers in [0, 1). */
const uniform = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** `length` indexes in [0, n), index k drawn with probability proportional to 1 / (k + 1)^s. */
export const zipfSequence = (length: number, n: number, s: number, seed: number): Uint32Array => {
  const cdf = new Float64Array(n)
  let total = 0
  for (let k = 0; k < n; k++) {
    total += 1 / (k + 1) ** s
    cdf[k] = total
  }
  const next = uniform(seed)
  const out = new Uint32Array(length)
  for (let i = 0; i < length; i++) {
    const u = next() * total
    let lo = 0
    let hi = n - 1
    while (lo < hi) {
      const mid = (lo + hi) >> 1
      if (cdf[mid]! < u) lo = mid + 1
      else hi = mid
    }
    out[i] = lo
  }
  return out
}
