#!/bin/bash
# make demo-cluster: weir-aggregator on a NATS JetStream cluster, all on
# 127.0.0.1: 3 NATS servers, 2 ingest nodes (serve --stream), 2 consumer
# nodes (consume) and a private PostgreSQL (initdb/pg_ctl in a temporary
# directory, as the postgres user when run as root). Load goes through both
# ingest nodes (weir-aggregator load); mid-run one consumer node is killed
# with SIGKILL, then the NATS server that leads the stream. Prints the
# fail-over (which node took which partitions, after how long), checks in
# PostgreSQL that every event is stored once and in per-user order, and
# draws stored events/s per consumer node over time (SVG, from the
# stream_commits table, by awk).
#
# Usage: scripts/demo-cluster.sh [BUILD_DIR]   (env: RATE, SECS, LEASE_MS)
# Output: BUILD_DIR/demo-cluster/{report.txt,stored.svg,logs/}
set -euo pipefail
build=${1:-build}
bin=$(cd "$build" && pwd)/weir-aggregator
out=$(cd "$build" && pwd)/demo-cluster
rate=${RATE:-1500}
secs=${SECS:-40}
lease=${LEASE_MS:-10000}
parts=8

die() { echo "demo-cluster: $*" >&2; exit 1; }
[ -x "$bin" ] || die "no $bin: build first (make build)"
"$bin" consume --help >/dev/null 2>&1 || die "$bin has no consume command"
nats=$(command -v nats-server || true)
[ -n "$nats" ] || nats=/usr/sbin/nats-server
[ -x "$nats" ] || die "no nats-server (scripts/deps.sh demo installs it)"
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$pgbin" ] && [ -x "$pgbin/pg_ctl" ] || die "no PostgreSQL server binaries"
command -v curl >/dev/null || die "no curl"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/weir-demo-cluster-XXXXXX")
rm -rf "$out"
mkdir -p "$out/logs"
pids=()
asuser=()
if [ "$(id -u)" -eq 0 ]; then asuser=(runuser -u postgres --); fi

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -CONT "$p" 2>/dev/null; kill -KILL "$p" 2>/dev/null; done
  [ -f "$tmp/pg/data/postmaster.pid" ] &&
    "${asuser[@]}" "$pgbin/pg_ctl" -D "$tmp/pg/data" -m immediate -w stop >/dev/null 2>&1
  wait 2>/dev/null
  cp "$tmp"/*.log "$out/logs/" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { printf '%s\n' "$*" | tee -a "$out/report.txt"; }
t0=$(date +%s.%N)
el() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%5.1f", b - a }'; }

# Free loopback ports: nothing answers a connect on them.
# Below the kernel's ephemeral range (32768-), where outgoing connections
# take their local ports.
next_port=$((20000 + RANDOM % 12000))
# free_port: sets $port (not echoed: $(...) would lose the counter).
free_port() {
  while (exec 3<>"/dev/tcp/127.0.0.1/$next_port") 2>/dev/null; do
    next_port=$((next_port + 1))
  done
  port=$next_port
  next_port=$((next_port + 1))
}

# ---- PostgreSQL -----------------------------------------------------------
mkdir -p "$tmp/pg"
[ ${#asuser[@]} -gt 0 ] && chmod 711 "$tmp" && chown postgres "$tmp/pg"
free_port
pgport=$port
"${asuser[@]}" "$pgbin/initdb" -D "$tmp/pg/data" -U postgres -A trust \
  --no-sync -E UTF8 >"$tmp/initdb.log" 2>&1 || die "initdb failed"
"${asuser[@]}" "$pgbin/pg_ctl" -D "$tmp/pg/data" -l "$tmp/pg/pg.log" -w -t 60 \
  -o "-p $pgport -k $tmp/pg -c listen_addresses=127.0.0.1 -c fsync=off" \
  start >/dev/null || die "pg_ctl start failed"
db="postgresql://postgres@127.0.0.1:$pgport/postgres"
psqlq() { psql -X -q -t -A -F ' ' -d "$db" -c "$1"; }

# ---- NATS -----------------------------------------------------------------
declare -a cport rport hport npid
for i in 1 2 3; do
  free_port; cport[$i]=$port
  free_port; rport[$i]=$port
  free_port; hport[$i]=$port
done
urls="nats://127.0.0.1:${cport[1]},nats://127.0.0.1:${cport[2]},nats://127.0.0.1:${cport[3]}"
start_nats() {
  "$nats" -c "$tmp/n$1.conf" >>"$tmp/n$1.log" 2>&1 &
  npid[$1]=$!
  pids+=($!)
  disown $! # no "Killed" notice from bash when the demo kills it
}
for i in 1 2 3; do
  cat >"$tmp/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:${cport[$i]}
http: 127.0.0.1:${hport[$i]}
jetstream { store_dir: "$tmp/n$i" }
cluster {
  name: weirdemo
  listen: 127.0.0.1:${rport[$i]}
  routes: [nats-route://127.0.0.1:${rport[1]}, nats-route://127.0.0.1:${rport[2]}, nats-route://127.0.0.1:${rport[3]}]
}
EOF
  start_nats $i
done
for _ in $(seq 1 300); do
  leader=$(curl -s "http://127.0.0.1:${hport[1]}/jsz" | sed -n 's/.*"leader": *"\(n[0-9]\)".*/\1/p' | head -n 1 || true)
  [ -n "$leader" ] && break
  sleep 0.1
