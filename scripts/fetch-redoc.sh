#!/usr/bin/env bash
# Puts ReDoc's standalone bundle where errand-api serves it from (/redoc/redoc.standalone.js),
# so /redoc needs no CDN: downloads the pinned ReDoc release from the npm registry, checks
# the tarball against the sha512 the registry publishes for it (dist.integrity), and
# extracts bundles/redoc.standalone.js (plus its licence files) into a git-ignored
# directory. Does nothing when the file is there and matches its pinned sha512.
#
#   scripts/fetch-redoc.sh [DEST]
#
# DEST, relative to the repository, defaults to assets/vendor/redoc.standalone.js (the
# default of api.redoc_js_path in config/base.yaml).
#
# Needs curl (or wget, or npm), tar and sha512sum (or shasum, or openssl). The registry can
# be a mirror: NPM_CONFIG_REGISTRY=https://npm.example.internal scripts/fetch-redoc.sh
#
# ReDoc 2.x, not 3.x: 3.x is an ES-module bundle without `Redoc.init`, needs React Router,
# and sends telemetry by default. To move to another 2.x release, set VERSION and
# TARBALL_SHA512 (the hex of `npm view redoc@VERSION dist.integrity`, i.e.
# `echo '<base64 after sha512->' | base64 -d | od -An -tx1 -v | tr -d ' \n'`), then run the
# script: it verifies the tarball and prints the bundle's sha512 for BUNDLE_SHA512.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION="2.5.4"
TARBALL_SHA512="33a8d6846d6aa019c7e93166cc99ecb72099f3b1e6398fd4cc39bbf261e262284476557f61c4bda203a8d4d94496724c78bb32c4715edb215ce2c3631d3ac005"
BUNDLE_SHA512="674d1a00370f190be71614d812213f9b152a5dee7f8eca26532d249a80123c2b79241200d48935b69164d55eec5f52d9639606675121a59c8b5348a351aa2862"

DEST="${1:-assets/vendor/redoc.standalone.js}"
REGISTRY="${NPM_CONFIG_REGISTRY:-${npm_config_registry:-https://registry.npmjs.org}}"
REGISTRY="${REGISTRY%/}"

sha512() {
  if command -v sha512sum >/dev/null 2>&1; then
    sha512sum "$1" | cut -d' ' -f1
  elif command -v shasum >/dev/null 2>&1; then
    shasum -a 512 "$1" | cut -d' ' -f1
  elif command -v openssl >/dev/null 2>&1; then
    openssl dgst -sha512 -r "$1" | cut -d' ' -f1
  else
    echo "fetch-redoc: need sha512sum, shasum or openssl to verify the download" >&2
    return 1
  fi
}

if [ -f "$DEST" ] && [ "$(sha512 "$DEST")" = "$BUNDLE_SHA512" ]; then
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
tarball="$tmp/redoc-$VERSION.tgz"
url="$REGISTRY/redoc/-/redoc-$VERSION.tgz"

echo "fetch-redoc: downloading ReDoc $VERSION from $REGISTRY" >&2
if command -v curl >/dev/null 2>&1; then
  curl -fsSL --retry 3 --connect-timeout 20 -o "$tarball" "$url"
elif command -v wget >/dev/null 2>&1; then
  wget -q --tries=3 -O "$tarball" "$url"
elif command -v npm >/dev/null 2>&1; then
  (cd "$tmp" && npm pack --silent --registry "$REGISTRY" "redoc@$VERSION" >/dev/null)
else
  cat >&2 <<'MSG'
fetch-redoc: need curl, wget or npm to download ReDoc. On Debian/Ubuntu:
  sudo apt-get install curl
MSG
  exit 1
fi

got="$(sha512 "$tarball")"
if [ "$got" != "$TARBALL_SHA512" ]; then
  echo "fetch-redoc: $url has sha512 $got, expected $TARBALL_SHA512; not installing it" >&2
  exit 1
fi

tar -xzf "$tarball" -C "$tmp" \
  package/bundles/redoc.standalone.js \
  package/bundles/redoc.standalone.js.LICENSE.txt \
  package/LICENSE
got="$(sha512 "$tmp/package/bundles/redoc.standalone.js")"
if [ "$got" != "$BUNDLE_SHA512" ]; then
  echo "fetch-redoc: the verified tarball's bundle has sha512 $got, not BUNDLE_SHA512;" \
    "if you changed VERSION, set BUNDLE_SHA512=$got" >&2
  exit 1
fi

dir="$(dirname "$DEST")"
mkdir -p "$dir"
cp "$tmp/package/LICENSE" "$dir/redoc.LICENSE"
cp "$tmp/package/bundles/redoc.standalone.js.LICENSE.txt" "$dir/"
# Copy then rename, so a running errand-api or a parallel run never reads half a file.
cp "$tmp/package/bundles/redoc.standalone.js" "$DEST.tmp.$$"
mv -f "$DEST.tmp.$$" "$DEST"
echo "fetch-redoc: installed ReDoc $VERSION at $DEST ($(wc -c <"$DEST") bytes)" >&2
