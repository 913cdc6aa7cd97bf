#!/usr/bin/env bash
# The Python SDK's tests (sdks/python/tests): a venv in target/sdk-venv with the SDK
# installed editable, then pytest against a real redis-server and the real errand-api
# (target/debug/errand-api, built here when missing or older than the sources).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -p errand-api --bin errand-api
venv=target/sdk-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --upgrade pip >/dev/null 2>&1 || true
"$venv/bin/pip" install --quiet -e "sdks/python[test]"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider sdks/python/tests "$@"
