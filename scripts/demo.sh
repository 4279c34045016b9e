#!/bin/sh
# make demo: runs the seed's demo when the aggregator is built, else the
# examples. Usage: scripts/demo.sh BUILD_DIR
set -eu
build=${1:-build}
if [ -x "$build/weir-aggregator" ]; then
  exec "$build/weir-aggregator" demo --out "$build/demo"
fi
for ex in "$build"/example_*; do
  [ -x "$ex" ] || continue
  echo "== $(basename "$ex")"
  "$ex"
done
