/**
 * The rows of the summary table: each benchmark appends its rows to dist/summary.jsonl (emptied
 * by build.mjs), and summary.ts prints them as one table and writes bench/results.md.
 */
import { appendFileSync } from "node:fs"

/** The columns of a row of the summary table. */
export const COLUMNS = ["limit", "tiercache", "BentoCache", "cache-manager", "cacheable"] as const

/** One row of the summary table. */
export interface SummaryRow {
  readonly row: string
  readonly limit: string
  readonly tiercache: string
  readonly BentoCache: string
  readonly "cache-manager": string
  readonly cacheable: string
  /** The target and whether this run met it. */
  readonly target: string
}

/** Where the rows of a run go (next to the compiled benchmarks). */
export const SUMMARY_FILE = new URL("./summary.jsonl", import.meta.url)

/** Appends rows to this run's summary. */
export const recordRows = (rows: ReadonlyArray<SummaryRow>): void => {
  for (const row of rows) appendFileSync(SUMMARY_FILE, `${JSON.stringify(row)}\n`)
}

/** A duration (ns) with a unit that keeps three significant digits. */
export const time = (ns: number): string =>
  ns >= 1e6
    ? `${(ns / 1e6).toPrecision(3)} ms`
    : ns >= 1e3
      ? `${(ns / 1e3).toPrecision(3)} us`
      : `${ns.toPrecision(3)} ns`

/** A throughput (operations per second). */
export const rate = (opsPerSec: number): string =>
  opsPerSec >= 1e3 ? `${(opsPerSec / 1e3).toPrecision(3)}k ops/s` : `${opsPerSec.toFixed(0)} ops/s`

/** A ratio, as `1.23x`. */
export const x = (ratio: number): string => `${ratio.toFixed(2)}x`

/** `target` followed by `met` or `MISSED`. */
export const verdict = (target: string, ok: boolean): string => `${target}: ${ok ? "met" : "**missed**"}`
