# syntax=docker/dockerfile:1

# ---- builder ----------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src

# ReDoc's script for /redoc (npm registry, sha512-checked), in a layer of its own.
COPY scripts/fetch-redoc.sh scripts/
RUN scripts/fetch-redoc.sh

COPY Cargo.toml Cargo.lock ./
COPY crates/ crates/
COPY config/ config/

# target/ lives in a cache mount, so the binaries are copied out to /out in the same RUN.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --bins \
    && mkdir -p /out \
    && cp target/release/errand-api target/release/errand-worker /out/

# ---- runtime ----------------------------------------------------------------
FROM debian:bookworm-slim AS runtime

# curl is used by the container healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*

RUN groupadd --system errand \
    && useradd --system --gid errand --no-create-home --shell /usr/sbin/nologin errand

COPY --from=builder /out/errand-api /out/errand-worker /usr/local/bin/
COPY config/ /app/config/
COPY --from=builder /src/assets/vendor/ /app/assets/vendor/

WORKDIR /app
ENV ERRAND_ENV=production \
    ERRAND_CONFIG_DIR=/app/config

USER errand
EXPOSE 8080
CMD ["errand-api"]
