#!/usr/bin/env bash
# The package test (issue 21): the Debian packages install, run, upgrade
# keeping every reservation, and purge as docs/operations.md ("Installing as
# a package") says. It installs system packages, so it is not a ctest test:
# CI runs it as root after the test suite (.ci/run); by hand, as root on a
# throwaway Debian 12 machine with an existing build:
#
#   bash tests/package_test.sh [BUILD_DIR]        (default: build)
#
# Steps: cpack -G DEB from the build (configured with
# CMAKE_INSTALL_PREFIX=/usr for the packaging; nothing is recompiled),
# lintian (no errors), apt-get install of the three packages, checks of the
# user, directories, conffile, unit (systemd-analyze verify) and man pages,
# then primary-server started exactly as the unit's ExecStart says, as user
# primary (runuser: no systemd as PID 1 here), and only installed programs:
# register, unlock (primary-vendor), reserve, a primary-client heartbeat,
# status; an in-place upgrade to the same build packaged as a higher
# version, every reservation checked against its license; apt-get purge,
# and what is left checked. The machine is left as it was found: the data
# directory and the user the purge keeps are removed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$(pwd)
build=$(cd "${1:-build}" && pwd)
export DEBIAN_FRONTEND=noninteractive
start=$(date +%s)
step() { echo "package test: $* ($(( $(date +%s) - start )) s)"; }
fail() {
  echo "package test: FAILED: $*" >&2
  [ -f "${work:-/nonexistent}/server.log" ] && tail -n 30 "$work/server.log" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (it installs and purges packages)"
[ -f "$build/CPackConfig.cmake" ] || fail "no CPackConfig.cmake in $build: configure and build first"
packages=(primary-server libprimary-client-dev primary-vendor)
for p in "${packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed"; then
    fail "$p is already installed: this test installs and purges it"
  fi
done
[ ! -e /var/lib/primary ] || fail "/var/lib/primary exists: this test creates and removes it"
[ ! -e /etc/primary ] || fail "/etc/primary exists: this test creates and removes it"
user_existed=no
getent passwd primary >/dev/null && user_existed=yes

work=$(mktemp -d /tmp/primary-package-test.XXXXXX)
old_prefix=$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$build/CMakeCache.txt")
server_pid=""

stop_server() {
  [ -n "$server_pid" ] || return 0
  kill -TERM "$server_pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

cleanup() {
  stop_server
  for p in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "installed\|config-files"; then
      apt-get purge -y -q "$p" >/dev/null 2>&1 || true
    fi
  done
  rm -rf /var/lib/primary /etc/primary
  if [ "$user_existed" = no ] && getent passwd primary >/dev/null; then
    userdel primary 2>/dev/null || true
    getent group primary >/dev/null && groupdel primary 2>/dev/null || true
  fi
  if [ -n "$old_prefix" ] && [ "$old_prefix" != /usr ]; then
    cmake -DCMAKE_INSTALL_PREFIX="$old_prefix" "$build" >/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# ---- packages
step "configuring $build with CMAKE_INSTALL_PREFIX=/usr and building"
cmake -DCMAKE_INSTALL_PREFIX=/usr "$build" >"$work/configure.log" || fail "configure: $(tail -5 "$work/configure.log")"
cmake --build "$build" -j2 >"$work/build.log" || fail "build: $(tail -20 "$work/build.log")"

make_packages() {  # VERSION DIR
  mkdir -p "$2"
  PRIMARY_PACKAGE_VERSION="$1" cpack -G DEB --config "$build/CPackConfig.cmake" -B "$2" >"$2/cpack.log" 2>&1 \
    || fail "cpack $1: $(tail -20 "$2/cpack.log")"
  rm -rf "$2/_CPack_Packages"
}
version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/CPackConfig.cmake")
[ -n "$version" ] || fail "no CPACK_PACKAGE_VERSION in $build/CPackConfig.cmake"
IFS=. read -r major minor patch <<<"$version"
next="$major.$minor.$((patch + 1))"
step "cpack -G DEB: version $version"
make_packages "$version" "$work/v1"
ls -l "$work"/v1/*.deb

step "cmake --install into a staging tree (compose/Dockerfile's commands)"
for component in server vendor; do
  DESTDIR="$work/stage" cmake --install "$build" --component "$component" --strip >"$work/stage.log" \
    || fail "cmake --install --component $component: $(tail -5 "$work/stage.log")"
done
for f in usr/bin/primary-server usr/bin/primary-client usr/bin/primary-vendor usr/lib/primary/primary-updater-net.so \
         etc/primary/primary.toml usr/lib/systemd/system/primary-server.service; do
  [ -e "$work/stage/$f" ] || fail "cmake --install put no $f"
done
if find "$work/stage" -name 'primary-bench' -o -name 'primary-echo-worker' -o -name '*_test' | grep .; then
  fail "cmake --install put a developer tool or a test in the image"
fi

step "lintian"
lintian_errors=0
for deb in "$work"/v1/*.deb; do
  lintian --tag-display-limit 0 "$deb" 2>&1 | grep -v "running with root privileges" >"$work/lintian.txt" || true
  echo "  $(basename "$deb"): $(grep -c '^E:' "$work/lintian.txt" || true) error(s)," \
       "$(grep -c '^W:' "$work/lintian.txt" || true) warning(s)"
  sed 's/^/    /' "$work/lintian.txt"
  grep -q '^E:' "$work/lintian.txt" && lintian_errors=$((lintian_errors + 1))
done
[ "$lintian_errors" = 0 ] || fail "lintian reports errors"

# ---- install
step "apt-get install"
(cd "$work/v1" && apt-get install -y -q ./primary-server_*.deb ./libprimary-client-dev_*.deb \
   ./primary-vendor_*.deb >"$work/install.log" 2>&1) || fail "apt-get install: $(tail -20 "$work/install.log")"

getent passwd primary >/dev/null || fail "no user primary after install"
[ "$(stat -c '%a %U %G' /var/lib/primary)" = "750 primary primary" ] \
  || fail "/var/lib/primary is $(stat -c '%a %U %G' /var/lib/primary), not 750 primary primary"
dpkg-query -W -f='${Conffiles}\n' primary-server | grep -q ' /etc/primary/primary.toml ' \
  || fail "/etc/primary/primary.toml is not a conffile"
for f in /usr/bin/primary-server /usr/bin/primary-broker /usr/bin/primary-licensed /usr/bin/primary-updater \
         /usr/bin/primary-admin /usr/bin/primary-web /usr/bin/primaryctl /usr/bin/primary-client \
         /usr/lib/primary/primary-updater-net.so /usr/bin/primary-vendor; do
  [ -e "$f" ] || fail "$f is not installed"
done
if dpkg -L primary-server | grep -E 'primary-(bench|echo-worker|chaos|vendor)'; then
  fail "primary-server holds a tool"
fi

unit=/usr/lib/systemd/system/primary-server.service
[ -f "$unit" ] || fail "no $unit"
step "systemd-analyze verify $unit"
if ! systemd-analyze verify "$unit" >"$work/verify.log" 2>&1; then
  fail "systemd-analyze verify: $(cat "$work/verify.log")"
fi
if [ -s "$work/verify.log" ]; then sed 's/^/    /' "$work/verify.log"; fi

step "man -l"
for page in /usr/share/man/man1/primary-server.1.gz /usr/share/man/man1/primaryctl.1.gz; do
  [ -f "$page" ] || fail "no $page"
  man -l -P cat "$page" >"$work/man.txt" 2>"$work/man.err" || fail "man -l $page: $(cat "$work/man.err")"
  grep -q -- '--help' "$work/man.txt" || fail "man -l $page shows no options"
  [ ! -s "$work/man.err" ] || fail "man -l $page warns: $(cat "$work/man.err")"
done

# ---- run as the unit says, as user primary
# What an admin does after installing: the vendor's public key, and here
# port 0 for every listener (never a fixed port in a test).
primary-vendor keygen --out "$work/vendor" >/dev/null || fail "primary-vendor keygen"
install -m 0644 "$work/vendor/vendor.pub" /etc/primary/vendor.pub
cat >>/etc/primary/primary.toml <<'EOF'

# package test
front = "tcp://127.0.0.1:*"
events = "tcp://127.0.0.1:*"
public-endpoints = "tcp://127.0.0.1:*"
web = "127.0.0.1:0"
vendor-key = "/etc/primary/vendor.pub"
EOF

exec_start=$(sed -n 's/^ExecStart=//p' "$unit")
[ -n "$exec_start" ] || fail "no ExecStart in $unit"
start_server() {
  rm -f /var/lib/primary/run/endpoints
  # systemd's environment for the unit: an empty one, UMask=0077, cwd /.
  # shellcheck disable=SC2086
  (cd / && umask 0077 && exec runuser -u primary -- env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin $exec_start) \
    >>"$work/server.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 150); do
    front=$(sed -n 's/^front=//p' /var/lib/primary/run/endpoints 2>/dev/null || true)
    [ -n "$front" ] && return 0
    kill -0 "$server_pid" 2>/dev/null || fail "primary-server exited"
    sleep 0.2
  done
  fail "primary-server wrote no endpoints file"
}
step "starting: runuser -u primary -- $exec_start"
start_server
echo "  front door $front"
pgrep -u primary -x primary-server >/dev/null || fail "primary-server does not run as primary"

# An admin key in the allow-list, then SIGHUP (docs/security.md).
primaryctl keys create --out "$work/admin" --name package-test --json >"$work/admin.json"
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["allow_list_line"])' "$work/admin.json" \
  >>/var/lib/primary/keys/admins
kill -HUP "$(pgrep -u primary -x primary-server)"
ctl() {
  primaryctl --server "$front" --server-key /var/lib/primary/keys/server.pub \
    --client-key "$work/admin/package-test.key" "$@"
}
json() {  # FILE PYTHON-EXPRESSION over `d`
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"
}
ok=no
for _ in $(seq 1 100); do
  if ctl services --json >"$work/services.json" 2>"$work/services.err" \
     && [ "$(json "$work/services.json" 'sorted(s["service"] for s in d if s["state"] == "up" and s["service"] in ("license", "update.control", "admin"))')" = "['admin', 'license', 'update.control']" ]; then
    ok=yes; break
  fi
  sleep 0.2
done
[ "$ok" = yes ] || fail "no licensing, update and admin workers: $(cat "$work/services.json" "$work/services.err" 2>/dev/null)"

step "register, unlock, reserve"
ctl register SN-PACKAGE-TEST --json >"$work/register.json" || fail "register"
registration=$(json "$work/register.json" 'd["registration_code"]')
primary-vendor unlock --key "$work/vendor/vendor.key" --registration "$registration" --licenses 5 \
  >"$work/unlock-code.txt" || fail "primary-vendor unlock"
ctl unlock "$(cat "$work/unlock-code.txt")" || fail "unlock"
ctl reserve ws-01 ws-02 ws-03 --json >"$work/reserve.json" || fail "reserve"
json "$work/reserve.json" '"\n".join(i["name"] + " " + i["license"] for i in d["items"])' >"$work/licenses.txt"
[ "$(wc -l <"$work/licenses.txt")" = 3 ] || fail "reserve: $(cat "$work/reserve.json")"
sed 's/^/  /' "$work/licenses.txt"

step "primary-client heartbeat"
ctl setup-info ws-01 --out "$work/ws-01.json" || fail "setup-info"
primary-client --setup "$work/ws-01.json" --duration 5 >"$work/client.log" 2>&1 || true
grep -q -- '-> licensed' "$work/client.log" || fail "primary-client: $(cat "$work/client.log")"
sed 's/^/  /' "$work/client.log"

ctl status --json >"$work/status.json" || fail "status"
echo "  status: $(json "$work/status.json" 'd')"

# ---- upgrade in place
step "upgrade to $next"
make_packages "$next" "$work/v2"
(cd "$work/v2" && apt-get install -y -q -o Dpkg::Options::=--force-confold ./primary-server_*.deb \
   ./libprimary-client-dev_*.deb ./primary-vendor_*.deb >"$work/upgrade.log" 2>&1) \
  || fail "upgrade: $(tail -20 "$work/upgrade.log")"
[ "$(dpkg-query -W -f='${Version}' primary-server)" = "$next" ] || fail "primary-server is not $next"
grep -q '^vendor-key = "/etc/primary/vendor.pub"' /etc/primary/primary.toml || fail "the upgrade lost the config's edits"
# What the postinst asks systemd for on an upgrade: a restart.
stop_server
start_server
for _ in $(seq 1 100); do ctl status >/dev/null 2>&1 && break; sleep 0.2; done
before=$(wc -l <"$work/licenses.txt")
after=0
while read -r name license; do
  ctl computer "$name" --json >"$work/computer.json" || fail "computer $name after the upgrade"
  got=$(json "$work/computer.json" 'd["setup"]["license"]')
  [ "$got" = "$license" ] || fail "$name: license $got after the upgrade, $license before"
  after=$((after + 1))
done <"$work/licenses.txt"
ctl status --json >"$work/status2.json" || fail "status after the upgrade"
echo "  reservations: $before before, $after after, same licenses"

# ---- purge
step "apt-get purge"
stop_server
apt-get purge -y -q "${packages[@]}" >"$work/purge.log" 2>&1 || fail "purge: $(tail -20 "$work/purge.log")"
grep 'is kept' "$work/purge.log" | sed 's/^/  /'
grep -q 'is kept' "$work/purge.log" || fail "the purge does not say the data directory stays"
[ ! -e /etc/primary/primary.toml ] || fail "/etc/primary/primary.toml survived the purge"
[ -f /etc/primary/vendor.pub ] || fail "the purge removed the admin's /etc/primary/vendor.pub"
for f in /usr/bin/primary-server /usr/bin/primary-vendor /usr/lib/primary "$unit" \
         /usr/lib/sysusers.d/primary.conf /usr/lib/tmpfiles.d/primary.conf /usr/include/primary; do
  [ ! -e "$f" ] || fail "$f survived the purge"
done
[ -f /var/lib/primary/keys/lease.key ] || fail "the purge removed the data directory"
getent passwd primary >/dev/null || fail "the purge removed the user primary"
step "passed"
