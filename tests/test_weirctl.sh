#!/bin/sh
# test_weirctl.sh: weirctl against a live node (tools/weirctl/testnode.c).
#
#   test_weirctl.sh WEIRCTL TESTNODE            the CLI checks
#   test_weirctl.sh WEIRCTL TESTNODE promtool   `promtool check metrics` on
#                                               the metrics output (exit 77 =
#                                               skipped if promtool is absent)
#
# The node drowns a process registered as "drowning" (10000 queued casts);
# weirctl must name it first, list the node, and fail with exit 1 and a clear
# message for an unknown node or attribute. Each run uses its own run dir.
set -u
WEIRCTL=$1
NODE=$2
MODE=${3:-cli}

if [ "$MODE" = promtool ] && ! command -v promtool >/dev/null 2>&1; then
  echo "SKIP: promtool not installed (Debian package prometheus)"
  exit 77
fi

TMP=$(mktemp -d /tmp/weirctl-test.XXXXXX)
export WEIR_RUN_DIR="$TMP/run"
NODEPID=
cleanup() {
  [ -n "$NODEPID" ] && kill "$NODEPID" 2>/dev/null && wait "$NODEPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

mkfifo "$TMP/in"
"$NODE" wtest 90 <"$TMP/in" >"$TMP/node.out" 2>"$TMP/node.err" &
NODEPID=$!
exec 3>"$TMP/in" # keeps the node's stdin open; closing it stops the node
i=0
while ! grep -q '^ready ' "$TMP/node.out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 "$NODEPID" 2>/dev/null; then
    echo "FAIL: test node did not start"; cat "$TMP/node.err"; exit 1
  fi
  sleep 0.1
done
SOCK=$(sed -n 's/^ready //p' "$TMP/node.out")
[ "$SOCK" = "$WEIR_RUN_DIR/wtest.sock" ] || fail "socket path $SOCK"

if [ "$MODE" = promtool ]; then
  "$WEIRCTL" --node wtest metrics >"$TMP/metrics.txt" || fail "metrics exit"
  tail -n 1 "$TMP/metrics.txt" | grep -qx '# EOF' || fail "metrics without # EOF"
  if promtool check metrics <"$TMP/metrics.txt" >"$TMP/promtool.out" 2>&1; then
    ok "promtool check metrics"
  else
    fail "promtool check metrics:"; cat "$TMP/promtool.out"
  fi
  grep -q '^weir_process_message_queue_len{pid="<0\.[0-9]*\.[0-9]*>",name="drowning"' \
    "$TMP/metrics.txt" || fail "metrics lack the drowning gauge"
  exec 3>&-
  wait "$NODEPID"; NODEPID=
  [ $fails -eq 0 ] || exit 1
  exit 0
fi

# proc_count --json: the drowning process first, value >= 10000.
out=$("$WEIRCTL" --json proc_count message_queue_len 5) || fail "proc_count exit $?"
echo "$out"
first=$(echo "$out" | sed -n 's/^\[{"pid":"[^"]*","value":\([0-9]*\),"registered_name":"\([^"]*\)".*/\2 \1/p')
name=${first% *}
value=${first#* }
[ "$name" = drowning ] || fail "first entry is '$name', not drowning"
[ "${value:-0}" -ge 10000 ] 2>/dev/null || fail "queue length $value < 10000"
[ -n "$name" ] && ok "proc_count names drowning first ($value)"

# The same without --json: a table whose first row is drowning.
"$WEIRCTL" --node wtest proc_count message_queue_len 5 >"$TMP/table" || fail "table exit"
cat "$TMP/table"
head -n 1 "$TMP/table" | grep -q '^PID  *VALUE  *REGISTERED_NAME  *CURRENT_FUNCTION  *INITIAL_CALL' \
  || fail "table header"
sed -n 2p "$TMP/table" | grep -q 'drowning  *aggregator:handle_cast  *aggregator' \
  || fail "table first row"
awk 'length($0) > 80 { bad = 1 } END { exit bad }' "$TMP/table" || fail "table wider than 80"

# nodes lists it.
"$WEIRCTL" nodes | grep -q "^wtest  *$SOCK\$" && ok "nodes" || fail "nodes"
"$WEIRCTL" --json nodes | grep -q "\"node\":\"wtest\"" || fail "nodes --json"

# Every other command works, in both forms.
for cmd in "node_stats" "info drowning" "partitions events" "alarms" \
           "scheduler_usage 200" "proc_window message_queue_len 3 300" "help" \
           "tree"; do
  # shellcheck disable=SC2086
  "$WEIRCTL" -s "$SOCK" $cmd >"$TMP/o" 2>"$TMP/e" || { fail "$cmd: $(cat "$TMP/e")"; continue; }
  # shellcheck disable=SC2086
  "$WEIRCTL" -s "$SOCK" --json $cmd >"$TMP/j" 2>"$TMP/e" || fail "$cmd --json: $(cat "$TMP/e")"
  head -c 1 "$TMP/j" | grep -q '[[{]' || fail "$cmd --json is not JSON"
done
ok "all commands"
"$WEIRCTL" partitions events | grep -q '42:' || fail "partitions: hot key 42 missing"
"$WEIRCTL" info drowning | grep -q '^registered_name  *drowning' || fail "info drowning"

# tree: app_sup (one_for_one, 100 in 60 s) over steady and flaky; the
# partition supervisor events over its four workers; flaky's restarts count
# (the test node crashes it every two seconds).
"$WEIRCTL" tree >"$TMP/o" 2>"$TMP/e" || fail "tree: $(cat "$TMP/e")"
cat "$TMP/o"
grep -q '^<0\.[0-9]*\.[0-9]*> app_sup  *one_for_one  restarts [0-9]* ([0-9]* recent), intensity left [0-9]* of 100 in 60s$' "$TMP/o" \
  || fail "tree: app_sup line"
grep -q '^  <0\.[0-9]*\.[0-9]*>  *flaky  *crasher' "$TMP/o" || fail "tree: flaky under app_sup"
grep -q '^<0\.[0-9]*\.[0-9]*> events  *one_for_one' "$TMP/o" || fail "tree: events"
[ "$(grep -c 'event_worker' "$TMP/o")" -eq 4 ] || fail "tree: events has not 4 workers"
i=0
until "$WEIRCTL" --json tree | grep -q '"registered_name":"flaky","initial_call":"crasher","current_function":"[^"]*","supervisor":false,"restarts":[1-9]'; do
  i=$((i + 1)); [ $i -gt 60 ] && { fail "tree: flaky's restarts never counted"; break; }
  sleep 0.1
done
[ $i -le 60 ] && ok "tree"

# The drowning process's alarm is listed (the sampler runs every 100 ms).
i=0
until "$WEIRCTL" alarms 2>/dev/null | grep -q '^long_message_queue  *<0\.[0-9]*\.[0-9]*>  *drowning'; do
  i=$((i + 1)); [ $i -gt 100 ] && { fail "alarms: drowning not listed"; break; }
  sleep 0.1
done
[ $i -le 100 ] && ok "alarms lists drowning"

# crashes: the test node's crasher, in both forms.
"$WEIRCTL" crashes >"$TMP/o" 2>"$TMP/e" || fail "crashes: $(cat "$TMP/e")"
cat "$TMP/o"
grep -q '^#1 .* crash <0\.[0-9]*\.[0-9]*> crasher *(crasher) handle_cast WEIR_EINVAL (-1)' "$TMP/o" \
  || fail "crashes lacks the crasher"
grep -q 'message: tag 9, 4 bytes from a thread, head 626f6f6d' "$TMP/o" \
  || fail "crashes lacks the message in hand"
"$WEIRCTL" --json crashes | grep -q '"behaviour":"crasher","callback":"handle_cast"' \
  && ok "crashes" || fail "crashes --json"

# trace: the partition worker of key 42 (the node casts to it ten times a
# second), by key and as JSON; a count, a time limit, a tag filter.
"$WEIRCTL" trace events --key 42 --count 3 --tag 5 >"$TMP/o" 2>"$TMP/e" \
  || fail "trace: $(cat "$TMP/e")"
cat "$TMP/o"
head -n 1 "$TMP/o" | grep -q '^tracing <0\.[0-9]*\.[0-9]*>: up to 3 messages or 10 s' \
  || fail "trace header"
[ "$(grep -c ' cast    tag=5 len=8 from=thread head=' "$TMP/o")" -eq 3 ] || fail "trace lines"
tail -n 1 "$TMP/o" | grep -qx '3 messages, 0 lost (count)' || fail "trace summary"
"$WEIRCTL" --json trace drowning --secs 1 >"$TMP/o" 2>"$TMP/e" || fail "trace --json"
tail -n 1 "$TMP/o" | grep -q '"reason":"time","messages":0' && ok "trace" \
  || fail "trace --json: $(cat "$TMP/o")"
"$WEIRCTL" trace drowning --count 10001 >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q -- "--count needs a number from 1 to 10000" "$TMP/e" \
  || fail "trace cap"
"$WEIRCTL" trace '<0.999.1>' >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q "no such process" "$TMP/e" || fail "trace dead pid"

# top --once: one frame that fits 80 columns.
"$WEIRCTL" top --once --sort message_queue_len >"$TMP/top" || fail "top exit"
cat "$TMP/top"
grep -q 'drowning' "$TMP/top" || fail "top lacks drowning"
awk 'length($0) > 80 { bad = 1 } END { exit bad }' "$TMP/top" || fail "top wider than 80"

# Errors: exit 1 and a clear message.
"$WEIRCTL" --node nosuch node_stats >"$TMP/o" 2>"$TMP/e"
rc=$?
[ $rc -eq 1 ] || fail "unknown node: exit $rc"
grep -q "no node named 'nosuch'" "$TMP/e" && ok "unknown node" || fail "unknown node message: $(cat "$TMP/e")"
"$WEIRCTL" proc_count bogus 5 >"$TMP/o" 2>"$TMP/e"
rc=$?
[ $rc -eq 1 ] || fail "unknown attribute: exit $rc"
grep -q "unknown attribute 'bogus'" "$TMP/e" && ok "unknown attribute" || fail "unknown attribute message: $(cat "$TMP/e")"
"$WEIRCTL" info nosuch >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q "no process registered as 'nosuch'" "$TMP/e" || fail "info nosuch"
"$WEIRCTL" frobnicate >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q "unknown command" "$TMP/e" || fail "unknown command"
"$WEIRCTL" --help | grep -q '^usage: weirctl' || fail "--help"
"$WEIRCTL" --version | grep -q '^weirctl [0-9]' || fail "--version"

# Stop the node: the socket goes, nodes no longer lists it.
exec 3>&-
wait "$NODEPID" || fail "test node exit status"
NODEPID=
[ -e "$SOCK" ] && fail "socket still there after stop"
"$WEIRCTL" nodes | grep -q wtest && fail "stopped node still listed"
"$WEIRCTL" node_stats >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q "no live node" "$TMP/e" || fail "no node: $(cat "$TMP/e")"

[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all weirctl checks passed"
