import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    // One project per package (packages/*/vitest.config.ts), and the examples (the demo tests).
    projects: ["packages/*", "examples/vitest.config.ts"],
    // Tests that kill Redis log the expected warnings (connection lost, breaker open) through
    // Effect's logger: they are captured and printed only for a test that fails.
    silent: "passed-only"
  }
})
