import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // One project per package (packages/*/vitest.config.ts), and the examples (the demo tests).
    projects: ["packages/*", "examples/vitest.config.ts"],
    // One worker per core (vitest's default, cores - 1, runs the files one at a time on a 2-core
    // machine such as CI's): most tests wait on timers, Redis and child processes, not the CPU.
    maxWorkers: "100%",
    // Tests that kill Redis log the expected warnings (connection lost, breaker open) through
    // Effect's logger: they are captured and printed only for a test that fails.
    silent: "passed-only"
  }
})
