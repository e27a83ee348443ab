// The README's examples are real files: a ```ts block that follows (within 200 characters) a
// mention of `examples/<file>.ts` must appear, as is, in that file (which CI typechecks and runs).
// The Install table says what each package holds and needs: every module named in its "Holds"
// column is one of the package's (src/<Name>.ts), and its "Peer dependencies" column names each
// of the package.json's peerDependencies with its range (`effect` ^3.22 for ^3.22.0), an optional
// one with the word "optional", and no package that is not a peer.
import { existsSync, readFileSync } from "node:fs"
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
const majorMinor = (range) => range.replace(/^(\^\d+(?:\.\d+)?)(?:\.0)?$/, "$1")
let rows = 0
for (const [, pkg, holds, peers] of readme.matchAll(/^\| `@tiercache\/(\w+)` \| (.*) \| (.*) \|$/gm)) {
  rows++
  const dir = join(root, "packages", pkg)
  const json = JSON.parse(readFileSync(join(dir, "package.json"), "utf8"))
  for (const [, name] of holds.matchAll(/`([A-Z]\w*)`/g)) {
    if (!existsSync(join(dir, "src", `${name}.ts`))) {
      console.error(
        `README.md: the Install table says @tiercache/${pkg} holds ${name}, which is no module of it`
      )
      failed++
    }
  }
  const declared = json.peerDependencies ?? {}
  for (const [name, range] of Object.entries(declared)) {
    const wanted = range.startsWith("workspace:") ? `\`${name}\`` : `\`${name}\` ${majorMinor(range)}`
    const optional = json.peerDependenciesMeta?.[name]?.optional === true
    if (!peers.includes(wanted) || (optional && !peers.includes("optional"))) {
      console.error(
        `README.md: the Install table's peers of @tiercache/${pkg} should name ${wanted}${optional ? " (optional)" : ""}`
      )
      failed++
    }
  }
  for (const [, name] of peers.matchAll(/`(@?[a-z][\w./-]*)`/g)) {
    if (!(name in declared)) {
      console.error(`README.md: the Install table names ${name} as a peer of @tiercache/${pkg}; it is none`)
      failed++
    }
  }
}
if (rows !== 3) {
  console.error(`README.md: the Install table should have a row per package (found ${rows})`)
  failed++
}
if (checked === 0) {
  console.error("README.md: no block quoted from examples/")
  failed++
}
process.exit(failed === 0 ? 0 : 1)
