#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH: uses the one there, else installs it with the OS
# package manager when that is possible, else says exactly what to install.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server not found; installing it" >&2
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
elif command -v dnf >/dev/null 2>&1; then
  sudo dnf install -y redis
elif command -v brew >/dev/null 2>&1; then
  brew install redis
elif command -v apk >/dev/null 2>&1; then
  apk add --no-cache redis
fi
if ! command -v redis-server >/dev/null 2>&1; then
  cat >&2 <<'MSG'
Could not install redis-server automatically. Install Redis 7 or newer so that
`redis-server` is on PATH, for example:
  Debian/Ubuntu: sudo apt-get install redis-server
  Fedora:        sudo dnf install redis
  macOS:         brew install redis
MSG
  exit 1
fi
