// The README's examples are real files: a ```ts block that follows (within 200 characters) a
// mention of `examples/<file>.ts` must appear, as is, in that file (which CI typechecks and runs).
import { readFileSync } from "node:fs"
import { join } from "node:path"

const root = join(import.meta.dirname, "..")
const readme = readFileSync(join(root, "README.md"), "utf8")
const pattern = /`(examples\/[\w.-]+\.ts)`(?:(?!```)[\s\S]){0,200}```ts\n([\s\S]*?)```/g
let checked = 0
let failed = 0
for (const [, file, block] of readme.matchAll(pattern)) {
  checked++
  if (!readFileSync(join(root, file), "utf8").includes(block)) {
    console.error(`README.md: the block quoted from ${file} is not in that file`)
    failed++
  }
}
if (checked === 0) {
  console.error("README.md: no block quoted from examples/")
  failed++
}
process.exit(failed === 0 ? 0 : 1)
