// Keeps every package's `exports` in step with its public modules (packages/*/src/*.ts, not
// internal/): `.` and one subpath per module ("./TieredCache"). Inside the workspace they
// resolve to the TypeScript sources; `publishConfig.exports` (applied by pnpm pack / publish)
// points the published package at dist/ (`types` and `import` conditions).
// Usage: node scripts/exports.mjs          check (exit 1 when a package.json is out of date)
//        node scripts/exports.mjs --write  rewrite the package.json files
import { readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"

const write = process.argv.includes("--write")
const root = join(import.meta.dirname, "..", "packages")
let stale = 0
for (const pkg of readdirSync(root)) {
  const file = join(root, pkg, "package.json")
  const json = JSON.parse(readFileSync(file, "utf8"))
  const modules = readdirSync(join(root, pkg, "src"))
    .filter((name) => name.endsWith(".ts") && name !== "index.ts")
    .map((name) => name.slice(0, -3))
    .sort()
  const entries = [[".", "index"], ...modules.map((name) => [`./${name}`, name])]
  const source = { "./package.json": "./package.json" }
  const published = { "./package.json": "./package.json" }
  for (const [subpath, name] of entries) {
    source[subpath] = `./src/${name}.ts`
    published[subpath] = { types: `./dist/${name}.d.ts`, import: `./dist/${name}.js` }
  }
  source["./internal/*"] = null
  published["./internal/*"] = null
  const next = {
    ...json,
    exports: source,
    publishConfig: {
      ...json.publishConfig,
      main: "./dist/index.js",
      types: "./dist/index.d.ts",
      exports: published
    }
  }
  const text = `${JSON.stringify(next, null, 2)}\n`
  if (text === readFileSync(file, "utf8")) continue
  if (write) {
    writeFileSync(file, text)
    console.log(`wrote ${file}`)
  } else {
    console.error(`${file}: exports out of date (run node scripts/exports.mjs --write)`)
    stale++
  }
}
process.exit(stale === 0 ? 0 : 1)
