#!/usr/bin/env bash
# Fuzzes errand's HTTP API with schemathesis, driven by the API's own /openapi.json: a
# private redis-server, the API and one worker are started on free ports, then every
# operation gets generated valid and invalid requests. Fails on any 5xx or any response
# that does not match the document (status, content type, headers, body schema).
#
# Reproducible: a fixed seed and a bounded number of examples per operation.
#   SEED=…  MAX_EXAMPLES=…  scripts/schemathesis.sh
# The report (JUnit XML + the run's summary) lands in target/schemathesis/.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION="4.32.5"
SEED="${SEED:-20250601}"
MAX_EXAMPLES="${MAX_EXAMPLES:-100}"
OUT="$PWD/target/schemathesis"

if ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION from PyPI" >&2
  python3 -m pip install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
  hash -r
fi
cargo build --bins --quiet

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

redis_port="$(free_port)"
api_port="$(free_port)"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$work" >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

export ERRAND_CONFIG_DIR="$PWD/config"
export ERRAND__REDIS__URL="redis://127.0.0.1:$redis_port"
export ERRAND__API__PORT="$api_port"
# Generated long-polls must not hold a fuzz case for a minute, nor generated sleeps park
# the worker for a day: both bounds are small here (5 s still admits the documented
# examples). An event stream that never ends (a task on a queue nobody serves) is read
# until --request-timeout and then checked; schemathesis does not count that as a failure.
export ERRAND__API__MAX_WAIT_SECS=2
export ERRAND__TASKS__MAX_SLEEP_SECS=5
export ERRAND__TASKS__DIAGNOSTIC_KINDS=true
export ERRAND__WORKER__LEASE_SECS=3
# With a key configured, so that the document's security requirements are tested too:
# schemathesis sends the key, and its requests without one must get a 401.
KEY="schemathesis-key"
export ERRAND__API__API_KEYS="$KEY"
# The document types each kind's payload, so generated tasks are valid and the worker runs
# them: CPU-heavy kinds get small bounds (the document states them), mail goes to files in
# the run's directory, and every HTTP request of http_request/fan_out goes to a proxy
# address where nothing listens, so no generated URL is ever contacted.
export ERRAND__TASKS__SHA256_MAX_ROUNDS=10000
export ERRAND__TASKS__FIBONACCI_MAX_N=10000
export ERRAND__EMAIL__FILE_DIR="$work/mail"
export RUST_LOG="${RUST_LOG:-warn}"
target/debug/errand-api >"$work/api.log" 2>&1 &
pids+=($!)
no_proxy_port="$(free_port)"
env HTTP_PROXY="http://127.0.0.1:$no_proxy_port" HTTPS_PROXY="http://127.0.0.1:$no_proxy_port" \
  http_proxy="http://127.0.0.1:$no_proxy_port" https_proxy="http://127.0.0.1:$no_proxy_port" \
  ALL_PROXY="http://127.0.0.1:$no_proxy_port" NO_PROXY="" no_proxy="" \
  target/debug/errand-worker >"$work/worker.log" 2>&1 &
pids+=($!)
for _ in $(seq 200); do
  curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null

mkdir -p "$OUT"
status=0
# From inside target/, so schemathesis's own cache (.schemathesis/) lands there too.
# The hooks hand schemathesis the event stream's per-event schema (see the file).
hooks_dir="$PWD/scripts"
(cd "$OUT" && PYTHONPATH="$hooks_dir" SCHEMATHESIS_HOOKS=schemathesis_hooks schemathesis run "http://127.0.0.1:$api_port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection \
  --phases examples,coverage,fuzzing,stateful \
  --seed "$SEED" \
  --max-examples "$MAX_EXAMPLES" \
  --request-timeout 10 \
  --header "Authorization: Bearer $KEY" \
  --workers 1 \
  --no-color \
  --report junit --report-junit-path "$OUT/junit.xml") \
  2>&1 | tee "$OUT/summary.txt" || status=$?

# The API must still be healthy after the run.
curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null || {
  echo "errand-api is not ready after the fuzz run" >&2
  status=1
}
# No generated HTTP task may have reached anything: they all end at the dead proxy.
for kind in http_request fan_out; do
  reached="$(curl -fsS -H "Authorization: Bearer $KEY" "http://127.0.0.1:$api_port/v1/tasks?kind=$kind&state=succeeded" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["tasks"]))')"
  if [ "$reached" != "0" ]; then
    echo "$reached $kind task(s) succeeded: a generated request got through the proxy" >&2
    status=1
  fi
done
if grep -qE "panicked|internal error" "$work/api.log"; then
  echo "errand-api logged a panic or an internal error:" >&2
  grep -E "panicked|internal error" "$work/api.log" | head -20 >&2
  status=1
fi
exit "$status"
