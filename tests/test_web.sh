#!/bin/sh
# test_web.sh: `weirctl web` against a live test node (tools/weirctl/testnode.c).
#
#   test_web.sh WEIRCTL TESTNODE http            the HTTP side, with curl
#   test_web.sh WEIRCTL TESTNODE browser DIR     the page in headless chromium,
#                                                driven by playwright-core,
#                                                installed with npm into DIR
#                                                (exit 77 = skipped if
#                                                chromium or npm cannot be had)
#
# The node drowns a process registered as "drowning", crashes "flaky" under
# app_sup every two seconds and runs a partition supervisor "events" whose
# key 42 is hot. Each run has its own run dir and its own port.
set -u
WEIRCTL=$1
NODE=$2
MODE=${3:-http}
DIR=${4:-}
HERE=$(cd "$(dirname "$0")" && pwd)

if [ "$MODE" = browser ]; then
  CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
  if [ ! -x "$CHROMIUM" ]; then
    echo "SKIP: chromium not installed (Debian package chromium; scripts/deps.sh test)"
    exit 77
  fi
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: node/npm not installed (Debian packages nodejs, npm)"
    exit 77
  fi
  mkdir -p "$DIR"
  if [ ! -f "$DIR/node_modules/playwright-core/package.json" ]; then
    if ! PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm install --prefix "$DIR" \
         --no-audit --no-fund --no-save playwright-core@1 >"$DIR/npm.log" 2>&1; then
      echo "SKIP: npm could not install playwright-core (offline?):"
      tail -n 5 "$DIR/npm.log"
      exit 77
    fi
  fi
fi
command -v curl >/dev/null 2>&1 || { echo "SKIP: curl not installed"; exit 77; }

