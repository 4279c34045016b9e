#!/usr/bin/env bash
# bench/web.sh: what an open dashboard costs a node at work.
#
# Usage: bench/web.sh [BUILD_DIR]     (default build; needs weir-bench, weirctl)
#   ROUNDS=N (default 5)  BENCH_FANIN="P M" (default "4 10000000")
#
# The fan-in workload (weir-bench fanin, console on: WEIR_BENCH_CONSOLE) runs
# ROUNDS times without a poller and ROUNDS times with one, alternately. The
# poller is the real thing: `weirctl web` on a free port, and a loop that
# fetches once a second what an open page fetches (the node list, every
# node's node_stats, top 20 by queue with each one's info, alarms, crashes,
# scheduler_usage over 200 ms). Prints each rate, the medians and
#   ratio fanin_polled_by_web=X        (polled / not polled; goal >= 0.95)
set -euo pipefail
BUILD=${1:-build}
ROUNDS=${ROUNDS:-5}
read -r P M <<<"${BENCH_FANIN:-4 10000000}"
BENCH="$BUILD/weir-bench"
WEIRCTL="$BUILD/tools/weirctl/weirctl"
[ -x "$BENCH" ] && [ -x "$WEIRCTL" ] || { echo "bench/web.sh: build $BENCH and $WEIRCTL first" >&2; exit 1; }
TMP=$(mktemp -d /tmp/weir-webbench.XXXXXX)
export WEIR_RUN_DIR="$TMP/run"
mkdir -p "$WEIR_RUN_DIR"
WEBPID= POLLPID=
cleanup() {
  [ -n "$POLLPID" ] && kill "$POLLPID" 2>/dev/null
  [ -n "$WEBPID" ] && kill "$WEBPID" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$WEIRCTL" web --listen "127.0.0.1:$PORT" >"$TMP/web.out" 2>&1 &
WEBPID=$!
URL="http://127.0.0.1:$PORT/api"

poll_loop() { # one page's polling, once a second
  while :; do
    curl -s -o /dev/null "$URL/nodes"
    curl -s -o /dev/null "$URL/node/fanin/node_stats"
    curl -s -o /dev/null "$URL/node/fanin/top?attr=message_queue_len&n=20"
    curl -s -o /dev/null "$URL/node/fanin/alarms"
    curl -s -o /dev/null "$URL/node/fanin/crashes"
    curl -s -o /dev/null "$URL/node/fanin/scheduler_usage?ms=200"
    echo . >>"$TMP/polls"
    sleep 1
  done
}

rate() { WEIR_BENCH_CONSOLE=fanin "$BENCH" fanin "$P" "$M" | sed -n 's/.*msgs_per_s=\([0-9]*\).*/\1/p'; }
median() { sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }

: >"$TMP/quiet"; : >"$TMP/polled"; : >"$TMP/polls"
for r in $(seq "$ROUNDS"); do
  q=$(rate); echo "round $r not polled: $q msgs/s"; echo "$q" >>"$TMP/quiet"
  poll_loop & POLLPID=$!
  p=$(rate); echo "round $r polled:     $p msgs/s"; echo "$p" >>"$TMP/polled"
  kill "$POLLPID"; wait "$POLLPID" 2>/dev/null || true; POLLPID=
done
mq=$(median <"$TMP/quiet"); mp=$(median <"$TMP/polled")
echo "polls made: $(wc -l <"$TMP/polls") (each: 6 requests, ~25 console requests)"
echo "median not polled: $mq msgs/s; polled: $mp msgs/s"
awk -v a="$mp" -v b="$mq" 'BEGIN { r = a / b; v = "NOT met"; if (r >= 0.95) v = "met"; printf "ratio fanin_polled_by_web=%.3f (goal >= 0.95: %s)\n", r, v }'
