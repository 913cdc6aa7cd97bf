#!/usr/bin/env bash
# Starts a local errand: Redis (AOF on, data in .errand/redis), the API on :8080 and two
# worker processes. State and logs live under .errand/; `just down` stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
RUN=.errand
mkdir -p "$RUN/redis" "$RUN/logs" "$RUN/pids"
REDIS_PORT="${REDIS_PORT:-6379}"
API_PORT="${API_PORT:-8080}"
WORKERS="${WORKERS:-2}"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if ! alive "$RUN/pids/redis.pid"; then
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "Using the Redis already listening on :$REDIS_PORT"
  else
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$PWD/$RUN/redis" \
      --appendonly yes --daemonize yes --pidfile "$PWD/$RUN/pids/redis.pid" \
      --logfile "$PWD/$RUN/logs/redis.log"
    for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
fi

export ERRAND__REDIS__URL="redis://127.0.0.1:$REDIS_PORT" ERRAND__API__PORT="$API_PORT"
if ! alive "$RUN/pids/api.pid"; then
  nohup target/debug/errand-api >"$RUN/logs/api.log" 2>&1 &
  echo $! >"$RUN/pids/api.pid"
fi
for i in $(seq "$WORKERS"); do
  if ! alive "$RUN/pids/worker-$i.pid"; then
    nohup target/debug/errand-worker >"$RUN/logs/worker-$i.log" 2>&1 &
    echo $! >"$RUN/pids/worker-$i.pid"
  fi
done

for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
if ! curl -fsS "http://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1; then
  echo "errand-api did not become ready; see $RUN/logs/api.log" >&2
  exit 1
fi
cat <<MSG
errand is up: API on :$API_PORT, $WORKERS workers, Redis on :$REDIS_PORT (logs in $RUN/logs).

  Swagger UI:  http://127.0.0.1:$API_PORT/docs
  ReDoc:       http://127.0.0.1:$API_PORT/redoc
  Dashboard:   http://127.0.0.1:$API_PORT/ui   Metrics: http://127.0.0.1:$API_PORT/metrics
  Submit:      curl -s -X POST http://127.0.0.1:$API_PORT/v1/tasks \\
                 -H 'content-type: application/json' \\
                 -d '{"kind":"sleep","payload":{"duration_secs":5}}'
  Read back:   curl -s http://127.0.0.1:$API_PORT/v1/tasks/<id>
  CLI:         ERRAND_URL=http://127.0.0.1:$API_PORT target/debug/errand submit sleep \\
                 --payload '{"duration_secs":5}' --wait   (docs/client.md)
  Stop:        just down
MSG
