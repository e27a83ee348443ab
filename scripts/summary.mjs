// Prints vitest's JSON report as one plain closing line: "tests: N passed, N failed, N skipped".
import { readFileSync } from "node:fs"

const file = process.argv[2] ?? ".vitest-report.json"
const report = JSON.parse(readFileSync(file, "utf8"))
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0)
console.log(`tests: ${report.numPassedTests} passed, ${report.numFailedTests} failed, ${skipped} skipped`)
if (report.numTotalTests === 0) {
  console.error("no test ran")
  process.exit(1)
}
process.exit(report.numFailedTests > 0 || report.success === false ? 1 : 0)
