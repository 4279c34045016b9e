#!/bin/sh
# bench/cluster.sh: weir-aggregator across a NATS JetStream cluster, beside
# the single-node service, on this one machine.
#
# Starts a private PostgreSQL and three nats-server processes (JetStream,
# R3, file storage) on free loopback ports, then, for each setup, sends
# batches flat out for SECS seconds and waits until every accepted event is
# in PostgreSQL:
#   single node   serve --db postgresql://... (--ack stored)
#   cluster 1     serve --stream + 1 consume node
#   cluster 2     serve --stream + 2 consume nodes
# and prints events stored per second end to end (first request to last
# row), the 202 latency p50/p99 (for the cluster: stored on a majority of
# the stream's servers), each event's latency from acceptance to the commit
# of its row (p50/p99), the time from the end of the load to the last row,
# and CPU-seconds per million events of every process (user + system, from
# /proc), so a reader can project more machines. Medians of ROUNDS rounds.
# Usage: bench/cluster.sh BUILD_DIR [ROUNDS] [SECS]
set -eu
build=${1:-build-release}
rounds=${2:-3}
secs=${3:-5}
bin="$(cd "$build" && pwd)/weir-aggregator"
[ -x "$bin" ] || { echo "cluster.sh: no $bin (build it first)" >&2; exit 1; }
command -v nats-server >/dev/null || { echo "cluster.sh: nats-server missing (scripts/deps.sh bench)" >&2; exit 1; }
pgbin=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
dir=$(mktemp -d)
chmod 755 "$dir"
pids=""
asuser() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
  for p in $pids; do kill -9 "$p" 2>/dev/null || true; done
  asuser "$pgbin/pg_ctl" -D "$dir/pg" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# PostgreSQL, as the postgres user when root.
mkdir -p "$dir/pg"; [ "$(id -u)" = 0 ] && chown postgres "$dir" "$dir/pg"
pgport=$(freeport)
asuser "$pgbin/initdb" -D "$dir/pg" -U postgres -A trust --no-sync >/dev/null
asuser "$pgbin/pg_ctl" -D "$dir/pg" -l "$dir/pg.log" -w -o \
  "-p $pgport -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c track_commit_timestamp=on" start >/dev/null
db="postgresql://postgres@127.0.0.1:$pgport/postgres"
psqlq() { psql -qtA "$db" -c "$1"; }

