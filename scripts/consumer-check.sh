#!/usr/bin/env bash
# Installs the packed packages into a scratch app outside the workspace, as a user would, and
# checks that they work there: @tiercache/core loads without its optional peer @effect/platform;
# (a) the README's quick start (examples/quickstart.ts: MemoryTier +
# KeyValueStoreTier on the file system + TieredCache), compiled by tsc and run twice with plain
# node (the second process answers from the first one's files); (b) `tsc --strict` of the
# examples (the README's test layer, examples/testing.ts, among them) and
# scripts/consumer/imports.ts with moduleResolution nodenext and bundler; (c) the
# README's Redis example (examples/redis.ts) against a redis-server started here on a free
# port. Exits non-zero when any check fails. Needs the workspace installed (pnpm install).
# The nodenext run typechecks the libraries' declarations too (skipLibCheck false; @types/ws is
# there for @effect/platform-node, whose declarations import "ws"); the bundler run skips them,
# as bundler-based apps usually do.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
PNPM=(npx -y pnpm@12.4.2)
TSC="$ROOT/node_modules/.bin/tsc"

WORK="$(mktemp -d /tmp/tiercache-consumer.XXXXXX)"
REDIS_PID=""
cleanup() {
  if [ -n "$REDIS_PID" ]; then kill "$REDIS_PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
step() {
  echo "consumer check [${SECONDS}s]: $*"
}
fail() {
  echo "consumer check FAILED: $*" >&2
  exit 1
}

step "building and packing the packages"
"$TSC" -b tsconfig.build.json
mkdir -p "$WORK/tarballs" "$WORK/app/src"
for pkg in core redis testing; do
  (cd "packages/$pkg" && "${PNPM[@]}" pack --pack-destination "$WORK/tarballs" >/dev/null)
done
for tarball in "$WORK"/tarballs/*.tgz; do
  if tar -tzf "$tarball" | grep -E '^package/(test/|vitest\.config|tsconfig)' >/dev/null; then
    fail "$(basename "$tarball") ships tests or configs"
  fi
  if tar -xzOf "$tarball" package/package.json | grep -q '"workspace:'; then
    fail "$(basename "$tarball") still names workspace: versions"
  fi
done

step "@tiercache/core alone (no @effect/platform, an optional peer): the root loads"
mkdir -p "$WORK/bare"
(
  cd "$WORK/bare"
  echo '{ "name": "tiercache-bare", "private": true, "type": "module" }' >package.json
  npm install --prefer-offline --no-audit --no-fund --loglevel=error "$WORK"/tarballs/tiercache-core-*.tgz >/dev/null
  [ ! -e node_modules/@effect/platform ] || fail "npm installed @effect/platform without being asked"
  node --input-type=module -e 'const { TieredCache, MemoryTier } = await import("@tiercache/core"); if (!TieredCache.layer || !MemoryTier.layer) process.exit(1)'
) || fail "@tiercache/core without @effect/platform"

step "npm install of the tarballs into $WORK/app"
cd "$WORK/app"
cat > package.json <<'JSON'
{ "name": "tiercache-consumer", "private": true, "type": "module" }
JSON
npm install --prefer-offline --no-audit --no-fund --loglevel=error \
  "$WORK"/tarballs/*.tgz effect@^3.22 @effect/platform@^0.97 @effect/platform-node@^0.108 \
  ioredis@^5 @types/node@^20.19 @types/ws@^8 >/dev/null
cp "$ROOT/examples/quickstart.ts" "$ROOT/examples/redis.ts" "$ROOT/examples/testing.ts" \
  "$ROOT/scripts/consumer/imports.ts" src/

step "(b) tsc --strict, moduleResolution nodenext (emits the programs of (a) and (c))"
cat > tsconfig.json <<'JSON'
{
  "compilerOptions": {
    "strict": true,
    "target": "ES2022",
    "module": "nodenext",
    "moduleResolution": "nodenext",
    "types": ["node"],
    "skipLibCheck": false,
    "rootDir": "src",
    "outDir": "out"
  },
  "include": ["src"]
}
JSON
"$TSC" -p tsconfig.json || fail "tsc --strict with moduleResolution nodenext"

step "(b) tsc --strict, moduleResolution bundler"
cat > tsconfig.bundler.json <<'JSON'
{
  "compilerOptions": {
    "strict": true,
    "target": "ES2022",
    "module": "preserve",
    "moduleResolution": "bundler",
    "types": ["node"],
    "skipLibCheck": true,
    "noEmit": true
  },
  "include": ["src"]
}
JSON
"$TSC" -p tsconfig.bundler.json || fail "tsc --strict with moduleResolution bundler"

step "(a) the quick start with plain node, twice"
first="$(node out/quickstart.js)" || fail "node out/quickstart.js"
echo "  $first"
second="$(node out/quickstart.js)" || fail "node out/quickstart.js (second run)"
echo "  $second"
expected='price {"id":42,"cents":4299}, again {"id":42,"cents":4299}'
[ "$first" = "$expected, computed 1x" ] || fail "first run: expected one computation"
[ "$second" = "$expected, computed 0x" ] || fail "second run: expected the answer from the files"

step "(c) the Redis example against a redis-server of its own"
PORT="$(node -e 'const s=require("node:net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no --loglevel warning >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
for _ in $(seq 1 100); do
  if redis-cli -p "$PORT" ping >/dev/null 2>&1; then break; fi
  sleep 0.1
done
redis-cli -p "$PORT" ping >/dev/null 2>&1 || fail "redis-server did not start (see $WORK/redis.log)"
output="$(REDIS_URL="redis://127.0.0.1:$PORT" node out/redis.js)" || fail "node out/redis.js"
echo "  $output"
case "$output" in
  "cached and invalidated"*"user 1"*) ;;
  *) fail "the Redis example printed something else" ;;
esac
[ "$(redis-cli -p "$PORT" dbsize)" = "0" ] || fail "the Redis example left keys behind after invalidate"

step "passed"
