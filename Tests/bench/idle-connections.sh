#!/usr/bin/env bash
# Memory held by idle keep-alive client connections: N clients each make one request and then stay
# connected; the server's RSS is read before and after.
#
#   bash Tests/bench/idle-connections.sh [connections] [lb|nginx] [http|tls]
#   LB=/path/to/lb bash Tests/bench/idle-connections.sh 10000 lb tls     # another lb build
#
# `nginx` runs Debian's nginx (apt-get install nginx-light) with the same configuration, one
# worker, and reports the worker's RSS (the master's does not change) and the total of both.
# `tls`: HTTPS (HTTP/1.1 over TLS 1.3, ECDSA P-256 certificate from make-test-certs.sh, X25519,
# ALPN http/1.1, the servers' default session settings); each client completes its handshake,
# makes one request and stays connected. Without LB, lb is built (release) and run from .build.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-10000}
SERVER=${2:-lb}
MODE=${3:-http}
PORT=18201
W=$(mktemp -d /tmp/lb-idle.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
ulimit -n 30000 2>/dev/null || true
wait_port() { for _ in $(seq 200); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && return 0; sleep 0.05; done; echo "no listener on $PORT" >&2; exit 1; }
LISTEN="listen 127.0.0.1:$PORT;"
if [ "$MODE" = tls ]; then
    bash Tests/support/make-test-certs.sh "$W/certs"
    LISTEN="listen 127.0.0.1:$PORT ssl; ssl_certificate $W/certs/a-ec.crt; ssl_certificate_key $W/certs/a-ec.key; ssl_protocols TLSv1.3;"
fi
CONF='worker_processes 1;
events { worker_connections 30000; }
http {
    access_log off;
    keepalive_timeout 300s;
    server { '$LISTEN' location / { return 200 "ok"; } }
}'
if [ "$SERVER" = nginx ]; then
    mkdir -p "$W/logs"
    printf '%s\n' "error_log $W/logs/error.log;" "$CONF" > "$W/nginx.conf"
    nginx -p "$W" -c "$W/nginx.conf" -g "daemon off; pid $W/nginx.pid;" & MASTER=$!; PIDS+=($MASTER)
    wait_port
    SERVERPID=$(pgrep -P "$MASTER" | head -1)
    OTHER=$MASTER
else
    if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=.build/release/lb; fi
    printf '%s\n' "$CONF" > "$W/lb.conf"
    "$LB" -p "$W" -c lb.conf & SERVERPID=$!; PIDS+=($SERVERPID)
    wait_port
    OTHER=""
fi
sleep 0.5 # let start-up work (cache loader, log opening) settle before the first reading
echo "$SERVER RSS at start: $(rss $SERVERPID) KiB${OTHER:+ (+ master $(rss $OTHER) KiB)}"
python3 - "$N" "$SERVERPID" "$PORT" "$SERVER" "${OTHER:-0}" "$MODE" <<'PY'
import asyncio, ssl, sys
n, pid, port, name, other, mode = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6]
tls = None
if mode == "tls":
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE # a throwaway certificate; what is measured is the server's memory
    tls.minimum_version = ssl.TLSVersion.TLSv1_3
    tls.set_alpn_protocols(["http/1.1"])
def rss(p):
    for l in open(f"/proc/{p}/status"):
        if l.startswith("VmRSS"): return int(l.split()[1])
async def one(conns):
    r, w = await asyncio.open_connection("127.0.0.1", port, ssl=tls)
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
    kib = rss(pid)
    total = f", total with master {kib + rss(other)} KiB" if other != "0" else ""
    proto = "HTTPS (TLS 1.3)" if tls else "HTTP/1.1"
    print(f"{len(conns)} idle {proto} keep-alive connections open: {name} RSS {kib} KiB ({kib/1024:.1f} MiB){total}")
    for _, w in conns: w.close()
asyncio.run(main())
PY
