#!/usr/bin/env bash
# The partition chaos test cuts a worker off with a network namespace and a veth pair: it
# needs `ip` (iproute2) and root. Installs iproute2 with apt-get when it is missing.
set -euo pipefail
if command -v ip >/dev/null 2>&1; then
  exit 0
fi
echo "ip (iproute2) not found; installing it" >&2
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq iproute2 >/dev/null
fi
command -v ip >/dev/null 2>&1 || { echo "install iproute2 (the \`ip\` command) for just chaos" >&2; exit 1; }
