#!/usr/bin/env bash
# Installs everything the tests need on a fresh machine (pnpm at the pinned version, redis-server),
# then lints, typechecks and runs every test. This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."

PNPM_VERSION=12.4.2
if ! command -v pnpm >/dev/null 2>&1 || [ "$(pnpm --version 2>/dev/null)" != "$PNPM_VERSION" ]; then
  echo "installing pnpm@$PNPM_VERSION"
  npm install -g "pnpm@$PNPM_VERSION"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server (the Redis tests start their own servers)"
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server
  else
    echo "redis-server is missing and apt-get is not available: install Redis (e.g. brew install redis)" >&2
    exit 1
  fi
fi

pnpm install --frozen-lockfile
pnpm lint
pnpm typecheck
status=0
pnpm vitest run --reporter=default --reporter=json --outputFile=.vitest-report.json || status=$?
node scripts/summary.mjs .vitest-report.json || status=1
exit "$status"
