#!/usr/bin/env bash
# Installs the Debian packages the project needs and builds it into build/.
# Run as root on Debian 12 (or with the packages already installed).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=$(grep -v '^#' scripts/debian-packages.txt | tr '\n' ' ')
missing=""
for p in $packages; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "${missing// /}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update
  apt-get install -y --no-install-recommends $packages
fi
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build -j"$(nproc)"
