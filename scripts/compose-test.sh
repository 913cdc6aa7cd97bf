#!/usr/bin/env bash
# `just compose-test`: the project's docker-compose.yaml and Dockerfile, unchanged, on a real
# Docker engine, then the checks of crates/e2e/tests/compose.rs (figures into
# docs/deploy.md).
#
#  1. installs Debian's docker.io, docker-compose and debootstrap when missing;
#  2. starts dockerd when none answers (and stops it again at the end);
#  3. builds local stand-ins for redis:7-alpine, rust:1-bookworm and debian:bookworm-slim
#     (scripts/compose-standins.sh: no image registry is needed, and none is used);
#  4. `docker-compose up --build -d` (docker-compose.yaml with docker-compose.kinds.yaml, the
#     example's own worker beside the stock ones) with a fresh API key and Redis password, the API
#     published on a free port of 127.0.0.1 only;
#  5. runs the test, then `docker-compose down -v`.
#
# Caches between runs on one machine: the stand-in images, and the Dockerfile's layers (the
# dependencies' layer is rebuilt only when Cargo.toml or Cargo.lock change).
set -euo pipefail
cd "$(dirname "$0")/.."
all_started=$SECONDS
LOCK=/tmp/errand-cpu.lock
log() { echo "compose-test: $*" >&2; }

missing=()
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Debian's client matches Debian's engine; another docker on PATH may be newer than it.
if [ -x /usr/bin/docker ]; then DOCKER=/usr/bin/docker; else DOCKER=docker; fi
export DOCKER
# Both builders are fine for the Dockerfile; docker-compose 1.29 uses the classic one.
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0

mkdir -p target/compose
dockerd_pid=""
export COMPOSE_PROJECT_NAME=errand-ci
# The stock stack and, beside it, the example's own worker (examples/report-kinds).
export COMPOSE_FILE=docker-compose.yaml:docker-compose.kinds.yaml
cleanup() {
  local rc=$?
  docker-compose down -v --remove-orphans >/dev/null 2>&1 || true
  # Earlier builds' leftovers (tips of image chains no tag points to), so the disk does not
  # fill up run after run. Recent ones stay: the builder stage's chain, the dependencies'
  # layer included, is such a chain, and is the cache the next run wants.
  $DOCKER image prune -f --filter until=72h >/dev/null 2>&1 || true
  if [ -n "$dockerd_pid" ]; then
    log "stopping the dockerd it started"
    kill "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.1; done
  fi
  exit $rc
}
trap cleanup EXIT

if ! $DOCKER info >/dev/null 2>&1; then
  log "starting dockerd (log: target/compose/dockerd.log)"
  setsid dockerd >target/compose/dockerd.log 2>&1 &
  dockerd_pid=$!
  for _ in $(seq 1 300); do
    $DOCKER info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 target/compose/dockerd.log >&2; exit 1; }
    sleep 0.2
  done
  $DOCKER info >/dev/null 2>&1 || { log "dockerd did not come up"; exit 1; }
fi

t=$SECONDS
flock -s "$LOCK" scripts/compose-standins.sh
standins_secs=$((SECONDS - t))

random_hex() { head -c 32 /dev/urandom | od -An -tx1 -v | tr -d ' \n'; }
export ERRAND_API_KEY="$(random_hex)" ERRAND_REDIS_PASSWORD="$(random_hex)"
# 127.0.0.1 only, on a port Docker picks (read back below).
export ERRAND_PUBLISH="127.0.0.1:"
docker-compose down -v --remove-orphans >/dev/null 2>&1 || true

log "docker-compose up --build -d"
t=$SECONDS
flock -s "$LOCK" docker-compose up --build -d >target/compose/build.log 2>&1 ||
  { tail -40 target/compose/build.log >&2; exit 1; }
export COMPOSE_BUILD_SECS=$((SECONDS - t))
ERRAND_COMPOSE_ADDR="$(docker-compose port api 8080)"
export ERRAND_COMPOSE_ADDR
log "images and stack up in ${COMPOSE_BUILD_SECS} s (stand-ins ${standins_secs} s); api on $ERRAND_COMPOSE_ADDR"

if cargo nextest --version >/dev/null 2>&1; then
  flock -s "$LOCK" cargo nextest run -p errand-e2e --test compose --run-ignored all --no-capture
else
  flock -s "$LOCK" cargo test -p errand-e2e --test compose -- --include-ignored --nocapture
fi
log "done in $((SECONDS - all_started)) s"
