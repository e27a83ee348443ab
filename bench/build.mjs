// Compiles the benchmarks and the workspace packages they import to plain JavaScript
// (dist/*.mjs), as a bundler ships them. tsx, which runs the TypeScript sources elsewhere, keeps
// function names by wrapping every function expression in an Object.defineProperty call: on
// the paths measured here that wrapper costs more than the code it wraps.
// Dependencies (effect, ioredis, lru-cache, mitata, the peer caches) stay imports of their
// published builds.
// It also empties dist/summary.jsonl, where each benchmark appends its rows of this run's table.
import { rmSync } from "node:fs"
import { build } from "esbuild"

rmSync(new URL("./dist/summary.jsonl", import.meta.url), { force: true })

await build({
  entryPoints: [
    "l1.ts",
    "l2.ts",
    "peers.ts",
    "writes.ts",
    "misses.ts",
    "heap.ts",
    "summary.ts",
    "profile.ts",
    "steps.ts",
    "setTrace.ts"
  ],
  outdir: "dist",
  outExtension: { ".js": ".mjs" },
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: [
    "effect",
    "ioredis",
    "lru-cache",
    "mitata",
    "bentocache",
    "cache-manager",
    "cacheable",
    "keyv",
    "@keyv/redis"
  ],
  logLevel: "warning"
})
