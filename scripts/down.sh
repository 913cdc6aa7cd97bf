#!/usr/bin/env bash
# Stops what `just up` started: workers and API first (SIGTERM: they finish in-flight
# work), then Redis (which keeps its AOF data in .errand/redis).
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.errand
stop() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}
for f in "$RUN"/pids/worker-*.pid "$RUN/pids/api.pid"; do stop "$f"; done
if [ -f "$RUN/pids/redis.pid" ]; then
  redis-cli -p "${REDIS_PORT:-6379}" shutdown >/dev/null 2>&1 || stop "$RUN/pids/redis.pid"
  rm -f "$RUN/pids/redis.pid"
fi
echo "errand stopped"