done
[ -n "$leader" ] || die "the NATS cluster elected no meta leader (logs: $out/logs)"
say "$(el) s  NATS: 3 servers ($urls), meta leader $leader"

# ---- the nodes ------------------------------------------------------------
# start NAME ARGS...: runs a node, waits for its first line, prints its port.
start_node() {
  local name=$1; shift
  "$bin" "$@" --listen 127.0.0.1:0 --no-console >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  eval "pid_$name=$!"
  disown $!
  for _ in $(seq 1 600); do
    p=$(sed -n 's/.*http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$tmp/$name.log" | head -n 1 || true)
    [ -n "$p" ] && { eval "port_$name=$p"; return 0; }
    kill -0 "$(eval echo \$pid_$name)" 2>/dev/null || die "$name exited: $(tail -n 1 "$tmp/$name.log")"
    sleep 0.1
  done
  die "$name printed no port"
}
start_node i1 serve --stream "$urls" --node i1
start_node i2 serve --stream "$urls" --node i2
start_node c1 consume --stream "$urls" --db "$db" --node c1 --lease-ttl-ms "$lease"
start_node c2 consume --stream "$urls" --db "$db" --node c2 --lease-ttl-ms "$lease"
say "$(el) s  ingest nodes i1 :$port_i1, i2 :$port_i2; consumer nodes c1 :$port_c1, c2 :$port_c2 (lease $lease ms)"

# owned NODE: the partitions the node says it owns, "0 3 5".
owned() {
  curl -s -m 2 "http://127.0.0.1:$1/metrics" |
    sed -n 's/^weir_agg_stream_owned{partition="\([0-9]*\)"} 1$/\1/p' | tr '\n' ' ' || true
}
# Spread: all owned, some by each (the first node takes all, then gives
# some back when it sees the second's heartbeat).
for _ in $(seq 1 600); do
  a=$(owned $port_c1 | wc -w); b=$(owned $port_c2 | wc -w)
  [ $((a + b)) -eq $parts ] && [ "$a" -gt 0 ] && [ "$b" -gt 0 ] && break
  sleep 0.1
done
say "$(el) s  partitions: c1 owns [$(owned $port_c1)], c2 owns [$(owned $port_c2)]"

# ---- load through both ingest nodes ---------------------------------------
# `load` numbers its users 0..U-1 and their seqs from 1, so two loads send
# the same events: both nodes publish each with the same message id
# (user:seq) and the stream keeps one. What either node answered 202 must
# be stored once.
half=$((rate / 2))
"$bin" load --url "http://127.0.0.1:$port_i1" --rate $half --secs "$secs" \
  --users 200 --conns 4 --json >"$tmp/load-i1.json" 2>"$tmp/load-i1.err" &
load1=$!
"$bin" load --url "http://127.0.0.1:$port_i2" --rate $half --secs "$secs" \
  --users 200 --conns 4 --json >"$tmp/load-i2.json" 2>"$tmp/load-i2.err" &
load2=$!
pids+=($load1 $load2)
say "$(el) s  load: ${rate} events/s for ${secs} s, half through each ingest node"

sleep $((secs / 4))
victim_parts=$(owned $port_c1)
kill_at=$(psqlq "SELECT clock_timestamp()")
kill -KILL "$pid_c1"
say "$(el) s  SIGKILL consumer c1 (it owned [$victim_parts])"
for _ in $(seq 1 $((lease / 50 + 400))); do
  [ "$(owned $port_c2 | wc -w)" -eq $parts ] && break
  sleep 0.1
done
say "$(el) s  c2 owns [$(owned $port_c2)]"

sleep $((secs / 4))
leader=""
for i in 1 2 3; do
  l=$(curl -s "http://127.0.0.1:${hport[$i]}/jsz?accounts=true&streams=true" |
    tr -d ' \n' | grep -o '"name":"WEIR_EVENTS"[^]]*"cluster":{"name":"[^"]*","leader":"n[0-9]"' |
    grep -o 'n[0-9]"$' | tr -d '"' || true)
  [ "$l" = "n$i" ] && leader=$i
done
[ -n "$leader" ] || die "no leader for WEIR_EVENTS in /jsz"
leader_at=$(psqlq "SELECT clock_timestamp()")
kill -KILL "${npid[$leader]}"
say "$(el) s  SIGKILL NATS server n$leader, leader of stream WEIR_EVENTS"
sleep 3
start_nats "$leader"
say "$(el) s  n$leader restarted"

wait $load1 $load2 || true
acc1=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' "$tmp/load-i1.json")
acc2=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' "$tmp/load-i2.json")
rej1=$(sed -n 's/.*"rejected":\([0-9]*\).*/\1/p' "$tmp/load-i1.json")
rej2=$(sed -n 's/.*"rejected":\([0-9]*\).*/\1/p' "$tmp/load-i2.json")
err1=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$tmp/load-i1.json")
err2=$(sed -n 's/.*"errors":\([0-9]*\).*/\1/p' "$tmp/load-i2.json")
say "$(el) s  load done: i1 accepted ${acc1:-?} (503 ${rej1:-?}, errors ${err1:-?}), i2 accepted ${acc2:-?} (503 ${rej2:-?}, errors ${err2:-?})"

# Drained: the table holds at least what the larger load had acknowledged
# and has stopped growing (or 60 s passed: then the check below says so).
most=$(( ${acc1:-0} > ${acc2:-0} ? ${acc1:-0} : ${acc2:-0} ))
last=-1
for _ in $(seq 1 120); do
  rows=$(psqlq "SELECT count(*) FROM events")
  [ "$rows" -ge "$most" ] && [ "$rows" = "$last" ] && break
  last=$rows
  sleep 0.5
done

# ---- the fail-over, from stream_commits ------------------------------------
say ""
say "fail-over after the SIGKILL of c1 (first commit by another node, per partition):"
psqlq "SELECT partition, node, round(1000 * extract(epoch FROM min(at) - '$kill_at'::timestamptz))
       FROM stream_commits WHERE node <> 'c1' AND at > '$kill_at'
         AND partition IN ($(echo $victim_parts | tr ' ' ','))
       GROUP BY partition, node ORDER BY partition" |
  while read -r p n ms; do say "  partition $p -> $n after $ms ms"; done
gap=$(psqlq "SELECT round(1000 * extract(epoch FROM max(d))) FROM (SELECT at - lag(at)
       OVER (ORDER BY at) AS d FROM stream_commits WHERE at > '$leader_at'::timestamptz - interval '1 second') x")
say "stream leader SIGKILL: longest time without any commit: ${gap:-?} ms"

# ---- verification -----------------------------------------------------------
rows=$(psqlq "SELECT count(*) FROM events")
distinct=$(psqlq "SELECT count(*) FROM (SELECT DISTINCT user_id, seq FROM events) x")
disorder=$(psqlq "SELECT count(*) FROM (SELECT seq <= lag(seq) OVER (PARTITION BY user_id ORDER BY id) AS bad FROM events) x WHERE bad")
gaps=$(psqlq "SELECT coalesce(sum(max_seq - n), 0) FROM (SELECT max(seq) AS max_seq, count(*) AS n FROM events GROUP BY user_id) x")
overlap=$(psqlq "SELECT count(*) FROM (SELECT first_seq <= lag(last_seq) OVER w AS o, lease_rev < lag(lease_rev) OVER w AS r
       FROM stream_commits WINDOW w AS (PARTITION BY partition ORDER BY id)) x WHERE o OR r")
say ""
say "verification ($rows rows):"
ok=1
[ "$rows" = "$distinct" ] && say "  every (user, seq) stored once" ||
  { say "  FAIL: $((rows - distinct)) duplicate rows"; ok=0; }
[ "$disorder" = 0 ] && say "  every user's events in seq order (ORDER BY id)" ||
  { say "  FAIL: $disorder rows out of per-user order"; ok=0; }
unacked=$(( ${rej1:-0} + ${rej2:-0} + ${err1:-0} + ${err2:-0} ))
# A seq missing from a user is an event neither load got a 202 for.
[ "$gaps" -le "$unacked" ] && say "  missing seqs: $gaps, within the $unacked sends answered 503 or not at all" ||
  { say "  FAIL: $gaps seqs missing, but only $unacked sends went unacknowledged"; ok=0; }
[ "$rows" -ge "$most" ] && say "  stored $rows >= $most, the larger load's acknowledged count" ||
  { say "  FAIL: stored $rows < $most acknowledged"; ok=0; }
[ "$overlap" = 0 ] && say "  stream_commits: per partition, lease revisions non-decreasing, ranges disjoint and increasing" ||
  { say "  FAIL: $overlap commits out of order"; ok=0; }

# ---- the chart: stored events/s per node, from stream_commits ---------------
psqlq "SELECT node, floor(extract(epoch FROM at))::bigint, sum(n) FROM stream_commits GROUP BY 1, 2 ORDER BY 2, 1" >"$tmp/rate.txt"
kill_s=$(psqlq "SELECT floor(extract(epoch FROM '$kill_at'::timestamptz))::bigint")
leader_s=$(psqlq "SELECT floor(extract(epoch FROM '$leader_at'::timestamptz))::bigint")
awk -v kill_s="$kill_s" -v leader_s="$leader_s" -v nleader="n$leader" '
  { node[$1] = 1; v[$1 "," $2] = $3; if (!t0 || $2 < t0) t0 = $2; if ($2 > t1) t1 = $2
    if ($3 > ymax) ymax = $3 }
  END {
    W = 760; H = 340; L = 60; R = 130; T = 30; B = 40
    pw = W - L - R; ph = H - T - B
    if (t1 == t0) t1 = t0 + 1
    ymax = ymax < 10 ? 10 : ymax * 1.1
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"18\" font-size=\"14\">Stored events/s per consumer node (from stream_commits)</text>\n", L
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T + ph, L + pw, T + ph
    printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"black\"/>\n", L, T, L, T + ph
    for (k = 0; k <= 4; k++) {
      y = T + ph - k * ph / 4
      printf "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%d</text>\n", L - 5, y + 4, ymax * k / 4
      printf "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"#ddd\"/>\n", L, y, L + pw, y
    }
    for (s = 0; s <= t1 - t0; s += 10)
      printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">%d s</text>\n", L + s * pw / (t1 - t0), T + ph + 16, s
    split("#1f77b4 #d62728 #2ca02c #ff7f0e", col, " ")
    c = 0
    for (n in node) names[++c] = n
    for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (names[j] < names[i]) { x = names[i]; names[i] = names[j]; names[j] = x }
    for (i = 1; i <= c; i++) {
      n = names[i]; pts = ""
      for (t = t0; t <= t1; t++) {
        y = v[n "," t] + 0
        pts = pts sprintf("%.1f,%.1f ", L + (t - t0) * pw / (t1 - t0), T + ph - y * ph / ymax)
      }
      printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"%s\"/>\n", col[(i - 1) % 4 + 1], pts
      printf "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", L + pw + 10, T + 20 * i, col[(i - 1) % 4 + 1], n
    }
    split(kill_s " " leader_s, ev, " "); split("SIGKILL c1|SIGKILL " nleader, lab, "|")
    for (k = 1; k <= 2; k++) if (ev[k] >= t0 && ev[k] <= t1) {
      x = L + (ev[k] - t0) * pw / (t1 - t0)
      printf "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"gray\" stroke-dasharray=\"4 3\"/>\n", x, T, x, T + ph
      printf "<text x=\"%.1f\" y=\"%d\" fill=\"gray\">%s</text>\n", x + 3, T + 12 + 14 * (k - 1), lab[k]
    }
    print "</svg>"
  }' "$tmp/rate.txt" >"$out/stored.svg"
say ""
say "chart: $out/stored.svg; report: $out/report.txt; logs: $out/logs/"
[ $ok = 1 ] || exit 1
