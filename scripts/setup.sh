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
# /usr, as the packages install (tests/package_test.sh packages this build
# without reconfiguring it to another prefix). Configured twice: CMake's
# pkg_check_modules places a `-isystem` of a dependency's Cflags differently
# on the first run of a fresh build dir than on every later one, so the
# package test's own configure rewrote every flags.make and rebuilt every
# object (467 s in CI); the second run here settles the flags before the
# build.
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX=/usr
cmake build >/dev/null
cmake --build build -j"$(nproc)"