TMP=$(mktemp -d /tmp/weirweb-test.XXXXXX)
export WEIR_RUN_DIR="$TMP/run"
NODEPID=
WEBPID=
WEB2PID=
GARBPID=
cleanup() {
  for p in $WEBPID $WEB2PID $GARBPID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  [ -n "$NODEPID" ] && kill "$NODEPID" 2>/dev/null && wait "$NODEPID" 2>/dev/null
  rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_node() {
  rm -f "$TMP/in" "$TMP/node.out"
  mkfifo "$TMP/in"
  "$NODE" wtest 120 <"$TMP/in" >"$TMP/node.out" 2>"$TMP/node.err" &
  NODEPID=$!
  exec 3>"$TMP/in"
  i=0
  while ! grep -q '^ready ' "$TMP/node.out" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 "$NODEPID" 2>/dev/null; then
      echo "FAIL: test node did not start"; cat "$TMP/node.err"; exit 1
    fi
    sleep 0.1
  done
}
stop_node() { # closing its stdin stops it (every other child was
  exec 3>&-     # started without fd 3, so this is the last writer)
  wait "$NODEPID" || fail "test node exit status"
  NODEPID=
}

# Starts weirctl web with the given arguments on a free port; sets URL.
start_web() {
  PORT=$(free_port)
  "$WEIRCTL" web --listen "127.0.0.1:$PORT" "$@" >"$TMP/web.out" 2>"$TMP/web.err" 3>&- &
  WEBPID=$!
  URL="http://127.0.0.1:$PORT"
  i=0
  until curl -s -o /dev/null "$URL/style.css" -H "Authorization: Bearer ${TOKEN:-}"; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 "$WEBPID" 2>/dev/null; then
      echo "FAIL: weirctl web did not start"; cat "$TMP/web.err"; exit 1
    fi
    sleep 0.1
  done
}

# code METHOD PATH [curl args...]: the HTTP status.
code() {
  m=$1; p=$2; shift 2
  curl -s -o "$TMP/body" -w '%{http_code}' -X "$m" "$@" "$URL$p"
}
expect() { # expect STATUS WHAT METHOD PATH [curl args...]
  want=$1; what=$2; shift 2
  got=$(code "$@")
  [ "$got" = "$want" ] && ok "$what ($got)" || fail "$what: HTTP $got, want $want: $(head -c 300 "$TMP/body")"
}

start_node
start_web

if [ "$MODE" = browser ]; then
  (exec 3>&-; cd "$DIR" && NODE_PATH="$DIR/node_modules" CHROMIUM="$CHROMIUM" \
     node "$HERE/web/browser.js" "$URL/" "$DIR/dashboard.png") || fails=$((fails + 1))
  [ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
  echo "all browser checks passed; screenshot $DIR/dashboard.png"
  exit 0
fi

# The page and its parts, all from the binary.
expect 200 "the page" GET /
grep -q '<script src="app.js"' "$TMP/body" || fail "the page does not load app.js"
expect 200 "app.js" GET /app.js
expect 200 "style.css" GET /style.css
expect 200 "chart.js" GET /chart.js
size=$(wc -c <"$TMP/body")
if [ -f /usr/share/javascript/chart.js/chart.min.js ]; then
  cmp -s "$TMP/body" /usr/share/javascript/chart.js/chart.min.js \
    && ok "chart.js is Debian's ($size bytes)" || fail "chart.js is not Debian's chart.min.js"
fi
grep -q "http" "$TMP/web.out" || fail "no serving line"

# The API relays the node.
expect 200 "nodes" GET /api/nodes
grep -q '"node":"wtest"' "$TMP/body" || fail "nodes lacks wtest: $(cat "$TMP/body")"
expect 200 "top" GET "/api/node/wtest/top?attr=message_queue_len&n=5"
first=$(sed -n 's/^{"processes":\[{"pid":"[^"]*","registered_name":"\([^"]*\)".*/\1/p' "$TMP/body")
[ "$first" = drowning ] && ok "top names drowning first" || fail "top: first is '$first'"
q=$(sed -n 's/^{"processes":\[{[^}]*"message_queue_len":\([0-9]*\).*/\1/p' "$TMP/body")
[ "${q:-0}" -ge 10000 ] 2>/dev/null && ok "drowning's queue $q" || fail "drowning's queue '$q'"
expect 200 "info" GET "/api/node/wtest/info?pid=drowning"
grep -q '"registered_name":"drowning"' "$TMP/body" || fail "info drowning"
expect 200 "tree" GET /api/node/wtest/tree
grep -q '"registered_name":"app_sup","parent":null,"strategy":"one_for_one","max_restarts":100' "$TMP/body" \
  || fail "tree lacks app_sup: $(head -c 300 "$TMP/body")"
expect 200 "partitions" GET "/api/node/wtest/partitions?name=events"
grep -q '"key":42' "$TMP/body" || fail "partitions: hot key 42 missing"
expect 200 "metrics" GET /api/node/wtest/metrics
tail -n 1 "$TMP/body" | grep -q '^# EOF$' || fail "metrics text does not end with # EOF"
expect 200 "scheduler_usage" GET "/api/node/wtest/scheduler_usage?ms=100"
grep -q '"schedulers":\[' "$TMP/body" || fail "scheduler_usage reply"
for c in node_stats alarms crashes help; do
  expect 200 "$c" GET "/api/node/wtest/$c"
done
# A node's own error is relayed as such.
expect 200 "info of no such name: the node's error" GET "/api/node/wtest/info?pid=nosuch"
grep -q "no process registered as 'nosuch'" "$TMP/body" || fail "info nosuch: $(cat "$TMP/body")"

# What is refused.
expect 404 "unknown path" GET /nope
expect 404 "unknown command" GET /api/node/wtest/frobnicate
expect 404 "no traversal" GET /api/node/../etc/passwd
expect 404 "bad node name" GET /api/node/.hidden/node_stats
expect 405 "POST" POST /
expect 405 "PUT on the API" PUT /api/node/wtest/node_stats
expect 405 "DELETE" DELETE /api/nodes
expect 400 "unknown attribute" GET "/api/node/wtest/top?attr=bogus"
expect 400 "n out of range" GET "/api/node/wtest/top?n=100000"
expect 400 "unknown parameter" GET "/api/node/wtest/info?pid=x&rm=1"
expect 400 "a space in a value" GET "/api/node/wtest/info?pid=a%20b"
expect 400 "a newline in a value" GET "/api/node/wtest/info?pid=a%0Anode_stats"
long=$(head -c 3000 /dev/zero | tr '\0' a)
expect 414 "a long URL" GET "/$long"
huge=$(head -c 20000 /dev/zero | tr '\0' a)
got=$(code GET / -H "X-Huge: $huge")
case "$got" in 413|414|431) ok "oversized headers refused ($got)" ;; *) fail "oversized headers: HTTP $got" ;; esac
kill -0 "$WEBPID" && ok "still serving after all that" || fail "weirctl web died"

# A dead node is an error, not a crash; and when it comes back, it is back.
expect 502 "a node that is not running" GET /api/node/ghost/node_stats
grep -q '"error":"node ghost is not running' "$TMP/body" || fail "dead node error: $(cat "$TMP/body")"
stop_node
expect 502 "the node went away" GET /api/node/wtest/node_stats
grep -q '"error"' "$TMP/body" || fail "no error for the stopped node"
start_node
expect 200 "the node came back" GET /api/node/wtest/node_stats
grep -q '"node":"wtest"' "$TMP/body" || fail "node_stats after the restart"

