import { defineWorkspace } from "vitest/config"

export default defineWorkspace(["packages/*", "examples/vitest.config.ts"])
