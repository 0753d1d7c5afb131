#!/usr/bin/env bash
# Memory held by idle HTTP/2 connections (cleartext, prior knowledge): N clients each make one
# request on stream 1 and then stay
# connected; the server's RSS is read before and after. (idle-connections.sh: the same for HTTP/1.1.)
#
#   bash Tests/bench/h2-idle-connections.sh [connections] [lb|nginx]
#
# `nginx` runs Debian's nginx (apt-get install nginx-light) with the same configuration, one
# worker, and reports the worker's RSS (the master's does not change) and the total of both.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
SERVER=${2:-lb}
PORT=18211
W=$(mktemp -d /tmp/lb-h2-idle.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $PORT" >&2; exit 1; }
CONF='worker_processes 1;
events { worker_connections 30000; }
http {
    access_log off;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:'$PORT' http2; location / { return 200 "ok"; } }
}'
if [ "$SERVER" = nginx ]; then
    mkdir -p "$W/logs"
    printf '%s\n' "error_log $W/logs/error.log;" "$CONF" > "$W/nginx.conf"
    nginx -p "$W" -c "$W/nginx.conf" -g "daemon off; pid $W/nginx.pid;" & MASTER=$!; PIDS+=($MASTER)
    wait_port
    SERVERPID=$(pgrep -P "$MASTER" | head -1)
    OTHER=$MASTER
else
    swift build -c release --product lb >/dev/null
    printf '%s\n' "$CONF" > "$W/lb.conf"
    .build/release/lb -p "$W" -c lb.conf & SERVERPID=$!; PIDS+=($SERVERPID)
    wait_port
    OTHER=""
fi
sleep 0.5 # let start-up work (cache loader, log opening) settle before the first reading
echo "$SERVER RSS at start: $(rss $SERVERPID) KiB${OTHER:+ (+ master $(rss $OTHER) KiB)}"
python3 - "$N" "$SERVERPID" "$PORT" "$SERVER" "${OTHER:-0}" <<'PY'
import asyncio, sys
n, pid, port, name, other = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
def rss(p):
    for l in open(f"/proc/{p}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
async def one(conns):
    r, w = await asyncio.open_connection("127.0.0.1", port)
    # Preface, empty SETTINGS, SETTINGS ACK, HEADERS on stream 1 (END_STREAM|END_HEADERS):
    # :method GET, :path /, :scheme http (static table), :authority x (literal).
    w.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\0\0\0\x04\0\0\0\0\0" + b"\0\0\0\x04\x01\0\0\0\0"
            + b"\0\0\x06\x01\x05\0\0\0\x01" + b"\x82\x84\x86\x41\x01x")
    await w.drain()
    data = b""
    while not data.endswith(b"ok"):
        data += await r.read(1024)
    conns.append((r, w))
async def main():
    conns = []
    sem = asyncio.Semaphore(500)
    async def guarded():
        async with sem: await one(conns)
    await asyncio.gather(*[guarded() for _ in range(n)])
    await asyncio.sleep(1)
    kib = rss(pid)
    total = f", total with master {kib + rss(other)} KiB" if other != "0" else ""
    print(f"{len(conns)} idle HTTP/2 connections open: {name} RSS {kib} KiB ({kib/1024:.1f} MiB){total}")
    for _, w in conns: w.close()
asyncio.run(main())
PY
