#!/usr/bin/env bash
# TLS benchmark: lb vs nginx vs HAProxy terminating HTTPS (TLS 1.3, ECDSA P-256).
#
#   bash Tests/bench/tls-bench.sh [rounds] [seconds] [connections]
#   LB_BASE=/path/to/older/lb bash Tests/bench/tls-bench.sh     # also an older lb, as "lb-base"
#   LB=/path/to/lb bash Tests/bench/tls-bench.sh                 # that lb instead of building one
#   SCENARIOS="ret hs" bash Tests/bench/tls-bench.sh             # a subset
#   STRACE=1 bash Tests/bench/tls-bench.sh 0                     # only syscalls per request (strace -c)
#   KEEPALIVE=32 bash Tests/bench/tls-bench.sh                   # lb's and nginx's upstream pool (default 64)
#
# Scenarios (each server alone on core 1 with one worker and no access log; wrk and the
# backend on core 0; rounds interleaved lb nginx haproxy lb nginx haproxy ...):
#   ret     `return 200 "ok"` over kept-alive HTTPS connections
#   proxy   a 4 KiB response proxied from a plain-HTTP backend (kept-alive both sides), over HTTPS
#   hs      a new connection per request (`Connection: close`): a full TLS 1.3 handshake each
#           (session cache and tickets off on every server, so nothing resumes)
#   plain   `return 200 "ok"` over plain HTTP (the non-TLS path, for regressions)
# CPU per request (or handshake) is the server's utime+stime from /proc/PID/stat over the run,
# divided by the requests wrk completed. Medians per server at the end.
# With STRACE=1, each server's syscalls per request are also counted (strace -c -f attached
# during a 3-second wrk run with 10 connections): unlike the timings, these do not depend on
# what else the machine is doing.
# Needs: nginx, haproxy, wrk, openssl (apt-get install nginx-light haproxy wrk). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-6}
CONNS=${3:-50}
SCENARIOS=${SCENARIOS:-ret proxy hs plain}
for t in nginx haproxy wrk taskset openssl; do command -v $t >/dev/null || { echo "missing $t: apt-get install nginx-light haproxy wrk"; exit 1; }; done
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
W=$(mktemp -d /tmp/lb-tls-bench.XXXXXX)
mkdir -p "$W/logs" "$W/nginx-b" "$W/nginx-t" "$W/base/logs"
chmod 755 "$W" "$W/nginx-b" # nginx workers (nobody) read the backend's body file
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

bash Tests/support/make-test-certs.sh "$W/certs"
CRT=$W/certs/a-ec.crt
KEY=$W/certs/a-ec.key
cat "$CRT" "$KEY" > "$W/certs/a-ec.pem" # HAProxy wants both in one file

# The backend for "proxy": nginx on core 0, a 4 KiB body.
head -c 4096 /dev/zero | tr '\0' 'x' > "$W/nginx-b/body"
cat > "$W/nginx-b/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx-b/pid;
error_log $W/nginx-b/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
       server { listen 127.0.0.1:19201; location / { default_type text/plain; root $W/nginx-b; try_files /body =404; } } }
CONF
taskset -c 0 nginx -p "$W/nginx-b" -c "$W/nginx-b/nginx.conf" 2>/dev/null & PIDS+=($!)
for i in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:19201/" && break; sleep 0.1; done

# Ports: lb 1840x, nginx 1841x, haproxy 1842x, lb-base 1843x; x = 1 ret, 2 proxy, 3 hs, 4 plain.
TLS="ssl_certificate $CRT; ssl_certificate_key $KEY; ssl_protocols TLSv1.3;"
NOSESS="ssl_session_cache off; ssl_session_tickets off;"
# `keepalive 64`: more idle upstream connections than wrk has clients, as HAProxy's `http-reuse
# always` keeps all of them; with fewer, every request past the pool's size opens and closes
# an upstream connection (connect, socket, close: a fifth of lb's CPU at 50 clients and 32).
servers() { # base port
    cat <<CONF
    upstream backend { server 127.0.0.1:19201; keepalive ${KEEPALIVE:-64}; }
    server { listen 127.0.0.1:${1}1 ssl; $TLS location / { return 200 "ok"; } }
    server { listen 127.0.0.1:${1}2 ssl; $TLS
             location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
    server { listen 127.0.0.1:${1}3 ssl; $TLS $NOSESS location / { return 200 "ok"; } }
    server { listen 127.0.0.1:${1}4; location / { return 200 "ok"; } }
CONF
}
lbconf() { # base port
    printf 'worker_processes 1;\nevents { worker_connections 20000; }\nhttp { access_log off; keepalive_requests 1000000;\n%s\n}\n' "$(servers "$1")"
}
lbconf 1840 > "$W/lb.conf"
lbconf 1843 > "$W/base/lb.conf"
cat > "$W/nginx-t/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $W/nginx-t/pid;
error_log $W/nginx-t/error.log;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
$(servers 1841)
}
CONF
cat > "$W/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 8000
    ssl-default-bind-options ssl-min-ver TLSv1.3
    tune.ssl.cachesize 0
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend ret
    bind 127.0.0.1:18421 ssl crt $W/certs/a-ec.pem
    http-request return status 200 content-type text/plain string ok
frontend proxy
    bind 127.0.0.1:18422 ssl crt $W/certs/a-ec.pem
    default_backend b
frontend hs
    bind 127.0.0.1:18423 ssl crt $W/certs/a-ec.pem no-tls-tickets
    http-request return status 200 content-type text/plain string ok
frontend plain
    bind 127.0.0.1:18424
    http-request return status 200 content-type text/plain string ok
