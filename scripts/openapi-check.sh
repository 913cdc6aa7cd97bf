#!/usr/bin/env bash
# Checks errand's OpenAPI documents the way their users consume them, and fails when either
# regresses:
#   1. both documents (`errand-api openapi`, `errand-api openapi --product`) pass
#      openapi-spec-validator (PyPI);
#   2. openapi-typescript (npm registry) generates TypeScript types from each, and a small
#      client program (scripts/openapi-check/client.ts, with openapi-fetch) type-checks
#      against the product one with `tsc --noEmit`. The program's `@ts-expect-error` lines
#      must stay errors, so an untyped submit (a free-form payload, a `kind: string`) fails;
#      and a whole HTTP worker (scripts/openapi-check/worker.ts) type-checks the same way.
#
# What it installs goes under target/openapi-check/ (a Python venv, node_modules), never into
# the repository. Without node and npm it installs Debian's nodejs and npm.
#   scripts/openapi-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SPEC_VALIDATOR_VERSION="0.9.0"
OPENAPI_TYPESCRIPT_VERSION="7.13.0"
OPENAPI_FETCH_VERSION="0.17.0"
TYPESCRIPT_VERSION="5.9.3"
OUT="$PWD/target/openapi-check"
mkdir -p "$OUT"

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "openapi-check: node/npm not found; installing Debian's nodejs and npm" >&2
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
  command -v npm >/dev/null 2>&1 || {
    echo "openapi-check: install Node.js 18 or newer with npm (Debian: apt-get install nodejs npm)" >&2
    exit 1
  }
fi

# The validator, in a venv of its own.
if ! "$OUT/venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-spec-validator') != '$SPEC_VALIDATOR_VERSION')" 2>/dev/null; then
  echo "openapi-check: installing openapi-spec-validator $SPEC_VALIDATOR_VERSION into $OUT/venv" >&2
  python3 -m venv "$OUT/venv"
  "$OUT/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    "openapi-spec-validator==$SPEC_VALIDATOR_VERSION"
fi

# The generator, the fetch client the program uses, and the compiler, pinned.
installed() { node -p "require('$OUT/node_modules/$1/package.json').version" 2>/dev/null || true; }
if [ "$(installed openapi-typescript)" != "$OPENAPI_TYPESCRIPT_VERSION" ] ||
  [ "$(installed openapi-fetch)" != "$OPENAPI_FETCH_VERSION" ] ||
  [ "$(installed typescript)" != "$TYPESCRIPT_VERSION" ]; then
  echo "openapi-check: installing openapi-typescript, openapi-fetch and typescript into $OUT" >&2
  cat >"$OUT/package.json" <<JSON
{
  "private": true,
  "name": "errand-openapi-check",
  "version": "0.0.0",
  "dependencies": {
    "openapi-fetch": "$OPENAPI_FETCH_VERSION",
    "openapi-typescript": "$OPENAPI_TYPESCRIPT_VERSION",
    "typescript": "$TYPESCRIPT_VERSION"
  }
}
JSON
  (cd "$OUT" && npm install --no-audit --no-fund --loglevel=error)
fi

cargo build --bins --quiet
export ERRAND_CONFIG_DIR="$PWD/config"
target/debug/errand-api openapi >"$OUT/openapi.json"
target/debug/errand-api openapi --product >"$OUT/product.json"

echo "openapi-check: openapi-spec-validator" >&2
"$OUT/venv/bin/openapi-spec-validator" "$OUT/openapi.json" "$OUT/product.json"

echo "openapi-check: openapi-typescript, then tsc --noEmit on scripts/openapi-check/client.ts" >&2
cd "$OUT"
# --default-non-nullable false: a field with a default (sha256's `rounds`) stays optional
# in request bodies; openapi-typescript 7 otherwise makes it required.
npx --no-install openapi-typescript openapi.json --default-non-nullable false -o errand-full.ts
npx --no-install openapi-typescript product.json --default-non-nullable false -o errand.ts
cp ../../scripts/openapi-check/client.ts ../../scripts/openapi-check/worker.ts ../../scripts/openapi-check/tsconfig.json .
npx --no-install tsc -p tsconfig.json
npx --no-install tsc --noEmit --strict --target ES2022 --module ESNext --moduleResolution Bundler errand-full.ts
echo "openapi-check: both documents valid; the generated TypeScript client type-checks" >&2
