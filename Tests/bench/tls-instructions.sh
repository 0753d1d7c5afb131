#!/usr/bin/env bash
# The machine-independent side of the TLS benchmark: user-space instructions per request,
# counted by valgrind's callgrind, for lb, nginx and HAProxy (and an older lb with LB_BASE),
# on the same scenarios as tls-bench.sh. Unlike req/s and CPU time, these counts do not move
# with what else runs on the machine. The kernel's share (syscalls) is what
# `STRACE=1 tls-bench.sh` counts.
#
#   bash Tests/bench/tls-instructions.sh [requests] [handshakes]     # default 2000 and 200
#   LB_BASE=/path/to/older/lb bash Tests/bench/tls-instructions.sh
#   LB=/path/to/lb bash Tests/bench/tls-instructions.sh     # that lb instead of building one
#
# Each server runs under callgrind; after warm-up requests its counters are zeroed
# (callgrind_control -z), curl sends REQUESTS requests, the counters are dumped (-d) and
# divided by REQUESTS. Scenarios: ret (`return 200 "ok"`, one kept-alive HTTPS connection),
# proxy (a 4 KiB response from a plain-HTTP nginx backend, kept alive on both sides, over
# HTTPS), hs (a full TLS 1.3 handshake per request: `Connection: close`, no session reuse),
# plain (`return 200 "ok"` over kept-alive HTTP). TLS 1.3, ECDSA P-256, X25519.
# Needs: valgrind, nginx, haproxy, curl, openssl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-2000}
NHS=${2:-200}
for t in valgrind callgrind_control nginx haproxy curl openssl; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
W=$(mktemp -d /tmp/lb-tls-instr.XXXXXX)
chmod 755 "$W"
PID=
BACKEND=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; [ -n "$BACKEND" ] && kill "$BACKEND" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
bash Tests/support/make-test-certs.sh "$W/certs"
CRT=$W/certs/a-ec.crt KEY=$W/certs/a-ec.key
cat "$CRT" "$KEY" > "$W/certs/a-ec.pem"

TLS="ssl_certificate $CRT; ssl_certificate_key $KEY; ssl_protocols TLSv1.3; ssl_session_cache off; ssl_session_tickets off;"
SERVERS="upstream backend { server 127.0.0.1:18619; keepalive 8; }
    server { listen 127.0.0.1:18611 ssl; $TLS location / { return 200 \"ok\"; } }
    server { listen 127.0.0.1:18612 ssl; $TLS
             location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }
    server { listen 127.0.0.1:18613; location / { return 200 \"ok\"; } }"
mkdir -p "$W/lb/logs" "$W/nginx/logs" "$W/base/logs" "$W/backend"
chmod 755 "$W/backend"
head -c 4096 /dev/zero | tr '\0' 'x' > "$W/backend/body"
cat > "$W/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/backend/pid; error_log $W/backend/error.log;
events {}
http { access_log off; keepalive_requests 1000000;
       server { listen 127.0.0.1:18619; location / { default_type text/plain; root $W/backend; try_files /body =404; } } }
CONF
nginx -p "$W/backend" -c "$W/backend/nginx.conf" 2>/dev/null & BACKEND=$!
for i in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:18619/" && break; sleep 0.1; done
printf 'worker_processes 1;\nevents {}\nhttp { access_log off; keepalive_requests 1000000;\n%s\n}\n' "$SERVERS" > "$W/lb/lb.conf"
cp "$W/lb/lb.conf" "$W/base/lb.conf"
cat > "$W/nginx/nginx.conf" <<CONF
worker_processes 1; daemon off; master_process off; pid $W/nginx/pid; error_log $W/nginx/error.log;
events {}
http { access_log off; keepalive_requests 1000000; $SERVERS }
CONF
cat > "$W/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 1000
    ssl-default-bind-options ssl-min-ver TLSv1.3
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend ret
    bind 127.0.0.1:18611 ssl crt $W/certs/a-ec.pem no-tls-tickets
    http-request return status 200 content-type text/plain string ok
frontend proxy
    bind 127.0.0.1:18612 ssl crt $W/certs/a-ec.pem no-tls-tickets
    default_backend b
frontend plain
    bind 127.0.0.1:18613
    http-request return status 200 content-type text/plain string ok
backend b
    http-reuse always
    server s1 127.0.0.1:18619
CONF

urls() { # scheme port count extra-curl-options-per-url
    for i in $(seq 1 "$3"); do printf 'url = "%s://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$1" "$2"; done
}
urls https 18611 "$N" > "$W/ret.cfg"
urls http 18613 "$N" > "$W/plain.cfg"
urls https 18612 "$N" > "$W/proxy.cfg"
urls https 18611 "$NHS" > "$W/hs.cfg"

measure() { # scenario count curl-args...
    local sc=$1 n=$2; shift 2
    curl -s -k "$@" -K "$W/$sc.cfg" >/dev/null 2>&1 || true # warm-up (buffers, pools, caches)
    callgrind_control -z "$PID" >/dev/null 2>&1
    curl -s -k "$@" -K "$W/$sc.cfg" >/dev/null
    callgrind_control --dump="$sc" "$PID" >/dev/null 2>&1
    local f
    for i in $(seq 1 50); do f=$(ls -t "$W"/cg.out.*.* 2>/dev/null | head -1); [ -n "$f" ] && grep -q '^totals:' "$f" && break; sleep 0.2; done
    awk -v n="$n" '/^totals:/ {print $2 / n; exit}' "$f"
    rm -f "$f"
}

echo "user-space instructions per request (callgrind; $N requests, $NHS handshakes)"
printf '%-8s %12s %12s %12s %12s\n' server ret proxy hs plain
run() { # name command...
    local name=$1; shift
    rm -f "$W"/cg.out.*
    valgrind --tool=callgrind --callgrind-out-file="$W/cg.out.%p" "$@" >"$W/$name.log" 2>&1 & PID=$!
    for i in $(seq 1 300); do curl -sf -o /dev/null "http://127.0.0.1:18613/" && break; sleep 0.2; done
    local ret proxy hs plain
    ret=$(measure ret "$N")
    proxy=$(measure proxy "$N")
    hs=$(measure hs "$NHS" -H "Connection: close" --no-sessionid)
    plain=$(measure plain "$N")
    printf '%-8s %12.0f %12.0f %12.0f %12.0f\n' "$name" "$ret" "$proxy" "$hs" "$plain"
    kill "$PID" 2>/dev/null; wait "$PID" 2>/dev/null || true
    PID=
}
run lb "$LB" -p "$W/lb" -c lb.conf
run nginx nginx -p "$W/nginx" -c "$W/nginx/nginx.conf"
run haproxy haproxy -f "$W/haproxy.cfg"
if [ -n "${LB_BASE:-}" ]; then run lb-base "$LB_BASE" -p "$W/base" -c lb.conf; fi
