# errand's tasks. `just` alone lists them.
set shell := ["bash", "-euo", "pipefail", "-c"]

# List the recipes.
default:
    @just --list

# Start Redis, the API on :8080 and two workers (installs redis-server if missing).
up: ensure-redis build
    scripts/up.sh

# Stop what `just up` started.
down:
    scripts/down.sh

# Build both binaries.
build: redoc
    cargo build --bins

# Run every test: unit, integration, end-to-end (each test binary starts its own Redis).
test: ensure-redis redoc
    cargo build --bins
    if cargo nextest --version >/dev/null 2>&1; then cargo nextest run --workspace --no-fail-fast; else cargo test --workspace --no-fail-fast; fi

# Benchmarks (release build): `just bench` runs W1–W4, `just bench W2` one of them.
# Prints a table with the targets and writes target/bench/results.json.
bench *workloads: ensure-redis
    cargo build --release --bins
    target/release/errand-bench {{workloads}}

# The checks CI runs before the tests.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Format the code.
fmt:
    cargo fmt --all

# Put ReDoc's script where /redoc serves it from (npm registry, sha512-pinned; no-op when present).
redoc:
    scripts/fetch-redoc.sh

# Make sure redis-server is on PATH.
ensure-redis:
    scripts/ensure-redis.sh

# docker-compose.yaml and the Dockerfile for real (installs Docker, starts dockerd, builds local stand-in images); figures into docs/deploy.md.
compose-test:
    scripts/compose-test.sh

# Fault injection and bad input against real processes and Redis, then schemathesis; prints the figures of docs/reliability.md.
chaos: ensure-redis
    cargo build --bins
    mkdir -p target
    if cargo nextest --version >/dev/null 2>&1; then cargo nextest run -p errand-testkit --test chaos --run-ignored all --test-threads 1 --no-capture 2>&1 | tee target/chaos.log; else cargo test -p errand-testkit --test chaos -- --include-ignored --test-threads 1 --nocapture 2>&1 | tee target/chaos.log; fi
    @echo "--- figures ---"; grep -h '^chaos\[' target/chaos.log
    scripts/schemathesis.sh
