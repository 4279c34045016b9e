#!/usr/bin/env bash
# bench/run.sh: weir and its peers (BEAM, Go, CAF), side by side, in one run.
#
# Usage: bench/run.sh [BUILD_DIR]        (default: build; needs BUILD_DIR/weir-bench)
#   ROUNDS=N          rounds (default 3); the table shows medians
#   BENCH_TIMEOUT=S   kill a run after S seconds (default 600)
#   BENCH_FANIN="P M", BENCH_PINGPONG="PAIRS N", BENCH_SPAWN_CALL="N CALLS",
#   BENCH_BACKLOG="N MQD", BENCH_IO_BOUND="P EVENTS MS",
#   BENCH_PARTITIONED="P M W"                             override arguments
#   BENCH_SAVINA_PINGPONG="N", BENCH_SAVINA_COUNT="N", BENCH_SAVINA_FJTHRPUT="A N",
#   BENCH_SAVINA_FJCREATE="N", BENCH_SAVINA_THREADRING="ACTORS PASSES",
#   BENCH_SAVINA_CHAMENEOS="C MEETINGS", BENCH_SAVINA_BIG="A PINGS"
#                     Savina workloads' arguments (default: Savina's defaults)
#   BENCH_ONLY=REGEX  run only the workloads whose name matches (bash regex),
#                     e.g. BENCH_ONLY=savina; the table keeps their rows only
#
# Every workload runs in weir (BUILD_DIR/weir-bench NAME ARGS) and in BEAM
# (elixir bench/beam/NAME.exs ARGS), and fanin, pingpong, spawn_call, backlog
# and partitioned also in Go (BUILD_DIR/go-bench, from bench/go) and in CAF
# (BUILD_DIR/caf/caf-bench, from bench/caf), alternately, weir, BEAM, Go, CAF,
# so that all see the same machine at nearly the same moment; absolute
# figures on a shared machine drift, ratios measured this way do not. The Go
# and CAF twins are built here, before the first round (go build with its
# cache under BUILD_DIR, offline; make -C bench/caf with g++ and libcaf); a
# peer whose toolchain is missing is skipped with a message. The raw lines go
# to BUILD_DIR/bench-results.txt; the table compares the medians with the
# goals in ROWS below (weir / BEAM; bench/README.md, "Goals", says why each)
# and shows one ratio column per peer; the last lines are `ratio NAME=X` (weir / BEAM)
# and `ratio NAME_vs_go=X`, `ratio NAME_vs_caf=X` (weir / Go, weir / CAF)
# for scripts. Exit status: 0 if every run completed (goals met or not; the
# table says), 1 if a run or a twin's build failed or timed out.
#
# savina_NAME are the Savina actor micro-benchmarks (bench/savina_*.c against
# bench/beam/savina/NAME.exs); they have no goal: their rows are "info",
# with the ratio of ops/s and a `ratio savina_NAME=X` line.
#
# partitioned also reports weir's direct_msgs_per_s (the same events cast
# straight to the workers), shown as an info row: the cost of routing.
set -u

BUILD=${1:-build}
ROUNDS=${ROUNDS:-3}
TIMEOUT=${BENCH_TIMEOUT:-600}
here=$(cd "$(dirname "$0")" && pwd)
bin=$BUILD/weir-bench
out=$BUILD/bench-results.txt
# The workloads with Go and CAF twins (bench/go, bench/caf).
TWINS="fanin pingpong spawn_call backlog partitioned"

declare -A ARGS=(
  [fanin]=${BENCH_FANIN:-2 1000000}
  [pingpong]=${BENCH_PINGPONG:-1 1000000}
  [spawn_call]=${BENCH_SPAWN_CALL:-1000000 100000}
  [backlog]=${BENCH_BACKLOG:-1000000 on_heap}
  [io_bound]=${BENCH_IO_BOUND:-64 20000 5}
  [partitioned]=${BENCH_PARTITIONED:-2 1000000 0}
  [savina_pingpong]=${BENCH_SAVINA_PINGPONG:-40000}
  [savina_count]=${BENCH_SAVINA_COUNT:-1000000}
  [savina_fjthrput]=${BENCH_SAVINA_FJTHRPUT:-60 10000}
  [savina_fjcreate]=${BENCH_SAVINA_FJCREATE:-40000}
  [savina_threadring]=${BENCH_SAVINA_THREADRING:-100 100000}
  [savina_chameneos]=${BENCH_SAVINA_CHAMENEOS:-100 200000}
  [savina_big]=${BENCH_SAVINA_BIG:-120 20000}
  [bounded]=${BENCH_BOUNDED:-2 1000000}
  [flood]=${BENCH_FLOOD:-4}
  [proc_count]=${BENCH_PROC_COUNT:-1000000}
  [fanin_polled]=${BENCH_FANIN_POLLED:-2 3000000}
  [queue_probe]=${BENCH_QUEUE_PROBE:-2 1000000}
)
WORKLOADS="fanin pingpong spawn_call backlog io_bound partitioned bounded flood
  proc_count fanin_polled queue_probe"
