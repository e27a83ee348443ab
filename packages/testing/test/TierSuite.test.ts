import { execFile } from "node:child_process"
import { fileURLToPath } from "node:url"
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"

const packageDir = fileURLToPath(new URL("..", import.meta.url))

/** Imports `specifier` in a plain node process (no vitest) that fails any import of vitest. */
const importOutsideVitest = (specifier: string) =>
  Effect.async<{ readonly code: number; readonly output: string }>((resume) => {
    execFile(
      process.execPath,
      [
        "--import",
        "./test/fixtures/forbid-vitest.mjs",
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `const m = await import(${JSON.stringify(specifier)}); console.log(Object.keys(m).join(","))`
      ],
      { cwd: packageDir, timeout: 60_000 },
      (error, stdout, stderr) =>
        resume(
          Effect.succeed({
            code: error === null ? 0 : ((error.code as number) ?? 1),
            output: stdout + stderr
          })
        )
    )
  })

describe("TierSuite", () => {
  it.live("the package's main entry loads outside vitest; only the TierSuite subpath imports it", () =>
    Effect.gen(function* () {
      const [main, suite] = yield* Effect.all(
        [importOutsideVitest("@tiercache/testing"), importOutsideVitest("@tiercache/testing/TierSuite")],
        { concurrency: 2 }
      )
      expect(main).toEqual({
        code: 0,
        output: "ChaosBus,ChaosTier,Interruptions,MultiInstance,RedisServer,TestBus,TestStreams,TestTier\n"
      })
      // The same guard catches the subpath, which does import @effect/vitest.
      expect(suite.code).not.toBe(0)
      expect(suite.output).toContain("vitest was imported: @effect/vitest")
    })
  )
})
