#!/usr/bin/env bash
# Fetches the real `cosign` CLI (Debian 13's package; it needs only libc >= 2.34) into tools/trixie/,
# without touching the system's apt sources: an isolated apt configuration downloads the .deb and
# dpkg-deb unpacks it. Debian 12's own skopeo cannot verify sigstore signatures (lab REPORT §2), so the
# tests use this cosign as the independent verifier of the signatures the factory makes.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/tools/trixie
bin=$dest/cosign/usr/bin/cosign
VERSION=${COSIGN_DEB_VERSION:-2.5.0-2+b5}
[ -x "$bin" ] && exit 0
mkdir -p "$dest/lists/partial" "$dest/cache/archives/partial"
mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
echo "deb ${mirror:-http://deb.debian.org/debian} trixie main" > "$dest/sources.list"
opts=(-o "Dir::Etc::SourceList=$dest/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$dest/lists" -o "Dir::Cache=$dest/cache" -o Acquire::Languages=none)
apt-get "${opts[@]}" update -qq
cd "$dest"
apt-get "${opts[@]}" download "cosign=$VERSION" 2>&1 | grep -v unsandboxed || true
dpkg-deb -x cosign_*.deb cosign
rm -rf lists cache
"$bin" version >/dev/null
echo "cosign $VERSION unpacked into $dest/cosign"
