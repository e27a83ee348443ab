/**
 * Prints the rows every benchmark of this run appended to dist/summary.jsonl as one table,
 * writes it as Markdown to bench/results.md, and rewrites the block of README.md between
 * `<!-- bench:start -->` and `<!-- bench:end -->` with it (when the README has that block).
 * Run: the last step of pnpm bench.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { COLUMNS, SUMMARY_FILE, type SummaryRow } from "./results.js"

const START = "<!-- bench:start -->"
const END = "<!-- bench:end -->"
const RESULTS = new URL("../results.md", import.meta.url)
const README = new URL("../../README.md", import.meta.url)

const rows: ReadonlyArray<SummaryRow> = existsSync(SUMMARY_FILE)
  ? readFileSync(SUMMARY_FILE, "utf8")
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as SummaryRow)
  : []
if (rows.length === 0) {
  console.error("no rows: run the benchmarks first (pnpm bench)")
  process.exit(1)
}

const cellText = (cell: string) => cell.replaceAll("|", "\\|")
const header = ["row", ...COLUMNS, "target"]
const table = [
  `| ${header.join(" | ")} |`,
  `| ${header.map(() => "---").join(" | ")} |`,
  ...rows.map((r) => `| ${[r.row, ...COLUMNS.map((c) => r[c]), r.target].map(cellText).join(" | ")} |`)
].join("\n")

const quick = process.env.BENCH_QUICK === "1"
const markdown = [
  `Taken by \`pnpm bench\`${quick ? " with BENCH_QUICK=1 (smoke run: few rounds)" : ""} on ${new Date().toISOString().slice(0, 10)}, Node ${process.version}.`,
  "Ratios in parentheses are against the limit of the row, paired per round (each case's",
  "figure divided by the limit's of the same round, median over rounds); for throughput a",
  "ratio above 1 is faster than the limit, for times a ratio below 1 is.",
  "",
  table,
  ""
].join("\n")

console.log(`\n${table}\n`)
writeFileSync(RESULTS, markdown)
console.log("written to bench/results.md")

if (existsSync(README)) {
  const readme = readFileSync(README, "utf8")
  const start = readme.indexOf(START)
  const end = readme.indexOf(END)
  if (start !== -1 && end > start) {
    writeFileSync(README, `${readme.slice(0, start + START.length)}\n${markdown}${readme.slice(end)}`)
    console.log("README.md: the bench block rewritten")
  } else {
    console.log(`README.md has no ${START} ... ${END} block: left as is`)
  }
}