SAVINA="savina_pingpong savina_count savina_fjthrput savina_fjcreate
  savina_threadring savina_chameneos savina_big"
WORKLOADS="$WORKLOADS $(echo $SAVINA)"
ONLY=${BENCH_ONLY:-}
if [ -n "$ONLY" ]; then
  picked=""
  for w in $WORKLOADS; do
    [[ $w =~ $ONLY ]] && picked="$picked $w"
  done
  if [ -z "$picked" ]; then
    echo "run.sh: BENCH_ONLY='$ONLY' matches no workload of: $WORKLOADS" >&2
    exit 2
  fi
  WORKLOADS=${picked# }
fi
# weir-only workloads (no BEAM peer script): bounded compares weir with
# itself (bounded / unbounded mailbox), flood reports RSS over time,
# proc_count times one scan over a million processes, fanin_polled compares
# fan-in with and without proc_count polled every 100 ms, queue_probe is
# fanin's mailbox and message pool with no runtime around them (the limits
# probe: what the queue alone can do).
WEIR_ONLY="bounded flood proc_count fanin_polled queue_probe"

if [ ! -x "$bin" ]; then
  echo "run.sh: $bin not found; build first: make bench (or cmake --build $BUILD --target weir-bench)" >&2
  exit 1
fi
case "$ROUNDS" in '' | *[!0-9]* | 0)
  echo "run.sh: ROUNDS must be a positive integer" >&2
  exit 2
  ;;
esac

beam=1
if ! command -v elixir >/dev/null 2>&1; then
  beam=0
  echo "run.sh: elixir not found: running weir only. Install the BEAM peer with" >&2
  echo "  scripts/deps.sh bench     (or: apt-get install -y elixir erlang-nox)" >&2
fi

failed=0
absbuild=$(cd "$BUILD" && pwd)
twins=0
for w in $WORKLOADS; do
  case " $TWINS " in *" $w "*) twins=1 ;; esac
done
# The Go twin: standard library only, built offline with its cache and
# GOPATH under the build directory (works as root, needs no $HOME).
go=0
gobin=$absbuild/go-bench
if [ $twins = 0 ]; then
  :
elif ! command -v go >/dev/null 2>&1; then
  echo "run.sh: go not found: skipping the Go peer. Install it with" >&2
  echo "  scripts/deps.sh bench     (or: apt-get install -y golang-go)" >&2
elif (cd "$here/go" && GOCACHE="$absbuild/go/cache" GOPATH="$absbuild/go/path" \
  GOPROXY=off GOFLAGS="" GOTOOLCHAIN=local go build -o "$gobin" .); then
  go=1
else
  failed=1
  echo "run.sh: building bench/go failed: running without the Go peer" >&2
fi
# The CAF twin: g++ and libcaf-dev (CAF 0.17), through bench/caf/Makefile;
# its first build takes a minute or two (CAF is all templates).
caf=0
cafbin=$absbuild/caf/caf-bench
probe=$(mktemp -d)
if [ $twins = 0 ]; then
  :
elif ! command -v g++ >/dev/null 2>&1 || ! command -v make >/dev/null 2>&1 ||
  ! printf '#include <caf/config.hpp>\nint main() { return CAF_VERSION > 0 ? 0 : 1; }\n' |
  g++ -x c++ - -o "$probe/a.out" -lcaf_core >/dev/null 2>&1; then
  echo "run.sh: g++, make or libcaf not found: skipping the CAF peer. Install it with" >&2
  echo "  scripts/deps.sh bench     (or: apt-get install -y g++ make libcaf-dev)" >&2
elif make -s -q -C "$here/caf" OUT="$absbuild/caf" 2>/dev/null ||
  { echo "run.sh: building the CAF twin (bench/caf) in $absbuild/caf" >&2 &&
    make -s -C "$here/caf" -j "$(nproc)" OUT="$absbuild/caf" >&2; }; then
  caf=1