backend b
    server s1 127.0.0.1:19201
CONF

taskset -c 1 "$LB" -p "$W" -c lb.conf 2>"$W/lb.err" & LBPID=$!; PIDS+=($LBPID)
taskset -c 1 nginx -p "$W/nginx-t" -c "$W/nginx-t/nginx.conf" 2>/dev/null & NGPID=$!; PIDS+=($NGPID)
taskset -c 1 haproxy -f "$W/haproxy.cfg" 2>"$W/haproxy.err" & HAPID=$!; PIDS+=($HAPID)
CONTENDERS=("lb 1840 $LBPID" "nginx 1841 $NGPID" "haproxy 1842 $HAPID")
if [ -n "${LB_BASE:-}" ]; then
    taskset -c 1 "$LB_BASE" -p "$W/base" -c lb.conf 2>"$W/base.err" & BASEPID=$!; PIDS+=($BASEPID)
    CONTENDERS+=("lb-base 1843 $BASEPID")
fi
for c in "${CONTENDERS[@]}"; do
    set -- $c
    for i in $(seq 1 100); do curl -sfk -o /dev/null "https://127.0.0.1:${2}1/" && break; sleep 0.1; done
    for x in 1 2 3; do curl -sfk -o /dev/null "https://127.0.0.1:$2$x/" || { echo "$1 not answering on $2$x"; curl -sk "https://127.0.0.1:$2$x/" || true; cat "$W"/*.err; exit 1; }; done
    curl -sf -o /dev/null "http://127.0.0.1:${2}4/" || { echo "$1 not answering on ${2}4"; exit 1; }
    # Nothing resumes on the handshake port (the probe offers a ticket it does not have).
done
[ "$(curl -sk -o /dev/null -w '%{size_download}' "https://127.0.0.1:18402/")" = 4096 ] || { echo "proxy body is not 4 KiB"; exit 1; }

run() { # url extra-wrk-args...
    local url=$1; shift
    taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" "$@" "$url" 2>&1
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

echo "scenario round server req/s cpu_us_per_req errors"
for sc in $SCENARIOS; do
    case $sc in
        ret) x=1; scheme=https; args=() ;;
        proxy) x=2; scheme=https; args=() ;;
        hs) x=3; scheme=https; args=(-H "Connection: close") ;;
        plain) x=4; scheme=http; args=() ;;
        *) echo "unknown scenario $sc"; exit 1 ;;
    esac
    for r in $(seq 1 "$ROUNDS"); do
        for c in "${CONTENDERS[@]}"; do
            set -- $c
            t0=$(cpu_ticks "$3")
            out=$(run "$scheme://127.0.0.1:$2$x/" ${args[@]+"${args[@]}"})
            t1=$(cpu_ticks "$3")
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            total=$(echo "$out" | awk '/requests in/ {print $1}')
            errs=$(echo "$out" | grep -E 'Non-2xx|Socket errors' | tr -s ' ' | tr '\n' ';' || true)
            cpu=$(python3 -c "print(f'{($t1-$t0)*1e6/$HZ/max(1,$total):.1f}')")
            echo "$sc $r $1 $rps $cpu ${errs:--}"
        done
    done
done | tee "$W/results.txt"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split(None, 5) for l in open(sys.argv[1]) if not l.startswith("scenario")]
print("\nmedians (req/s, server CPU µs per request):")
for sc in dict.fromkeys(r[0] for r in rows):
    line = []
    for name in dict.fromkeys(r[2] for r in rows):
        rs = [r for r in rows if r[0] == sc and r[2] == name]
        if rs:
            line.append(f"{name} {statistics.median(float(r[3]) for r in rs):8.0f} {statistics.median(float(r[4]) for r in rs):6.1f}µs")
    print(f"  {sc:6s} " + "   ".join(line))
PY

if [ "${STRACE:-0}" = 1 ]; then
    command -v strace >/dev/null || { echo "missing strace"; exit 1; }
    echo
    echo "syscalls per request (strace -c, wrk -c10 -d3s): total, then the busiest"
    for sc in $SCENARIOS; do
        case $sc in
            ret) x=1; scheme=https; args=() ;;
            proxy) x=2; scheme=https; args=() ;;
            hs) x=3; scheme=https; args=(-H "Connection: close") ;;
            plain) x=4; scheme=http; args=() ;;
        esac
        for c in "${CONTENDERS[@]}"; do
            set -- $c
            strace -c -f -p "$3" -o "$W/strace.$1" 2>/dev/null & ST=$!
            sleep 0.5
            out=$(taskset -c 0 wrk -t1 -c10 -d3s ${args[@]+"${args[@]}"} "$scheme://127.0.0.1:$2$x/" 2>&1)
            kill -INT $ST; wait $ST 2>/dev/null || true
            total=$(echo "$out" | awk '/requests in/ {print $1}')
            python3 - "$W/strace.$1" "$total" "$sc" "$1" <<'PY'
import sys
path, n, sc, name = sys.argv[1], max(1, int(sys.argv[2] or 1)), sys.argv[3], sys.argv[4]
calls = {}
for line in open(path):
    f = line.split()
    if len(f) >= 5 and f[3].isdigit() and f[-1] not in ("total", "syscall"):
        calls[f[-1]] = int(f[3])
top = sorted(calls.items(), key=lambda kv: -kv[1])[:5]
print(f"  {sc:6s} {name:8s} {sum(calls.values())/n:5.2f}   " + "  ".join(f"{k} {v/n:.2f}" for k, v in top))
PY
        done
    done
fi
