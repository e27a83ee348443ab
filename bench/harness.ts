/**
 * A small harness: `bench` measures one case with mitata (median ns per operation, for CPU-bound
 * cases); `interleave` measures cases that wait on I/O in alternating rounds, paired with a
 * baseline. Ratios are always taken against a baseline measured in the same run.
 */
import { measure } from "mitata"

export interface Result {
  readonly name: string
  readonly nsPerOp: number
}

/** Measures `fn`, which performs `opsPerCall` operations per call. */
export const bench = async (name: string, fn: () => unknown, opsPerCall = 1): Promise<Result> => {
  const stats = await measure(fn as () => void, {
    min_cpu_time: (QUICK ? 100 : 500) * 1e6,
    min_samples: QUICK ? 8 : 32
  })
  return { name, nsPerOp: stats.p50 / opsPerCall }
}

const fmt = (ns: number) => (ns >= 1000 ? `${(ns / 1000).toFixed(2)} us` : `${ns.toFixed(1)} ns`)

/** A result with an optional target and whether it was met. */
export interface Row extends Result {
  /** The ratio to the baseline when measured in pairs (see {@link interleave}). */
  readonly ratio?: number
  readonly target?: string
  readonly ok?: boolean
}

/** Prints a table of results with their ratio to the baseline and an optional target. */
export const report = (title: string, baseline: Result, rows: ReadonlyArray<Row>): void => {
  console.log(`\n${title}`)
  console.log(`${"case".padEnd(58)} ${"per op".padStart(10)} ${"vs baseline".padStart(12)}  target`)
  for (const r of [baseline, ...rows]) {
    const row: Row = r
    const ratio = row.ratio ?? r.nsPerOp / baseline.nsPerOp
    const target = row.target !== undefined ? `${row.target} ${row.ok ? "ok" : "MISSED"}` : ""
    console.log(
      `${r.name.padEnd(58)} ${fmt(r.nsPerOp).padStart(10)} ${`${ratio.toFixed(2)}x`.padStart(12)}  ${target}`
    )
  }
}

/** A case of an interleaved comparison: one call performs `ops` operations. */
export interface Case {
  readonly name: string
  readonly ops: number
  readonly run: () => Promise<unknown>
}

/** A case's median time per operation, and its median ratio to the baseline of each round. */
export interface Paired extends Result {
  readonly ratio: number
}

/** `BENCH_QUICK=1`: few rounds and small counts, for a smoke run of about a minute. */
export const QUICK = process.env.BENCH_QUICK === "1"

/** `full` rounds, or `quick` under BENCH_QUICK=1. */
export const count = (full: number, quick: number): number => (QUICK ? quick : full)

/** The median of `xs`. */
export const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * The order in which round `round` runs `n` cases: a row of a Williams design (a balanced
 * Latin square), so that over every `n` rounds (`2n` for an odd `n`) each case runs in every
 * position and right after every other case equally often. In a fixed order the case that
 * always follows the baseline pays for what the baseline left behind: on the L2 bench, with one
 * cache measured under two names, the name run right after the baseline came out 12-18% slower
 * with 256 callers.
 */
export const turn = (n: number, round: number): ReadonlyArray<number> => {
  const first = [0]
  for (let k = 1; first.length < n; k++) {
    first.push(k)
    if (first.length < n) first.push(n - k)
  }
  const row = first.map((c) => (c + round) % n)
  return n % 2 === 1 && Math.floor(round / n) % 2 === 1 ? row.reverse() : row
}

/**
 * Runs the cases in turn, round after round (the first case is the baseline), after `warmup`
 * unmeasured rounds. Each case's ratio is the median of its per-round ratios to the baseline's
 * time in the same round: on a noisy machine the time of one case drifts between seconds, and
 * pairing each sample with a baseline taken moments before cancels that drift.
 */
export const interleave = async (
  cases: ReadonlyArray<Case>,
  options: { readonly rounds: number; readonly warmup: number }
): Promise<ReadonlyArray<Paired>> => {
  const times: Array<Array<number>> = cases.map(() => [])
  for (let round = 0; round < options.warmup + options.rounds; round++) {
    for (const i of turn(cases.length, round)) {
      const c = cases[i]!
      const start = process.hrtime.bigint()
      await c.run()
      const ns = Number(process.hrtime.bigint() - start) / c.ops
      if (round >= options.warmup) times[i]!.push(ns)
    }
  }
  const base = times[0]!
  return cases.map((c, i) => ({
    name: c.name,
    nsPerOp: median(times[i]!),
    ratio: median(times[i]!.map((t, r) => t / base[r]!))
  }))
}

/** A case whose every operation is timed: `run` performs operations, passing each duration (ns). */
export interface LatencyCase {
  readonly name: string
  readonly run: (record: (ns: number) => void) => Promise<unknown>
}

/** A case's median latency, its ratio to the baseline's, and the paired ratio of mean times. */
export interface Latency extends Paired {
  readonly meanRatio: number
}

/**
 * Like {@link interleave}, timing every operation: `nsPerOp` is the median latency and `ratio`
 * its ratio to the baseline's median; `meanRatio` is the median per-round ratio of mean times,
 * which also counts the rare slow operations (on a virtual machine whose idle CPUs sleep, a
 * round trip now and then takes a millisecond instead of a tenth, whoever sent it).
 */
export const interleaveLatency = async (
  cases: ReadonlyArray<LatencyCase>,
  options: { readonly rounds: number; readonly warmup: number }
): Promise<ReadonlyArray<Latency>> => {
  const all: Array<Array<number>> = cases.map(() => [])
  const means: Array<Array<number>> = cases.map(() => [])
  for (let round = 0; round < options.warmup + options.rounds; round++) {
    for (const i of turn(cases.length, round)) {
      const samples: Array<number> = []
      await cases[i]!.run((ns) => samples.push(ns))
      if (round < options.warmup) continue
      all[i]!.push(...samples)
      means[i]!.push(samples.reduce((a, b) => a + b, 0) / samples.length)
    }
  }
  const base = median(all[0]!)
  return cases.map((c, i) => ({
    name: c.name,
    nsPerOp: median(all[i]!),
    ratio: median(all[i]!) / base,
    meanRatio: median(means[i]!.map((m, r) => m / means[0]![r]!))
  }))
}

/**
 * Prints how fast this machine runs a trivial loop right now (ns per iteration), so that
 * absolute figures from different runs can be compared: a shared host's CPU speed varies
 * between sessions.
 */
export const printMachineSpeed = (): void => {
  let best = Number.POSITIVE_INFINITY
  let sink = 0
  for (let round = 0; round < 5; round++) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < 2e7; i++) sink += i & 7
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 2e7)
  }
  // The sum is used, so the loop cannot be dropped as dead code.
  if (sink === -1) console.log(sink)
  console.log(`\nmachine speed: ${best.toFixed(2)} ns per trivial loop iteration (lower is faster)`)
}
