#!/usr/bin/env bash
# The README's test command; .ci/run calls it. On a fresh machine it installs what the tests
# need (redis-server, openssl and chromium through apt-get when missing, saying so before any sudo), then
# runs, in order: install, lint, typecheck, build (and a dry run of the publish), API docs,
# tests, the consumer check (scripts/consumer-check.sh). pnpm runs at the version pinned in
# package.json through npx: a pnpm installed globally is neither used nor replaced.
# The closing line is the summary: "tests: N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
pnpm() { npx -y "pnpm@$PNPM_VERSION" "$@"; }

SUDO=""
apt_install() { # apt_install <what it is for> <packages...>
  local why="$1"
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$* missing and apt-get is not available: install it yourself ($why)" >&2
    exit 1
  fi
  if [ "$(id -u)" != "0" ]; then
    SUDO="sudo"
    echo "running 'sudo apt-get install $*' ($why): sudo may ask for your password"
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (the Redis tests start their own servers; brew install redis on macOS)"
  apt_install "the Redis tests start their own servers" redis-server
fi
if ! command -v openssl >/dev/null 2>&1; then
  echo "installing openssl (the TLS test makes its server's certificate)"
  apt_install "the TLS test makes its server's certificate" openssl
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "installing chromium (the browser test drives it)"
  apt_install "the browser test drives it" chromium
fi

echo "== install"
pnpm install --frozen-lockfile
echo "== lint"
pnpm lint
echo "== typecheck"
pnpm typecheck
echo "== build"
pnpm build
echo "== publish (dry run) and the files each package would publish"
pnpm publish --recursive --dry-run --no-git-checks
for pkg in core redis testing; do (cd "packages/$pkg" && pnpm pack --dry-run); done
echo "== docs"
pnpm run docs

echo "== tests"
status=0
pnpm vitest run --reporter=default --reporter=json --outputFile=.vitest-report.json || status=$?
echo "== consumer check"
consumer=0
bash scripts/consumer-check.sh || consumer=1
node scripts/summary.mjs .vitest-report.json --check "consumer check=$consumer" || status=1
exit "$status"
