import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Versions from "../src/internal/versions.js"

// The change times behind the stale-write guard (internal/versions.ts): a read may store what
// it found only if its key did not change since it began. Small generations here, so that the
// bounds are crossed in a few hundred changes.

const G = 8
const sizes = { generation: G, limit: 64 }

/** A write of `key` from start to end. */
const write = (v: Versions.Versions, key: string) => {
  v.changing(key)
  v.changed(key)
}

describe("Versions", () => {
  it("a change of the key refuses a read that began before it; other keys do not", () => {
    const v = Versions.make(sizes)
    const since = v.seq()
    write(v, "a")
    expect(v.current("a", since)).toBe(false)
    expect(v.current("b", since)).toBe(true)
    expect(v.current("a", v.seq())).toBe(true)
  })

  it("a change under way refuses even a read that began after it began", () => {
    const v = Versions.make(sizes)
    v.changing("a")
    const since = v.seq()
    expect(v.current("a", since)).toBe(false)
    v.changed("a")
    expect(v.current("a", since)).toBe(false)
    expect(v.current("a", v.seq())).toBe(true)
  })

  it("a change of every key refuses every read that overlaps it", () => {
    const v = Versions.make(sizes)
    const since = v.seq()
    v.changingAll()
    expect(v.current("x", v.seq())).toBe(false)
    v.changedAll()
    expect(v.current("x", since)).toBe(false)
    expect(v.current("x", v.seq())).toBe(true)
  })

  it("a read older than the kept generations is refused, even for a key nobody changed", () => {
    const v = Versions.make(sizes)
    const since = v.seq()
    // G distinct keys fill a generation; the next generation's start keeps two, the third drops the first.
    for (let i = 0; i < 2 * G + 1; i++) write(v, `k${i}`)
    expect(v.current("untouched", since)).toBe(false)
    expect(v.current("untouched", v.seq())).toBe(true)
  })

  it("a read across fewer than a generation of changes is never refused for age", () => {
    const v = Versions.make(sizes)
    for (let i = 0; i < 5 * G; i++) write(v, `warm${i}`)
    const since = v.seq()
    for (let i = 0; i < G / 2; i++) write(v, `k${i}`)
    expect(v.current("untouched", since)).toBe(true)
    expect(v.current("k0", since)).toBe(false)
  })

  it("a flight keeps every change time since it began until it ends", () => {
    const v = Versions.make(sizes)
    const since = v.begin()
    write(v, "mine")
    for (let i = 0; i < 5 * G; i++) write(v, `k${i}`)
    expect(v.current("untouched", since)).toBe(true)
    expect(v.current("mine", since)).toBe(false)
    expect(v.size()).toBeGreaterThan(5 * G)
    v.end(since)
    // The next generation drops what nobody needs: two are left.
    for (let i = 0; i < G + 1; i++) write(v, `after${i}`)
    expect(v.size()).toBeLessThanOrEqual(2 * G)
    expect(v.current("untouched", since)).toBe(false)
  })

  it("a flight that began at the last change time of a dropped generation keeps the next ones", () => {
    const v = Versions.make(sizes)
    for (let i = 0; i < G - 1; i++) write(v, `first${i}`)
    // The first generation's last change time is this write's start: the flight begins there.
    v.changing("last")
    const since = v.begin()
    v.changed("last")
    // The third generation drops the first; the fourth must not drop the second, the flight's.
    for (let i = 0; i < 3 * G; i++) write(v, `k${i}`)
    expect(v.current("untouched", since)).toBe(true)
    expect(v.current("k0", since)).toBe(false)
    expect(v.current("last", since)).toBe(false)
  })

  it("two flights that began at the same time are counted apart", () => {
    const v = Versions.make(sizes)
    const first = v.begin()
    const second = v.begin()
    expect(second).toBe(first)
    v.end(first)
    for (let i = 0; i < 4 * G; i++) write(v, `k${i}`)
    expect(v.current("untouched", second)).toBe(true)
    v.end(second)
    for (let i = 0; i < G + 1; i++) write(v, `after${i}`)
    expect(v.current("untouched", second)).toBe(false)
  })

  it("past the limit the oldest generation goes and a flight older than it is refused", () => {
    const v = Versions.make(sizes)
    const old = v.begin()
    for (let i = 0; i < 40; i++) write(v, `k${i}`)
    expect(v.current("untouched", old)).toBe(true)
    const young = v.begin()
    for (let i = 64; i < 64 + 30; i++) write(v, `k${i}`)
    expect(v.size()).toBeLessThanOrEqual(64)
    expect(v.current("untouched", old)).toBe(false)
    expect(v.current("untouched", young)).toBe(true)
    expect(v.current("k70", young)).toBe(false)
    // The refused flight keeps nothing, even if it never ends (an end that never came).
    v.end(young)
    for (let i = 0; i < G + 1; i++) write(v, `after${i}`)
    expect(v.size()).toBeLessThanOrEqual(2 * G)
    // Its late end changes nothing for a flight that began since.
    const last = v.begin()
    v.end(old)
    write(v, "k0")
    expect(v.current("untouched", last)).toBe(true)
    expect(v.current("k0", last)).toBe(false)
  })

  it("matches a model that keeps every change time, and stays within its bounds", () => {
    type Op =
      | { readonly _tag: "write"; readonly key: number }
      | { readonly _tag: "start"; readonly key: number }
      | { readonly _tag: "finish"; readonly key: number }
      | { readonly _tag: "all" }
      | { readonly _tag: "read" }
      | { readonly _tag: "flight" }
      | { readonly _tag: "end"; readonly which: number }
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 8, arbitrary: fc.record({ _tag: fc.constant("write" as const), key: fc.nat(40) }) },
      { weight: 2, arbitrary: fc.record({ _tag: fc.constant("start" as const), key: fc.nat(40) }) },
      { weight: 2, arbitrary: fc.record({ _tag: fc.constant("finish" as const), key: fc.nat(40) }) },
      { weight: 1, arbitrary: fc.constant({ _tag: "all" as const }) },
      { weight: 3, arbitrary: fc.constant({ _tag: "read" as const }) },
      { weight: 2, arbitrary: fc.constant({ _tag: "flight" as const }) },
      { weight: 2, arbitrary: fc.record({ _tag: fc.constant("end" as const), which: fc.nat(20) }) }
    )
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const limit = 1_000_000
        const v = Versions.make({ generation: G, limit })
        // The model: every change time ever, the keys busy, and the reads with the changes since each.
        const changedAt: Array<{ readonly key: string | undefined; readonly at: number }> = []
        const busy = new Map<string, number>()
        let busyAll = 0
        let seq = 0
        const reads: Array<{ readonly since: number; readonly flight: boolean; ended: boolean }> = []
        const started: Array<string> = []
        const expected = (key: string, since: number) =>
          busyAll === 0 &&
          (busy.get(key) ?? 0) === 0 &&
          changedAt.every((c) => c.at <= since || (c.key !== undefined && c.key !== key))
        /** Single-key changes recorded since `since`: fewer than G and no read is refused for age. */
        const recordsSince = (since: number) =>
          changedAt.filter((c) => c.at > since && c.key !== undefined).length
        for (const o of ops) {
          switch (o._tag) {
            case "write": {
              write(v, `k${o.key}`)
              changedAt.push({ key: `k${o.key}`, at: ++seq }, { key: `k${o.key}`, at: ++seq })
              break
            }
            case "start": {
              v.changing(`k${o.key}`)
              busy.set(`k${o.key}`, (busy.get(`k${o.key}`) ?? 0) + 1)
              changedAt.push({ key: `k${o.key}`, at: ++seq })
              started.push(`k${o.key}`)
              break
            }
            case "finish": {
              const key = started.splice(o.key % Math.max(1, started.length), 1)[0]
              if (key === undefined) break
              v.changed(key)
              busy.set(key, busy.get(key)! - 1)
              changedAt.push({ key, at: ++seq })
              break
            }
            case "all": {
              v.changingAll()
              busyAll++
              changedAt.push({ key: undefined, at: ++seq })
              v.changedAll()
              busyAll--
              changedAt.push({ key: undefined, at: ++seq })
              break
            }
            case "read": {
              expect(v.seq()).toBe(seq)
              reads.push({ since: v.seq(), flight: false, ended: false })
              break
            }
            case "flight": {
              reads.push({ since: v.begin(), flight: true, ended: false })
              break
            }
            case "end": {
              const open = reads.filter((r) => r.flight && !r.ended)
              const r = open[o.which % Math.max(1, open.length)]
              if (r === undefined) break
              r.ended = true
              v.end(r.since)
              break
            }
          }
          for (const r of reads) {
            if (r.ended) continue
            for (let k = 0; k <= 40; k += 7) {
              const key = `k${k}`
              const got = v.current(key, r.since)
              // Never accepts what the model refuses.
              if (got) expect(expected(key, r.since)).toBe(true)
              // A flight under way, or a read across fewer than G changes, is refused only for a change.
              if (r.flight || recordsSince(r.since) < G) expect(got).toBe(expected(key, r.since))
            }
          }
        }
        // Once no flight is under way, the next generation leaves at most two.
        for (const r of reads) if (r.flight && !r.ended) v.end(r.since)
        for (let i = 0; i < G + 1; i++) write(v, `fresh${i}`)
        expect(v.size()).toBeLessThanOrEqual(2 * G)
      }),
      { numRuns: 300 }
    )
  })
})