else
  failed=1
  echo "run.sh: building bench/caf failed: running without the CAF peer" >&2
fi
rm -rf "$probe"

{
  echo "# weir-bench results, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# host: $(uname -srm), $(nproc) CPUs"
  echo "# weir: $(git -C "$here/.." rev-parse --short HEAD 2>/dev/null || echo unknown)"
  if [ $beam = 1 ]; then
    echo "# beam: $(elixir --version 2>/dev/null | tr '\n' ' ')"
  fi
  [ $go = 1 ] && echo "# go: $(go version 2>/dev/null)"
  [ $caf = 1 ] && echo "# caf: libcaf-dev $(dpkg-query -W -f='${Version}' libcaf-dev 2>/dev/null || echo unknown)"
  echo "# rounds: $ROUNDS"
} >"$out"

# run SIDE NAME ROUND: one run; its `weir|beam|go|caf ...` lines go to
# stdout and the results file, a failure is recorded as a comment.
run() {
  local side=$1 name=$2 round=$3 args=${ARGS[$2]} rc lines errf
  errf=$(mktemp)
  if [ "$side" = weir ]; then
    # shellcheck disable=SC2086
    lines=$(timeout "$TIMEOUT" "$bin" "$name" $args 2>"$errf")
  elif [ "$side" = go ]; then
    # shellcheck disable=SC2086
    lines=$(timeout "$TIMEOUT" "$gobin" "$name" $args 2>"$errf")
  elif [ "$side" = caf ]; then
    # shellcheck disable=SC2086
    lines=$(timeout "$TIMEOUT" "$cafbin" "$name" $args 2>"$errf")
  else
    local erl=""
    # BEAM's default process limit (262,144) is below spawn_call's N.
    [ "$name" = spawn_call ] && erl="+P $((${args%% *} + 65536))"
    local script="$here/beam/$name.exs"
    case $name in savina_*) script="$here/beam/savina/${name#savina_}.exs" ;; esac
    # shellcheck disable=SC2086
    lines=$(timeout "$TIMEOUT" elixir ${erl:+--erl "$erl"} "$script" $args 2>"$errf")
  fi
  rc=$?
  lines=$(printf '%s\n' "$lines" | grep "^$side ")
  if [ $rc -ne 0 ] || [ -z "$lines" ]; then
    failed=1
    [ $rc -eq 124 ] && echo "run.sh: $side $name timed out after ${TIMEOUT}s" >&2
    echo "run.sh: $side $name $args failed (exit $rc):" >&2
    sed 's/^/  /' "$errf" | tail -n 20 >&2
    echo "# round $round: $side $name $args FAILED (exit $rc): $(tail -n 3 "$errf" | tr '\n' ' ')" >>"$out"
  else
    printf '%s\n' "$lines" | tee -a "$out"
  fi
  rm -f "$errf"
}

for round in $(seq 1 "$ROUNDS"); do
  echo "== round $round of $ROUNDS"
  for w in $WORKLOADS; do
    run weir "$w" "$round"
    case " $WEIR_ONLY " in *" $w "*) continue ;; esac
    [ $beam = 1 ] && run beam "$w" "$round"
    case " $TWINS " in *" $w "*) ;; *) continue ;; esac
    [ $go = 1 ] && run go "$w" "$round"
    [ $caf = 1 ] && run caf "$w" "$round"
  done
done

# median SIDE LINE KEY: the median of KEY over the lines `SIDE LINE k=v...`.
# Two derived keys: drain_ratio (drain / stream) and pct_of_ideal.
median() {
  awk -v side="$1" -v name="$2" -v key="$3" '
    $1 == side && $2 == name {
      split("", kv)
      for (i = 3; i <= NF; i++) {
        eq = index($i, "=")
        if (eq > 0) kv[substr($i, 1, eq - 1)] = substr($i, eq + 1)
      }
      if (key == "drain_ratio") {
        if (kv["stream_msgs_per_s"] > 0)
          v[n++] = kv["drain_msgs_per_s"] / kv["stream_msgs_per_s"]
      } else if (key == "pct_of_ideal") {
        if (kv["ideal"] > 0) v[n++] = 100 * kv["events_per_s"] / kv["ideal"]
      } else if (key in kv) {
        v[n++] = kv[key] + 0
      }
    }
    END {
      if (n == 0) { print "-"; exit }
      for (i = 1; i < n; i++) {
        x = v[i]
        for (j = i - 1; j >= 0 && v[j] > x; j--) v[j + 1] = v[j]
        v[j + 1] = x
      }
      m = (n % 2) ? v[int(n / 2)] : (v[n / 2 - 1] + v[n / 2]) / 2
      printf "%.10g\n", m
    }' "$out"
}

