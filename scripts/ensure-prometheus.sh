#!/usr/bin/env bash
# Makes sure `prometheus` and `promtool` are on PATH for the observability tests: uses the
# ones there, else installs Debian's `prometheus` package (both binaries), else says what
# to install. Only the binaries are used: the package's service is stopped if it started.
set -euo pipefail
if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
  exit 0
fi
echo "prometheus/promtool not found; installing Debian's prometheus package" >&2
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  # policy-rc.d 101: the package must not start its own server on :9090 during install.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  cat >&2 <<'MSG'
Could not install Prometheus automatically. Install Prometheus 2.x or newer so that
`prometheus` and `promtool` are on PATH, for example:
  Debian/Ubuntu: sudo apt-get install prometheus
  macOS:         brew install prometheus
MSG
  exit 1
fi