nats_start() {
  cport1=$(freeport); cport2=$(freeport); cport3=$(freeport)
  r1=$(freeport); r2=$(freeport); r3=$(freeport)
  urls="nats://127.0.0.1:$cport1,nats://127.0.0.1:$cport2,nats://127.0.0.1:$cport3"
  for i in 1 2 3; do
    eval cp=\$cport$i; eval rp=\$r$i
    rm -rf "$dir/js$i"
    cat >"$dir/n$i.conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$cp
jetstream { store_dir: "$dir/js$i" }
cluster { name: bench, listen: 127.0.0.1:$rp,
  routes: [nats-route://127.0.0.1:$r1, nats-route://127.0.0.1:$r2, nats-route://127.0.0.1:$r3] }
EOF
    nats-server -c "$dir/n$i.conf" >"$dir/n$i.log" 2>&1 &
    pids="$pids $!"
    eval npid$i=$!
  done
  sleep 3
}
nats_stop() { kill -9 $npid1 $npid2 $npid3 2>/dev/null || true; wait $npid1 $npid2 $npid3 2>/dev/null || true; }

start() { # out-file args... -> pid in $last, first line in the file
  out=$1; shift
  "$@" >"$out" 2>&1 &
  last=$!; pids="$pids $last"
  for _ in $(seq 300); do [ -s "$out" ] && grep -q "listening on\|consuming as" "$out" && return 0; sleep 0.1; done
  echo "cluster.sh: did not start: $*" >&2; cat "$out" >&2; exit 1
}
cpu() { # pid -> user+system seconds (with its reaped children's)
  awk '{print ($14 + $15 + $16 + $17) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0
}

run() { # setup -> "setup rate p50 p99 drain_s cpu_per_M"
  psqlq "DROP TABLE IF EXISTS events, stream_offsets, stream_commits" >/dev/null 2>&1
  procs=""
  case $1 in
    single)
      start "$dir/s.out" "$bin" serve --listen 127.0.0.1:0 --no-console --db "$db" --partitions 2
      procs="$last" ;;
    cluster*)
      nats_start
      start "$dir/s.out" "$bin" serve --listen 127.0.0.1:0 --no-console --stream "$urls"
      procs="$last $npid1 $npid2 $npid3"
      n=${1#cluster}
      for k in $(seq "$n"); do
        start "$dir/c$k.out" "$bin" consume --no-console --stream "$urls" --db "$db" --node "b$k"
        procs="$procs $last"
      done
      sleep 3 ;;
  esac
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$dir/s.out")
  pgpids=$(head -1 "$dir/pg/postmaster.pid") # its backends, reaped, count in
  ingest=${procs%% *}
  natsp=""; consp=""
  case $1 in cluster*) natsp="$npid1 $npid2 $npid3"; consp=$(echo "$procs" | cut -d' ' -f5-);; esac
  sum() { t=0; for p in "$@"; do t=$(echo "$t + $(cpu "$p")" | bc); done; echo "$t"; }
  cpu_a="$(sum $ingest) $(sum $natsp) $(sum $consp) $(sum $pgpids)"
  c0=0; for p in $procs $pgpids; do c0=$(echo "$c0 + $(cpu "$p")" | bc); done
  t0=$(date +%s.%N)
  "$bin" load --url "http://127.0.0.1:$port" --rate 0 --secs "$secs" --users 100000 \
    --conns 4 --batch 256 --json >"$dir/load.out"
  t1=$(date +%s.%N)
  acc=$(sed -n 's/.*"accepted":\([0-9]*\).*/\1/p' "$dir/load.out" | head -1)
  p50=$(sed -n 's/.*"p50_ms":\([0-9.]*\).*/\1/p' "$dir/load.out" | head -1)
  p99=$(sed -n 's/.*"p99_ms":\([0-9.]*\).*/\1/p' "$dir/load.out" | head -1)
  # Every accepted event has a distinct (user_id, seq) in a fresh stream.
  for _ in $(seq 1200); do
    got=$(psqlq "SELECT count(*) FROM events" 2>/dev/null || echo 0)
    [ "${got:-0}" -ge "$acc" ] && break
    sleep 0.1
  done
  t2=$(date +%s.%N)
  # Accepted-to-stored latency per event: its commit time (the row's
  # transaction, track_commit_timestamp) minus received_at (set when the
  # HTTP front accepted it).
  lat=$(psqlq "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY d)::numeric, 1) || ' ' ||
                      round(percentile_cont(0.99) WITHIN GROUP (ORDER BY d)::numeric, 1)
               FROM (SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) * 1000
                            - received_at / 1000.0 AS d FROM events) x")
  c1=0; for p in $procs $pgpids; do c1=$(echo "$c1 + $(cpu "$p")" | bc); done
  cpu_b="$(sum $ingest) $(sum $natsp) $(sum $consp) $(sum $pgpids)"
  for p in $procs; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ "$1" = single ] || nats_stop
  echo "$1 $acc $got $t0 $t1 $t2 $c0 $c1 $p50 $p99 $lat $cpu_a $cpu_b" | awk '{
    rate = $3 / ($6 - $4); drain = $6 - $5; m = $3 / 1e6; cpum = ($8 - $7) / m;
    printf "%s %.0f %.2f %.2f %.2f %.1f %s %s %.1f %.1f %.1f %.1f\n", $1, rate,
      $9, $10, drain, cpum, $11, $12, ($17 - $13) / m, ($18 - $14) / m,
      ($19 - $15) / m, ($20 - $16) / m }'
}

: >"$dir/all"
for r in $(seq "$rounds"); do
  for s in single cluster1 cluster2; do
    run "$s" | tee -a "$dir/all" | sed "s/^/round $r: /" >&2
  done
done
echo "weir-aggregator on one 2-core machine: batches of 256 on 4 connections, $secs s flat out, medians of $rounds"
printf '%-34s %12s %9s %9s %11s %11s %9s %12s\n' setup "stored ev/s" "202 p50" "202 p99" "stored p50" "stored p99" "drain s" "CPU s / M ev"
for s in single cluster1 cluster2; do
  med() { grep "^$s " "$dir/all" | awk -v c="$1" '{print $c}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  case $s in single) w="single node (PostgreSQL)";; cluster1) w="cluster: 3 NATS, 1 consumer";; *) w="cluster: 3 NATS, 2 consumers";; esac
  printf '%-34s %12s %9s %9s %11s %11s %9s %12s\n' "$w" "$(med 2)" "$(med 3)" "$(med 4)" "$(med 7)" "$(med 8)" "$(med 5)" "$(med 6)"
done
echo
echo "CPU-seconds per million events stored, by role (medians; the single node's"
echo "ingest is the whole service, HTTP to database writes):"
printf '%-34s %9s %13s %15s %11s\n' setup ingest "3 nats-server" "consumer nodes" PostgreSQL
for s in single cluster1 cluster2; do
  med() { grep "^$s " "$dir/all" | awk -v c="$1" '{print $c}' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
  printf '%-34s %9s %13s %15s %11s\n' "$s" "$(med 9)" "$(med 10)" "$(med 11)" "$(med 12)"
done
echo "(202 latency in ms per 256-event request; stored = ms from an event's acceptance to its"
echo " row's commit; drain = end of load to the last row stored;"
echo " CPU = every process of the setup, PostgreSQL included, per million events stored)"
