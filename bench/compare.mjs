// Compares this checkout's hit paths with an earlier commit's in one process (see compare.ts):
//   pnpm --filter @tiercache/bench bench:compare <rev>
// The commit is checked out in a temporary git worktree (removed afterwards); both builds are
// bundled from their TypeScript sources by the same esbuild settings, the earlier commit's
// packages importing each other, and share this checkout's dependencies (effect, ioredis, ...).
import { execFileSync, spawnSync } from "node:child_process"
import { rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { build } from "esbuild"

const rev = process.argv[2]
if (rev === undefined) {
  console.error("usage: pnpm --filter @tiercache/bench bench:compare <rev>")
  process.exit(2)
}
const here = fileURLToPath(new URL(".", import.meta.url))
const git = (...args) => execFileSync("git", args, { cwd: here, encoding: "utf8" }).trim()
const sha = git("rev-parse", "--verify", `${rev}^{commit}`)
const tree = join(tmpdir(), `tiercache-compare-${sha.slice(0, 12)}`)
// A worktree left by an interrupted run is replaced.
rmSync(tree, { recursive: true, force: true })
git("worktree", "prune")
git("worktree", "add", "--detach", "--force", tree, sha)
try {
  const source = (root, path) => {
    const [name, ...module] = path.split("/")
    return join(root, "packages", name, "src", `${module.length === 0 ? "index" : module.join("/")}.ts`)
  }
  const trees = {
    name: "trees",
    setup(b) {
      // @base/* is the earlier commit; @tiercache/* is the tree of the module that imports it.
      b.onResolve({ filter: /^@(base|tiercache)\// }, (args) => {
        const [scope, ...path] = args.path.slice(1).split("/")
        const root = scope === "base" || args.importer.startsWith(tree) ? tree : join(here, "..")
        return { path: source(root, path.join("/")) }
      })
    }
  }
  await build({
    stdin: {
      contents: `import * as BaseMemoryTier from "@base/core/MemoryTier"
import * as BaseTieredCache from "@base/core/TieredCache"
import * as BaseRedisConnection from "@base/redis/RedisConnection"
import * as BaseRedisTier from "@base/redis/RedisTier"
import { MemoryTier, TieredCache } from "@tiercache/core"
import { RedisConnection, RedisTier } from "@tiercache/redis"
import { run } from "./compare.ts"
await run(
  {
    name: ${JSON.stringify(rev)},
    core: { MemoryTier: BaseMemoryTier, TieredCache: BaseTieredCache },
    redis: { RedisConnection: BaseRedisConnection, RedisTier: BaseRedisTier }
  },
  { name: "this checkout", core: { MemoryTier, TieredCache }, redis: { RedisConnection, RedisTier } }
)`,
      resolveDir: here,
      loader: "ts"
    },
    outfile: join(here, "dist", "compare.mjs"),
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    plugins: [trees],
    packages: "external",
    logLevel: "warning"
  })
  console.log(`${rev} is ${sha}`)
  const result = spawnSync(process.execPath, [join(here, "dist", "compare.mjs")], { stdio: "inherit" })
  process.exitCode = result.status ?? 1
} finally {
  git("worktree", "remove", "--force", tree)
}
