import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "examples",
    include: ["test/**/*.test.ts"],
    // The demo runs as a child process compiled by tsx on start: slow on a loaded machine.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // After the other projects (group 0), not beside them: each file starts demo processes (and
    // one a browser), which would load the machine their timing-sensitive Redis tests share.
    // Among themselves the files run at once (each has its own ports and data directories).
    sequence: { groupOrder: 1 }
  }
})
