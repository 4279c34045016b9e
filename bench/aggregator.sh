#!/bin/sh
# bench/aggregator.sh: weir-aggregator's durable path against its cast path.
#
# For --ack queued (202 once queued) and --ack stored (202 once committed),
# on a fresh SQLite database each run: single events (POST /track, 64
# connections) and batches (POST /track/batch, 256 events, 4 connections),
# flat out for SECS seconds, then until everything accepted is stored. The
# figure is events stored per second end to end (first request to last
# commit), with the request latency p50/p99. Modes alternate within each
# round; medians of ROUNDS rounds; the ratio column is stored / queued.
# Usage: bench/aggregator.sh BUILD_DIR [ROUNDS] [SECS]
set -eu
build=${1:-build-release}
rounds=${2:-3}
secs=${3:-5}
bin="$build/weir-aggregator"
[ -x "$bin" ] || { echo "aggregator.sh: no $bin (build it first)" >&2; exit 1; }
dir=$(mktemp -d)
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
pid=""

serve() { # mode -> sets port
  rm -f "$dir"/a.db*
  "$bin" serve --ack "$1" --listen 127.0.0.1:0 --no-console \
    --db "sqlite:$dir/a.db" >"$dir/serve.out" 2>&1 &
  pid=$!
  port=""
  for _ in $(seq 100); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' \
      "$dir/serve.out")
    [ -n "$port" ] && return 0
    sleep 0.1
  done
  echo "aggregator.sh: serve did not start" >&2; cat "$dir/serve.out" >&2
  exit 1
}

# mode kind -> one line "mode kind stored_rate p50 p99"
run() {
  serve "$1"
  if [ "$2" = single ]; then args="--conns 64 --batch 1"; else
    args="--conns 4 --batch 256"; fi
  # shellcheck disable=SC2086
  "$bin" load --url "http://127.0.0.1:$port" --rate 0 --secs "$secs" \
    --users 1000 $args --json --wait-stored >"$dir/load.out"
  kill -TERM "$pid"; wait "$pid" || true
  awk -v m="$1" -v k="$2" -F'[:,}]' '
    /"p50_ms"/ { for (i = 1; i < NF; i++) { if ($i ~ /"p50_ms"/) p50 = $(i+1);
                                           if ($i ~ /"p99_ms"/) p99 = $(i+1) } }
    /"stored_rate"/ { for (i = 1; i < NF; i++) if ($i ~ /"stored_rate"/) r = $(i+1) }
    END { printf "%s %s %.0f %.3f %.3f\n", m, k, r, p50, p99 }' "$dir/load.out"
}

: >"$dir/all"
for r in $(seq "$rounds"); do
  for kind in batch single; do
    for mode in queued stored; do
      run "$mode" "$kind" | tee -a "$dir/all" | sed "s/^/round $r: /" >&2
    done
  done
done

echo "weir-aggregator, SQLite, $secs s flat out per run, medians of $rounds rounds"
printf '%-28s %14s %14s %9s %9s %9s\n' workload "queued ev/s" "stored ev/s" \
  "stored/q" "p50 q/s" "p99 q/s"
for kind in batch single; do
  med() { grep "^$1 $kind " "$dir/all" | awk -v c="$2" '{print $c}' | sort -n |
    awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  q=$(med queued 3); s=$(med stored 3)
  qp50=$(med queued 4); sp50=$(med stored 4); qp99=$(med queued 5); sp99=$(med stored 5)
  if [ "$kind" = batch ]; then w="/track/batch x256, 4 conns"; else
    w="/track, 64 conns"; fi
  awk -v w="$w" -v q="$q" -v s="$s" -v a="$qp50" -v b="$sp50" -v c="$qp99" \
    -v d="$sp99" 'BEGIN { printf "%-28s %14.0f %14.0f %9.2f %4.1f/%-4.1f %4.1f/%-4.1f\n",
      w, q, s, s / q, a, b, c, d }'
done
echo "(latencies in ms; ev/s = events stored per second, first request to last commit)"
