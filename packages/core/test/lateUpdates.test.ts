/**
 * lateUpdates.ts's record of this instance's own writes: another instance's Update dated no
 * later than this instance's last write of its key is refused (it only drops the L1 copy), a
 * later one is not; the record is bounded (WRITES keys), a forgotten write's time is a floor for
 * dated Updates only, and writes never stop undated Updates of other keys.
 */
import { describe, expect, it } from "vitest"
import * as LateUpdates from "../src/internal/lateUpdates.js"

/** An arrival long after every change below: an Update's date alone decides. */
const LATE = 1_000_000

describe("lateUpdates: this instance's own writes", () => {
  it("refuses another instance's Update dated no later than the write, not a later one", () => {
    const late = LateUpdates.make()
    late.wrote("k", 1_000)
    expect(late.refuses("k", 999, "b", LATE)).toBe(true)
    expect(late.refuses("k", 1_000, "b", LATE)).toBe(true)
    expect(late.refuses("k", 1_001, "b", LATE)).toBe(false)
    // Other keys are not touched.
    expect(late.refuses("j", 999, "b", LATE)).toBe(false)
    // A later write of the key moves its time.
    late.wrote("k", 2_000)
    expect(late.refuses("k", 1_500, "b", LATE)).toBe(true)
  })

  it("refuses an undated Update of a key while its write is remembered, and only of that key", () => {
    const late = LateUpdates.make()
    late.wrote("k", 1_000)
    expect(late.refuses("k", undefined, "b", LATE)).toBe(true)
    expect(late.refuses("j", undefined, "b", LATE)).toBe(false)
  })

  it("keeps at most WRITES keys; a forgotten write's time refuses dated Updates created no later, never undated ones of other keys", () => {
    const sizes: Array<Map<string, unknown>> = []
    const previous = LateUpdates.maps.make
    LateUpdates.maps.make = <V>() => {
      const map = new Map<string, V>()
      sizes.push(map)
      return map
    }
    try {
      const late = LateUpdates.make()
      const writes = 5 * LateUpdates.WRITES
      for (let i = 0; i < writes; i++) late.wrote(`k${i}`, 10_000 + i)
      // The maps it holds: the removals' two (empty) and the writes' last two generations.
      const held = [sizes[0]!, sizes[1]!, ...sizes.slice(-2)]
      expect(held.reduce((n, map) => n + map.size, 0)).toBeLessThanOrEqual(LateUpdates.WRITES)
      expect(sizes.length).toBeGreaterThan(4)
      // The first key's write is forgotten: its time (and later forgotten ones) are the floor.
      expect(late.refuses("k0", 10_000, "b", LATE)).toBe(true)
      expect(late.refuses("never-written", 10_000, "b", LATE)).toBe(true)
      // An undated Update of a key whose write was forgotten, or never made, is not refused.
      expect(late.refuses("k0", undefined, "b", LATE)).toBe(false)
      expect(late.refuses("never-written", undefined, "b", LATE)).toBe(false)
      // The last key's write is remembered.
      expect(late.refuses(`k${writes - 1}`, undefined, "b", LATE)).toBe(true)
      expect(late.refuses(`k${writes - 1}`, 10_000 + writes, "b", LATE)).toBe(false)
      // A dated Update created after every write is stored.
      expect(late.refuses("never-written", 10_000 + writes, "b", LATE)).toBe(false)
    } finally {
      LateUpdates.maps.make = previous
    }
  })
})

describe("lateUpdates: an Update arriving within WINDOW_MS of a change of its key", () => {
  const W = LateUpdates.WINDOW_MS
  it("is refused after this instance's write, whatever its date; one arriving later is judged by its date", () => {
    const late = LateUpdates.make()
    late.wrote("k", 1_000)
    // Dated after the write (a sender whose clock runs ahead), arriving within the window.
    expect(late.refuses("k", 5_000, "b", 1_001)).toBe(true)
    expect(late.refuses("k", 5_000, "b", 1_000 + W)).toBe(true)
    expect(late.refuses("k", 5_000, "b", 1_001 + W)).toBe(false)
    // Still refused when dated no later than the write, however late it arrives.
    expect(late.refuses("k", 1_000, "b", 1_000_000)).toBe(true)
    // Other keys are not touched.
    expect(late.refuses("j", 5_000, "b", 1_000)).toBe(false)
  })

  it("is refused after a removal or an Update applied from another instance, not one from its own sender", () => {
    const late = LateUpdates.make()
    late.removed(["k"], 1_000, "c")
    expect(late.refuses("k", 5_000, "b", 1_500)).toBe(true)
    expect(late.refuses("k", 5_000, "c", 1_500)).toBe(false)
    expect(late.refuses("k", 5_000, "b", 1_001 + W)).toBe(false)
    // A pattern and a clear by another instance count alike.
    late.removedMatching((key) => key.startsWith("p"), 2_000, "c")
    expect(late.refuses("p1", 5_000, "b", 2_000 + W)).toBe(true)
    expect(late.refuses("p1", 5_000, "b", 2_001 + W)).toBe(false)
    late.removedAll(3_000, "c")
    expect(late.refuses("any", 5_000, "b", 3_000 + W)).toBe(true)
    expect(late.refuses("any", 5_000, "b", 3_001 + W)).toBe(false)
  })

  it("does not apply to the floor of forgotten removals: that judges by the date alone", () => {
    const late = LateUpdates.make()
    // KEYS + 1 keys removed at 1, 2, ...: the first is forgotten, its time (1) is the floor.
    for (let i = 0; i <= LateUpdates.KEYS; i++) late.removed([`r${i}`], 1 + i, "c")
    expect(late.refuses("r0", 1, "b", LATE)).toBe(true)
    // A key never removed, its Update made after the floor, arriving right then: stored (the
    // forgotten removal may have been of any key; under that many changes a second the window
    // would refuse every Update).
    expect(late.refuses("fresh", 2, "b", 2)).toBe(false)
  })
})
