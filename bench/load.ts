/**
 * Measures cases under load: many callers at once, every operation timed. Cases run in turn,
 * round after round, as in harness.ts `interleave`, and each ratio is the median of per-round
 * ratios to the baseline (the first case) of the same round.
 */
import { median, turn } from "./harness.js"

/** A case run by many callers: `run` performs operations, passing each duration (ns), and answers how many. */
export interface LoadCase {
  readonly name: string
  readonly run: (record: (ns: number) => void) => Promise<number>
}

/** A case's throughput and latency percentiles over every measured round. */
export interface Load {
  readonly name: string
  /** Median over rounds of operations per second. */
  readonly opsPerSec: number
  /** Median per-round ratio of this case's throughput to the baseline's (above 1: faster). */
  readonly ratio: number
  /** Operations per second in each measured round, in order (for ratios paired by round). */
  readonly rates: ReadonlyArray<number>
  /** Latency percentiles over every measured operation (ns). */
  readonly p50: number
  readonly p99: number
}

/** The `q` quantile (0..1) of `xs`, by the nearest rank. */
export const percentile = (xs: ReadonlyArray<number>, q: number): number => {
  const sorted = Float64Array.from(xs).sort()
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!
}

/** Runs the cases in the orders of harness.ts `turn`, `warmup` unmeasured rounds then `rounds` measured ones. */
export const interleaveLoad = async (
  cases: ReadonlyArray<LoadCase>,
  options: { readonly rounds: number; readonly warmup: number }
): Promise<ReadonlyArray<Load>> => {
  const rates: Array<Array<number>> = cases.map(() => [])
  const latencies: Array<Array<number>> = cases.map(() => [])
  for (let round = 0; round < options.warmup + options.rounds; round++) {
    for (const i of turn(cases.length, round)) {
      const samples: Array<number> = []
      const start = process.hrtime.bigint()
      const ops = await cases[i]!.run((ns) => samples.push(ns))
      const seconds = Number(process.hrtime.bigint() - start) / 1e9
      if (round < options.warmup) continue
      rates[i]!.push(ops / seconds)
      for (const s of samples) latencies[i]!.push(s)
    }
  }
  const base = rates[0]!
  return cases.map((c, i) => ({
    name: c.name,
    opsPerSec: median(rates[i]!),
    rates: rates[i]!,
    ratio: median(rates[i]!.map((r, round) => r / base[round]!)),
    p50: percentile(latencies[i]!, 0.5),
    p99: percentile(latencies[i]!, 0.99)
  }))
}

/** A case measured once per round: `run` answers its measured figures. */
export interface RoundCase<M> {
  readonly name: string
  readonly run: () => Promise<M>
}

/** Runs the cases round after round (orders as `interleaveLoad`); answers every measured round's figures per case. */
export const interleaveRounds = async <M>(
  cases: ReadonlyArray<RoundCase<M>>,
  options: { readonly rounds: number; readonly warmup: number }
): Promise<ReadonlyArray<ReadonlyArray<M>>> => {
  const out: Array<Array<M>> = cases.map(() => [])
  for (let round = 0; round < options.warmup + options.rounds; round++) {
    for (const i of turn(cases.length, round)) {
      const m = await cases[i]!.run()
      if (round >= options.warmup) out[i]!.push(m)
    }
  }
  return out
}

/** The median of per-round ratios `xs[r] / base[r]`. */
export const pairedRatio = (xs: ReadonlyArray<number>, base: ReadonlyArray<number>): number =>
  median(xs.map((x, r) => x / base[r]!))

/** Runs `callers` async callers at once, each running `perCaller` timed operations. */
export const callers = async (
  count: number,
  perCaller: number,
  op: (caller: number, i: number) => Promise<unknown>,
  record: (ns: number) => void
): Promise<number> => {
  await Promise.all(
    Array.from({ length: count }, async (_, c) => {
      for (let i = 0; i < perCaller; i++) {
        const start = performance.now()
        await op(c, i)
        record((performance.now() - start) * 1e6)
      }
    })
  )
  return count * perCaller
}
