#!/bin/sh
# Installs the Debian 12 packages weir needs to build, test and demo.
# Usage: scripts/deps.sh [build|test|demo|bench|ci]   (default: test)
# Installs only what is missing; needs root (or sudo) when something is.
set -eu
what=${1:-test}
pkgs="build-essential cmake pkg-config libxxhash-dev libjansson-dev libmicrohttpd-dev libjs-chart.js"
case "$what" in
  build) ;;
  test) pkgs="$pkgs libsqlite3-dev sqlite3 libpq-dev libmicrohttpd-dev libjansson-dev libnats-dev nats-server postgresql prometheus python3 curl chromium nodejs" ;;
  demo) pkgs="$pkgs libsqlite3-dev sqlite3 libpq-dev libmicrohttpd-dev libjansson-dev libnats-dev nats-server postgresql prometheus python3 curl" ;;
  bench) pkgs="$pkgs libsqlite3-dev libpq-dev libmicrohttpd-dev libjansson-dev libnats-dev nats-server postgresql python3 bc elixir erlang-nox golang-go libcaf-dev" ;;
  ci) pkgs="$pkgs libsqlite3-dev sqlite3 libpq-dev libmicrohttpd-dev libjansson-dev libnats-dev nats-server postgresql prometheus python3 curl chromium nodejs clang libclang-rt-14-dev clang-format valgrind" ;;
  *) echo "deps.sh: unknown target '$what' (build, test, demo, bench, ci)" >&2; exit 2 ;;
esac
# weirctl web's browser test drives chromium with playwright-core from npm;
# Debian's npm package is only needed where nodejs did not bring npm along.
case "$what" in test|ci) command -v npm >/dev/null 2>&1 || pkgs="$pkgs npm" ;; esac
missing=""
for p in $pkgs; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "deps.sh: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; else
  echo "deps.sh: missing packages:$missing; run as root or install them with apt-get" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends $missing; then
  $SUDO apt-get update && $SUDO apt-get install -y --no-install-recommends $missing
fi
