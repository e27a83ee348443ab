import { defineProject } from "vitest/config"

export default defineProject({
  test: {
    name: "examples",
    include: ["test/**/*.test.ts"],
    // The demo runs as a child process compiled by tsx on start: slow on a loaded machine.
    testTimeout: 180_000,
    hookTimeout: 180_000,
    // One file at a time: each starts demo processes (and one a browser), which would
    // otherwise load the machine the other projects' tests share.
    poolOptions: { forks: { singleFork: true } },
    // After the other projects (group 0), not beside them: their timing-sensitive Redis
    // tests share the machine.
    sequence: { groupOrder: 1 }
  }
})
