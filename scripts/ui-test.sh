#!/usr/bin/env bash
# The dashboard's browser tests (crates/api/ui-tests): Debian's headless Chromium driven by
# playwright-core, against the real errand-api / errand-worker binaries and a private
# redis-server. Installs what a fresh machine lacks: chromium via apt-get (never a browser
# download), node + npm via apt-get, and playwright-core from the pinned package-lock.json
# (npm ci). Screenshots land in target/ui/.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if command -v apt-get >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "$@" >/dev/null
  else
    echo "ui-test: install $* (no apt-get here)" >&2
    exit 1
  fi
}

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
[ -x "$CHROMIUM" ] || apt_install chromium
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
scripts/ensure-redis.sh

cargo build --bins
cd crates/api/ui-tests
# Skips the download when node_modules already holds the locked version.
if ! node -e 'const l=require("./package-lock.json"),p=require("./node_modules/playwright-core/package.json");process.exit(l.packages["node_modules/playwright-core"].version===p.version?0:1)' 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
fi
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 CHROMIUM="$CHROMIUM" node --test --test-concurrency=1 dashboard.test.mjs
echo "ui-test: screenshots in target/ui/" >&2
