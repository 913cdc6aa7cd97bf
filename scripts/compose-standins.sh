#!/usr/bin/env bash
# Builds local stand-ins for the images docker-compose.yaml and the Dockerfile name, for a
# Docker engine that can pull nothing (no image registry is reachable):
#
#   debian:bookworm-slim  debootstrap --variant=minbase bookworm, imported as an image
#   redis:7-alpine        that + Debian's redis-server, /data as the volume, run as `redis`
#   rust:1-bookworm       that + gcc/curl/git + the host's Rust toolchain under /usr/local
#
# Same tags as the real images, so the project's compose file and Dockerfile run unchanged.
# A tag that exists and was not built here (a real image from a registry) is left alone; a
# stand-in is rebuilt only when its recipe (this file) or the host toolchain changed, so later
# runs on the same machine reuse them and the Dockerfile's cached layers.
#
# Images that download (apt, cargo, the ReDoc fetch) get the host's CA bundle: the package
# registries are reached through TLS verified against the host's certificate authorities.
set -euo pipefail
cd "$(dirname "$0")/.."

DOCKER="${DOCKER:-docker}"
export DOCKER_BUILDKIT=0
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SYSROOT="$(rustc --print sysroot)"
RUST_VERSION="$(rustc --version | cut -d' ' -f2)"
RECIPE="$(cat "$0" | sha256sum | cut -c1-16)-${RUST_VERSION}"
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
WORK="$(mktemp -d /var/tmp/errand-standins.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

log() { echo "compose-standins: $*" >&2; }

# 0: build it (missing, or an older stand-in); 1: keep (current stand-in, or a real image).
needs_build() {
  local label
  if ! label="$($DOCKER image inspect -f '{{ index .Config.Labels "errand.standin" }}' "$1" 2>/dev/null)"; then
    return 0
  fi
  [ -n "$label" ] && [ "$label" != "<no value>" ] && [ "$label" != "$RECIPE" ]
}

# The host's extra CAs (as files update-ca-certificates keeps) plus the whole bundle.
stage_cas() {
  mkdir -p "$1/cas"
  cp "$CA_BUNDLE" "$1/ca-certificates.crt"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$1/cas/"
  fi
}

if needs_build debian:bookworm-slim; then
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  }
  log "debootstrap --variant=minbase bookworm (from $MIRROR)"
  started=$SECONDS
  debootstrap --variant=minbase bookworm "$WORK/rootfs" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  cp "$CA_BUNDLE" "$WORK/rootfs/etc/ssl/certs/ca-certificates.crt" 2>/dev/null ||
    { mkdir -p "$WORK/rootfs/etc/ssl/certs" && cp "$CA_BUNDLE" "$WORK/rootfs/etc/ssl/certs/"; }
  mkdir -p "$WORK/rootfs/usr/local/share/ca-certificates"
  if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$WORK/rootfs/usr/local/share/ca-certificates/"
  fi
  rm -rf "$WORK/rootfs/var/cache/apt/archives/"*.deb "$WORK/rootfs/var/lib/apt/lists/"*
  tar -C "$WORK/rootfs" -c . | $DOCKER import \
    --change "LABEL errand.standin=$RECIPE" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["bash"]' \
    - debian:bookworm-slim >/dev/null
  rm -rf "$WORK/rootfs"
  log "debian:bookworm-slim built in $((SECONDS - started)) s"
fi

if needs_build redis:7-alpine; then
  started=$SECONDS
  mkdir -p "$WORK/redis"
  cat >"$WORK/redis/entrypoint.sh" <<'SH'
#!/bin/sh
# As the official image: a bare `redis-server ...` listens to the container network
# (protected mode off; the compose file sets a password).
if [ "$1" = "redis-server" ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
SH
  cat >"$WORK/redis/Dockerfile" <<DOCKERFILE
FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server redis-tools \
 && rm -rf /var/lib/apt/lists/* && mkdir -p /data && chown redis:redis /data
COPY entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
LABEL errand.standin=$RECIPE
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
DOCKERFILE
  $DOCKER build -q -t redis:7-alpine "$WORK/redis" >/dev/null
  log "redis:7-alpine built in $((SECONDS - started)) s"
fi

if needs_build rust:1-bookworm; then
  started=$SECONDS
  mkdir -p "$WORK/rust/toolchain"
  # The toolchain without its HTML docs (800 MB nobody reads in a build container).
  tar -C "$SYSROOT" --exclude=./share/doc -c . | tar -C "$WORK/rust/toolchain" -x
  stage_cas "$WORK/rust"
  cat >"$WORK/rust/Dockerfile" <<DOCKERFILE
FROM debian:bookworm-slim
COPY cas/ /usr/local/share/ca-certificates/
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates curl git gcc libc6-dev make pkg-config xz-utils \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY toolchain/ /usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu/
RUN mkdir -p /usr/local/cargo/bin \
 && for b in /usr/local/rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/*; do ln -s "\$b" /usr/local/cargo/bin/; done \
 && chmod -R a+w /usr/local/cargo
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    RUST_VERSION=$RUST_VERSION
LABEL errand.standin=$RECIPE
CMD ["bash"]
DOCKERFILE
  $DOCKER build -q -t rust:1-bookworm "$WORK/rust" >/dev/null
  log "rust:1-bookworm built in $((SECONDS - started)) s"
fi
