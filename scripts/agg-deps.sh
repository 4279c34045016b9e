#!/bin/bash
# The aggregator's file dependencies, from the symbols its objects use: for
# each apps/aggregator object, the other aggregator objects whose symbols it
# needs (nm: undefined here, defined there). Then the order, lowest first,
# or the cycle if there is one (exit 1). See docs/AGGREGATOR.md, "Code
# layout".
#
# Usage: scripts/agg-deps.sh [BUILD_DIR]   (after make build)
set -euo pipefail
build=${1:-build}
cmf=$build/apps/aggregator/CMakeFiles
objs=$(ls "$cmf"/{agg_parse,agg_server,agg_tools,weir-aggregator}.dir/*.c.o)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
name() { basename "$1" .c.o; }
for o in $objs; do
  nm -g --defined-only "$o" | awk -v n="$(name "$o")" 'NF == 3 {print $3, n}'
done | sort -u >"$tmp/defs"
for o in $objs; do
  nm -u "$o" | awk '{print $NF}' | sort -u | join - "$tmp/defs" |
    awk -v n="$(name "$o")" '$2 != n {print n, $2}'
done | sort -u >"$tmp/edges"
for o in $objs; do
  n=$(name "$o")
  printf '%-13s -> %s\n' "$n" \
    "$(awk -v n="$n" '$1 == n {printf "%s ", $2}' "$tmp/edges")"
done
if ! order=$(awk '{print $2, $1}' "$tmp/edges" | tsort 2>"$tmp/cycle"); then
  echo "cycle:" && cat "$tmp/cycle" && exit 1
fi
echo "order, lowest first: $(echo "$order" | tr '\n' ' ')"
