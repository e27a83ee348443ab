// Prints vitest's JSON report as one plain closing line: "tests: N passed, N failed, N skipped".
// Each `--check "name=status"` (exit status of a check run outside vitest, e.g. the consumer
// check) counts as one more passed or failed test, and is named on the line before.
import { readFileSync } from "node:fs"

const args = process.argv.slice(2)
const checks = []
let file = ".vitest-report.json"
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--check") {
    const [name, code] = args[++i].split("=")
    checks.push({ name, passed: code === "0" })
  } else {
    file = args[i]
  }
}
const report = JSON.parse(readFileSync(file, "utf8"))
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
const passed = report.numPassedTests + checks.filter((check) => check.passed).length
const failed = report.numFailedTests + checks.filter((check) => !check.passed).length
for (const check of checks) console.log(`${check.name}: ${check.passed ? "passed" : "FAILED"}`)
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`)
if (report.numTotalTests === 0) {
  console.error("no test ran")
  process.exit(1)
}
process.exit(failed > 0 || report.success === false ? 1 : 0)
