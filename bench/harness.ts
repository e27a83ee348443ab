/**
 * A small harness over mitata's `measure`: each case reports its median ns per operation;
 * ratios are taken against a baseline measured in the same run.
 */
import { measure } from "mitata"

export interface Result {
  readonly name: string
  readonly nsPerOp: number
}

/** Measures `fn`, which performs `opsPerCall` operations per call. */
export const bench = async (name: string, fn: () => unknown, opsPerCall = 1): Promise<Result> => {
  const stats = await measure(fn as () => void, { min_cpu_time: 500 * 1e6, min_samples: 32 })
  return { name, nsPerOp: stats.p50 / opsPerCall }
}

const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} us` : `${ns.toFixed(1)} ns`)

/** A result with an optional target and whether it was met. */
export interface Row extends Result {
  readonly target?: string
  readonly ok?: boolean
}

/** Prints a table of results with their ratio to the baseline and an optional target. */
export const report = (title: string, baseline: Result, rows: ReadonlyArray<Row>): void => {
  console.log(`\n${title}`)
  console.log(`${"case".padEnd(58)} ${"per op".padStart(10)} ${"vs baseline".padStart(12)}  target`)
  for (const r of [baseline, ...rows]) {
    const ratio = r.nsPerOp / baseline.nsPerOp
    const row: Row = r
    const target = row.target !== undefined ? `${row.target} ${row.ok ? "ok" : "MISSED"}` : ""
    console.log(
      `${r.name.padEnd(58)} ${fmt(r.nsPerOp).padStart(10)} ${`${ratio.toFixed(2)}x`.padStart(12)}  ${target}`
    )
  }
}