# Rows: id|label|line|weir key|beam key|go key|caf key|goal on|op|goal|fmt
# A peer's key is KEY (on the row's line) or LINE:KEY (another line of that
# peer), "-" for none. Goals ("ratio": weir / BEAM; "weir": weir's own
# figure; "go": weir / Go) are bench/README.md's "Goals"; the status
# column judges each row's goal; the Go and CAF ratio columns are
# information elsewhere (bench/README.md says what favours each peer).
# partitioned: the Go and CAF twins send straight to the worker (they have no
# partition supervisor), so compare them with weir's direct row too.
ROWS='fanin|fan-in msgs/s|fanin|msgs_per_s|msgs_per_s|msgs_per_s|msgs_per_s|ratio|>=|8|%.0f
fanin_go|fan-in msgs/s, goal vs Go|fanin|msgs_per_s|-|msgs_per_s|-|go|>=|1.2|%.0f
fanin_map|fan-in msgs/s, Go map payload|fanin|msgs_per_s|-|fanin_map:msgs_per_s|-|none|-|-|%.0f
pingpong|ping-pong round trips/s|pingpong|round_trips_per_s|round_trips_per_s|round_trips_per_s|round_trips_per_s|ratio|>=|4|%.0f
call|call round trips/s|call|calls_per_s|calls_per_s|calls_per_s|calls_per_s|ratio|>=|2|%.0f
call_thread|call from a thread/s|call|sync_calls_per_s|calls_per_s|-|sync_calls_per_s|none|-|-|%.0f
spawn|spawns/s|spawn|spawns_per_s|spawns_per_s|spawns_per_s|spawns_per_s|ratio|>=|20|%.0f
bytes_per_process|bytes per idle process|spawn|bytes_per_process|bytes_per_process|bytes_per_process|bytes_per_process|ratio|<=|0.1|%.0f
bytes_per_event|bytes per queued event|backlog|vm_bytes_per_msg|vm_bytes_per_msg|vm_bytes_per_msg|vm_bytes_per_msg|ratio|<=|0.333|%.1f
drain|drain / stream rate|backlog|drain_ratio|drain_ratio|drain_ratio|drain_ratio|weir|>=|0.9|%.3f
io_bound|io-bound % of ideal|io_bound|pct_of_ideal|pct_of_ideal|-|-|weir|>=|95|%.1f
bounded_reject|bounded REJECT / unbounded|bounded|reject_ratio|-|-|-|weir|>=|0.9|%.3f
bounded_block|bounded BLOCK / unbounded|bounded|block_ratio|-|-|-|weir|>=|0.9|%.3f
flood_bounded|flood: bounded RSS growth|floodsum|bounded_rss_growth|-|-|-|none|-|-|%.0f
flood_unbounded|flood: unbounded RSS growth|floodsum|unbounded_rss_growth|-|-|-|none|-|-|%.0f
proc_count|proc_count scan, 1 M procs, ms|proc_count|scan_ms|-|-|-|none|-|-|%.2f
fanin_polled|fan-in polled / not polled|fanin_polled|ratio|-|-|-|weir|>=|0.95|%.3f
queue_probe|bare queue fan-in msgs/s (no runtime)|queue_probe|msgs_per_s|-|-|-|none|-|-|%.0f
partitioned|partitioned cast msgs/s|partitioned|msgs_per_s|msgs_per_s|msgs_per_s|msgs_per_s|ratio|>=|8|%.0f
partitioned_go|partitioned msgs/s, goal vs Go|partitioned|msgs_per_s|-|msgs_per_s|-|go|>=|1.2|%.0f
partitioned_direct|same, direct cast msgs/s|partitioned|direct_msgs_per_s|msgs_per_s|msgs_per_s|msgs_per_s|none|-|-|%.0f
savina_pingpong|savina pingpong pings/s|savina_pingpong|ops_per_s|ops_per_s|-|-|info|-|-|%.0f
savina_count|savina count msgs/s|savina_count|ops_per_s|ops_per_s|-|-|info|-|-|%.0f
savina_fjthrput|savina fjthrput msgs/s|savina_fjthrput|ops_per_s|ops_per_s|-|-|info|-|-|%.0f
savina_fjcreate|savina fjcreate actors/s|savina_fjcreate|ops_per_s|ops_per_s|-|-|info|-|-|%.0f
savina_threadring|savina threadring passes/s|savina_threadring|ops_per_s|ops_per_s|-|-|info|-|-|%.0f
savina_chameneos|savina chameneos meetings/s|savina_chameneos|ops_per_s|ops_per_s|-|-|info|-|-|%.0f
savina_big|savina big pings/s|savina_big|ops_per_s|ops_per_s|-|-|info|-|-|%.0f'

