#!/bin/sh
# test_aggregator_lingering.sh: every client sees its 413, 431 and 414.
#
# A client that writes its whole request before reading the answer (Python's
# http.client) must get the status and its reason, not "connection reset",
# when the service refuses a body too large (413) or a head too large (431
# for headers, 414 for the URL): the service answers, then lingers, reading
# and discarding, before it closes (docs/AGGREGATOR.md, "Hostile clients").
# curl (which waits for 100-continue on a large body) must see the same.
# Usage: test_aggregator_lingering.sh WEIR_AGGREGATOR_BINARY
set -eu
bin=$1
command -v python3 >/dev/null || { echo "SKIP: python3 not installed"; exit 77; }
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
dir=$(mktemp -d)
out="$dir/serve.out"
"$bin" serve --listen 127.0.0.1:0 --no-console --db "sqlite:$dir/l.db" >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=""
for _ in $(seq 100); do
  port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { echo "FAIL: serve did not start"; cat "$out"; exit 1; }

python3 - "$port" <<'PY'
import http.client, sys
port = int(sys.argv[1])
fails = 0
def expect(what, status, reason, method="POST", url="/track", body=b"", headers=None):
    global fails
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        c.request(method, url, body=body, headers=headers or {})
        r = c.getresponse()
        text = r.read()
        ok = r.status == status and reason.encode() in text
        print("%s: %s %d %s" % ("ok" if ok else "FAIL", what, r.status, text[:70]))
        fails += not ok
    except Exception as e:
        print("FAIL: %s: %r" % (what, e))
        fails += 1
    finally:
        c.close()
big = 8 << 20
expect("python http.client, 8 MiB to /track", 413, "larger than 65536", body=b"x" * big)
expect("python http.client, 9 MiB to /track/batch", 413, "larger than 8388608",
       url="/track/batch", body=b"x" * (big + (1 << 20)))
expect("python http.client, 1 MiB header", 431, "too big",
       body=b"{}", headers={"X-Big": "a" * (1 << 20)})
expect("python http.client, 8 MiB of headers", 431, "too big",
       body=b"{}", headers={"X-H%d" % i: "a" * 1000 for i in range(big // 1000)})
expect("python http.client, 8 MiB URL", 414, "too big",
       url="/track?" + "a" * big, body=b"{}")
# The service is still fine afterwards.
expect("a good event after all that", 202, "accepted",
       body=b'{"user_id":1,"seq":1,"event":"x"}')
sys.exit(1 if fails else 0)
PY

head -c 8388608 /dev/zero >"$dir/big"
st=$(curl -s -o "$dir/body" -w '%{http_code}' -X POST --data-binary @"$dir/big" \
  "http://127.0.0.1:$port/track")
grep -q "larger than 65536" "$dir/body" && [ "$st" = 413 ] ||
  { echo "FAIL: curl 8 MiB: $st $(cat "$dir/body")"; exit 1; }
echo "ok: curl, 8 MiB to /track: 413"
st=$(curl -s -o "$dir/body" -w '%{http_code}' -X POST -H 'Expect:' \
  --data-binary @"$dir/big" "http://127.0.0.1:$port/track")
grep -q "larger than 65536" "$dir/body" && [ "$st" = 413 ] ||
  { echo "FAIL: curl 8 MiB without 100-continue: $st $(cat "$dir/body")"; exit 1; }
echo "ok: curl without Expect: 100-continue, 8 MiB to /track: 413"
python3 -c 'print("X-Big: " + "a" * 100000)' >"$dir/hdr"
st=$(curl -s -o "$dir/body" -w '%{http_code}' -X POST -H @"$dir/hdr" -d '{}' \
  "http://127.0.0.1:$port/track")
[ "$st" = 431 ] || { echo "FAIL: curl 100 KB header: $st"; exit 1; }
echo "ok: curl, 100 KB header: 431"
kill -TERM $pid
wait $pid
