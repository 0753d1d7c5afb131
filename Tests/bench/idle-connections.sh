#!/usr/bin/env bash
# Memory held by idle keep-alive client connections: N clients each make one request through a
# proxied location and then stay connected; lb's RSS is read before and after.
#
#   bash Tests/bench/idle-connections.sh [connections]
#   LB=path/to/lb bash Tests/bench/idle-connections.sh ...   (another lb binary; default: this tree's)
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
W=$(mktemp -d /tmp/lb-idle.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 30000; }
http {
    access_log off;
    keepalive_timeout 300s;
    server { listen 127.0.0.1:18201; location / { return 200 "ok"; } }
}
CONF
"$LB" -p "$W" -c lb.conf & LBPID=$!; PIDS+=($LBPID)
sleep 0.5
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
echo "lb RSS at start: $(rss $LBPID) KiB"
python3 - "$N" "$LBPID" <<'PY'
import asyncio, sys
n, pid = int(sys.argv[1]), sys.argv[2]
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
async def one(conns):
    r, w = await asyncio.open_connection("127.0.0.1", 18201)
    w.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await w.drain()
    data = b""
    while b"\r\n\r\nok" not in data:
        data += await r.read(1024)
    conns.append((r, w))
async def main():
    conns = []
    sem = asyncio.Semaphore(500)
    async def guarded():
        async with sem: await one(conns)
    await asyncio.gather(*[guarded() for _ in range(n)])
    await asyncio.sleep(1)
    kib = rss()
    print(f"{len(conns)} idle keep-alive connections open: lb RSS {kib} KiB ({kib/1024:.1f} MiB)")
    for _, w in conns: w.close()
asyncio.run(main())
PY
