# errand's image: both binaries, the example worker with kinds of its own
# (examples/report-kinds, for docker-compose.kinds.yaml), the config and ReDoc's script; the
# compose file picks the binary with `command:`.
#
# Works with the classic builder as well as BuildKit (no cache mounts, no syntax line), so
# caching is by layers: the dependencies are compiled in a layer of their own from the
# manifests alone (the `manifests` stage blanks every source file), and a change to errand's
# code recompiles errand's crates only. Cargo.toml or Cargo.lock changes rebuild everything.

# ---- manifests: the workspace with every source file blanked --------------------------
FROM rust:1-bookworm AS manifests
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates/ crates/
COPY examples/ examples/
# Deterministic output: this stage reruns on every source change, but the layer copied out
# of it stays byte-identical (and so cached) until a manifest changes.
# (find replaces `{}` anywhere in its arguments, so the stub main is copied from a file.)
RUN find crates examples -type f ! -name Cargo.toml ! -path '*/src/lib.rs' ! -path '*/src/main.rs' -delete \
    && echo 'fn main() {}' > /tmp/main.rs && : > /tmp/lib.rs \
    && find crates examples -path '*/src/lib.rs' -exec cp /tmp/lib.rs {} \; \
    && find crates examples -path '*/src/main.rs' -exec cp /tmp/main.rs {} \; \
    && find crates examples -type d -empty -delete

# ---- builder ----------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# ReDoc's script for /redoc (npm registry, sha512-checked), in a layer of its own.
COPY scripts/fetch-redoc.sh scripts/
RUN scripts/fetch-redoc.sh

# The dependencies, compiled against the blanked workspace.
COPY --from=manifests /src/ ./
RUN cargo build --release --locked -p errand-api -p errand-worker -p report-kinds

# errand itself. The sources are touched so cargo never takes the blank build for current.
# The release profile builds without debug info (symbols kept), so the binaries are copied
# as they are (docs/deploy.md, "What ships").
COPY crates/ crates/
COPY examples/ examples/
COPY config/ config/
RUN find crates examples -name '*.rs' -exec touch {} + \
    && cargo build --release --locked -p errand-api -p errand-worker -p report-kinds \
    && mkdir -p /out \
    && cp target/release/errand-api target/release/errand-worker target/release/report-worker /out/

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# curl is used by the container healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system errand \
    && useradd --system --gid errand --no-create-home --shell /usr/sbin/nologin errand

COPY config/ /app/config/
COPY --from=builder /src/assets/vendor/ /app/assets/vendor/
COPY --from=builder /out/errand-api /out/errand-worker /out/report-worker /usr/local/bin/

WORKDIR /app
ENV ERRAND_ENV=production \
    ERRAND_CONFIG_DIR=/app/config

USER errand
EXPOSE 8080
CMD ["errand-api"]