# Garbage from a node: shown as an error (a socket that answers nonsense).
GSOCK="$TMP/garbage.sock"
python3 - "$GSOCK" >"$TMP/garb.out" 2>&1 3>&- <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.listen(8)
s.settimeout(30)
print("up", flush=True)
while True:
    try:
        c, _ = s.accept()
    except socket.timeout:
        break
    try:
        if c.recv(1024):
            c.sendall(b'{"processes": nonsense \x01\n')
    except OSError:
        pass
    c.close()
PY
GARBPID=$!
i=0; until [ -S "$GSOCK" ]; do i=$((i + 1)); [ $i -gt 50 ] && break; sleep 0.1; done
# a second server on the same port fails cleanly
"$WEIRCTL" web --listen "127.0.0.1:$PORT" >/dev/null 2>&1 3>&- &
WEB2PID=$!
wait "$WEB2PID"; rc=$?; WEB2PID=
[ $rc -eq 1 ] && ok "a second server on a taken port exits 1" || fail "taken port: exit $rc"
kill "$WEBPID"; wait "$WEBPID" 2>/dev/null
PORT=$(free_port); URL="http://127.0.0.1:$PORT"
"$WEIRCTL" -s "$GSOCK" web --listen "127.0.0.1:$PORT" >"$TMP/web.out" 2>&1 3>&- &
WEBPID=$!
i=0; until curl -s -o /dev/null "$URL/"; do i=$((i + 1)); [ $i -gt 100 ] && break; sleep 0.1; done
expect 200 "nodes lists the -s socket" GET /api/nodes
grep -q '"node":"garbage"' "$TMP/body" || fail "-s socket not listed: $(cat "$TMP/body")"
expect 502 "garbage from a node" GET /api/node/garbage/node_stats
grep -q '"error":"malformed reply from node garbage' "$TMP/body" && ok "garbage named as such" \
  || fail "garbage: $(cat "$TMP/body")"
expect 502 "garbage in top" GET /api/node/garbage/top
kill -0 "$WEBPID" && ok "still serving after garbage" || fail "weirctl web died on garbage"
kill "$WEBPID"; wait "$WEBPID" 2>/dev/null; WEBPID=
kill "$GARBPID" 2>/dev/null; wait "$GARBPID" 2>/dev/null; GARBPID=

# The token.
"$WEIRCTL" web --listen 0.0.0.0:1 >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q "needs --token FILE" "$TMP/e" && grep -q "ssh -L" "$TMP/e" \
  && ok "a non-loopback address without --token is refused" || fail "0.0.0.0 without token: $(cat "$TMP/e")"
echo short >"$TMP/short"
"$WEIRCTL" web --listen 127.0.0.1:1 --token "$TMP/short" >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && grep -q "16 to 127" "$TMP/e" && ok "a short token is refused" || fail "short token: $(cat "$TMP/e")"
"$WEIRCTL" web --listen 127.0.0.1:1 --token "$TMP/none" >"$TMP/o" 2>"$TMP/e"
[ $? -eq 1 ] && ok "a missing token file is refused" || fail "missing token file"
TOKEN=$(head -c 24 /dev/urandom | base64 | tr -d '/+=')
echo "$TOKEN" >"$TMP/token"
start_web --token "$TMP/token"
expect 401 "no token" GET /api/nodes
expect 401 "no token for the page" GET /
expect 401 "no token, even for a 404" GET /nope
expect 401 "a wrong token" GET /api/nodes -H "Authorization: Bearer x$TOKEN"
expect 401 "a token one byte short" GET /api/nodes -H "Authorization: Bearer ${TOKEN%?}"
expect 401 "a wrong cookie" GET /api/nodes -H "Cookie: weir_token=nope"
expect 200 "the bearer token" GET /api/nodes -H "Authorization: Bearer $TOKEN"
expect 200 "?token= on the page" GET "/?token=$TOKEN" -D "$TMP/headers"
grep -qi "^Set-Cookie: weir_token=$TOKEN; Path=/; HttpOnly; SameSite=Strict" "$TMP/headers" \
  && ok "the page sets the cookie" || fail "no cookie: $(cat "$TMP/headers")"
expect 200 "the cookie" GET /api/node/wtest/node_stats -H "Cookie: weir_token=$TOKEN"
expect 405 "POST with the token" POST /api/nodes -H "Authorization: Bearer $TOKEN"

stop_node
[ $fails -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all web checks passed"