# value SIDE LINE SPEC: the median of a row's key spec for one side.
value() {
  local side=$1 line=$2 spec=$3
  if [ "$spec" = - ]; then
    echo -
    return
  fi
  case $spec in *:*) line=${spec%%:*} spec=${spec#*:} ;; esac
  median "$side" "$line" "$spec"
}
# ratio A B: A / B to 3 decimals, "-" if either is missing or B is 0.
ratio() {
  awk -v a="$1" -v b="$2" 'BEGIN {
    if (a == "-" || b == "-" || b + 0 == 0) print "-"; else printf "%.3f", a / b }'
}
# fmtv X FMT: X printed with FMT, "-" as is.
fmtv() {
  if [ "$1" = - ]; then echo -; else awk -v x="$1" -v f="$2" 'BEGIN { printf f, x }'; fi
}

table=$(mktemp)
ratios=$(mktemp)
tfmt='%-30s %13s %13s %13s %13s %9s %9s %9s  %-19s %s\n'
# shellcheck disable=SC2059
printf "$tfmt" workload weir BEAM Go CAF weir/BEAM weir/Go weir/CAF goal status >"$table"
while IFS='|' read -r id label line wkey bkey gkey ckey on op goal fmt; do
  w=$(value weir "$line" "$wkey")
  b=$(value beam "$line" "$bkey")
  g=$(value go "$line" "$gkey")
  c=$(value caf "$line" "$ckey")
  # With BENCH_ONLY, rows of the workloads that did not run are left out.
  [ -n "$ONLY" ] && [ "$w$b$g$c" = "----" ] && continue
  rb=$(ratio "$w" "$b")
  rg=$(ratio "$w" "$g")
  rc=$(ratio "$w" "$c")
  case $on in
    ratio) goaltxt="weir/BEAM $op $goal"; subject=$rb ;;
    go) goaltxt="weir/Go $op $goal"; subject=$rg ;;
    weir) goaltxt="weir $op $goal"; subject=$w ;;
    info) goaltxt="info"; subject="-" ;;
    *) goaltxt="-"; subject="-" ;;
  esac
  if [ "$on" = none ] || [ "$on" = info ]; then
    status="(info)"
  elif [ "$subject" = "-" ]; then
    status="n/a"
  else
    status=$(awk -v s="$subject" -v g="$goal" -v op="$op" 'BEGIN {
      ok = (op == ">=") ? (s + 0 >= g + 0) : (s + 0 <= g + 0)
      print ok ? "met" : "NOT MET" }')
  fi
  # shellcheck disable=SC2059
  printf "$tfmt" "$label" "$(fmtv "$w" "$fmt")" "$(fmtv "$b" "$fmt")" \
    "$(fmtv "$g" "$fmt")" "$(fmtv "$c" "$fmt")" "$rb" "$rg" "$rc" \
    "$goaltxt" "$status" >>"$table"
  # a "go" row repeats its workload's figures to judge the goal vs Go; its
  # ratio line is the workload row's NAME_vs_go
  [ "$on" = go ] && continue
  [ "$on" != none ] && echo "ratio $id=$rb" >>"$ratios"
  [ $go = 1 ] && [ "$gkey" != - ] && echo "ratio ${id}_vs_go=$rg" >>"$ratios"
  [ $caf = 1 ] && [ "$ckey" != - ] && echo "ratio ${id}_vs_caf=$rc" >>"$ratios"
done <<<"$ROWS"

peers="BEAM"
[ $go = 1 ] && peers="$peers, Go"
[ $caf = 1 ] && peers="$peers, CAF"
echo
echo "== medians of $ROUNDS round(s), weir vs $peers ($(nproc) CPUs); raw lines: $out"
cat "$table" "$ratios"
{
  echo "# table"
  sed 's/^/# /' "$table"
  cat "$ratios"
} >>"$out"
rm -f "$table" "$ratios"
exit $failed
