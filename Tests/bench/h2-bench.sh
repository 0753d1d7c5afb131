#!/usr/bin/env bash
# HTTP/2 benchmark: lb vs nginx vs HAProxy with h2 on the front side (TLS 1.3, ALPN h2).
#
#   bash Tests/bench/h2-bench.sh [rounds] [seconds] [connections] [streams]
#   SCENARIOS="ret" bash Tests/bench/h2-bench.sh       # a subset
#   LB=/path/to/lb LB_BASE=/path/to/older/lb bash Tests/bench/h2-bench.sh   # no build; a 4th contender
#
# Scenarios (each server alone on core 1 with one worker and no access log; h2load and the
# backend on core 0; rounds interleaved, each starting one server further on: lb nginx haproxy,
# nginx haproxy lb, ...):
#   ret     `return 200 "ok"`
#   proxy   a 4 KiB response proxied from a plain-HTTP/1.1 backend (kept-alive)
#   static  a 4 KiB file (HAProxy: `http-request return file`, read once at start)
#   cached  the same file with `open_file_cache max=1000;` on lb and nginx (descriptor and
#           metadata kept per worker: the tuned static setup; HAProxy as in `static`)
# h2load -c CONNECTIONS (64) -m STREAMS (10) for SECONDS (6) after a 1-second warm-up.
# CPU per request is the server's utime+stime from /proc/PID/stat over the measured seconds (read
# when the warm-up second ends and when h2load ends), divided by the requests h2load completed:
# when h2load on its core is the limit, both servers reach about the same rate, and the CPU
# each spent per request says which would go further. (Before session 13 the warm-up second and
# the TLS handshakes were in the CPU figure too, about 7/6 of it.) Medians per server at the end.
# Needs: nginx, haproxy, h2load (apt-get install nginx-light haproxy nghttp2-client). Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-6}
CONNS=${3:-64}
STREAMS=${4:-10}
SCENARIOS=${SCENARIOS:-ret proxy static cached}
for t in nginx haproxy h2load taskset openssl curl; do command -v $t >/dev/null || { echo "missing $t: apt-get install nginx-light haproxy nghttp2-client"; exit 1; }; done
if [ -z "${LB:-}" ]; then
    swift build -c release --product lb >/dev/null
    LB=$PWD/.build/release/lb
fi
W=$(mktemp -d /tmp/lb-h2-bench.XXXXXX)
mkdir -p "$W/logs" "$W/nginx-b" "$W/nginx-t" "$W/www"
chmod 755 "$W" "$W/nginx-b" "$W/www"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
ulimit -n 20000 2>/dev/null || true

bash Tests/support/make-test-certs.sh "$W/certs" >/dev/null 2>&1
CRT=$W/certs/a-ec.crt
KEY=$W/certs/a-ec.key
cat "$CRT" "$KEY" > "$W/certs/a-ec.pem"
head -c 4096 /dev/zero | tr '\0' 'x' > "$W/nginx-b/body"
cp "$W/nginx-b/body" "$W/www/body"
chmod 644 "$W/nginx-b/body" "$W/www/body"

# The backend for "proxy": nginx on core 0, a 4 KiB body.
cat > "$W/nginx-b/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx-b/pid;
error_log $W/nginx-b/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
       server { listen 127.0.0.1:19301; location / { default_type text/plain; root $W/nginx-b; try_files /body =404; } } }
CONF
taskset -c 0 nginx -p "$W/nginx-b" -c "$W/nginx-b/nginx.conf" 2>/dev/null & PIDS+=($!)
for i in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:19301/" && break; sleep 0.1; done

# Ports: lb 1850x, nginx 1851x, haproxy 1852x; x = 1 ret, 2 proxy, 3 static, 4 cached.
TLS="ssl_certificate $CRT; ssl_certificate_key $KEY; ssl_protocols TLSv1.3;"
servers() { # base port
    cat <<CONF
    upstream backend { server 127.0.0.1:19301; keepalive 1024; }  # ≥ the 640 streams in flight: HAProxy keeps every idle server connection
    server { listen 127.0.0.1:${1}1 ssl http2; $TLS location / { return 200 "ok"; } }
    server { listen 127.0.0.1:${1}2 ssl http2; $TLS
             location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; } }
    server { listen 127.0.0.1:${1}3 ssl http2; $TLS root $W/www; location / { default_type text/plain; } }
    server { listen 127.0.0.1:${1}4 ssl http2; $TLS root $W/www; open_file_cache max=1000;
             location / { default_type text/plain; } }
CONF
}
printf 'worker_processes 1;\nevents { worker_connections 20000; }\nhttp { access_log off; keepalive_requests 1000000; http2_max_concurrent_streams 128;\n%s\n}\n' "$(servers 1850)" > "$W/lb.conf"
cat > "$W/nginx-t/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $W/nginx-t/pid;
error_log $W/nginx-t/error.log;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000;
$(servers 1851)
}
CONF
cat > "$W/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 8000
    ssl-default-bind-options ssl-min-ver TLSv1.3
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend ret
    bind 127.0.0.1:18521 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    http-request return status 200 content-type text/plain string ok
frontend proxy
    bind 127.0.0.1:18522 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    default_backend b
frontend static
    bind 127.0.0.1:18523 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    http-request return status 200 content-type text/plain file $W/www/body
frontend cached
    bind 127.0.0.1:18524 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    http-request return status 200 content-type text/plain file $W/www/body
backend b
    server s1 127.0.0.1:19301
CONF

taskset -c 1 "$LB" -p "$W" -c lb.conf 2>"$W/lb.err" & LBPID=$!; PIDS+=($LBPID)
taskset -c 1 nginx -p "$W/nginx-t" -c "$W/nginx-t/nginx.conf" 2>/dev/null & NGPID=$!; PIDS+=($NGPID)
taskset -c 1 haproxy -f "$W/haproxy.cfg" 2>"$W/haproxy.err" & HAPID=$!; PIDS+=($HAPID)
CONTENDERS=("lb 1850 $LBPID" "nginx 1851 $NGPID" "haproxy 1852 $HAPID")
if [ -n "${LB_BASE:-}" ]; then
    mkdir -p "$W/base/logs"
    printf 'worker_processes 1;\nevents { worker_connections 20000; }\nhttp { access_log off; keepalive_requests 1000000; http2_max_concurrent_streams 128;\n%s\n}\n' "$(servers 1853)" > "$W/base/lb.conf"
    taskset -c 1 "$LB_BASE" -p "$W/base" -c lb.conf 2>"$W/base.err" & BPID=$!; PIDS+=($BPID)
    CONTENDERS+=("base 1853 $BPID")
fi
for c in "${CONTENDERS[@]}"; do
    set -- $c
    for x in 1 2 3 4; do
        for i in $(seq 1 100); do curl -skf --http2 -o /dev/null "https://127.0.0.1:$2$x/body" && break; sleep 0.1; done
    done
done

cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)
declare -A RESULTS CPUS
for r in $(seq 1 "$ROUNDS"); do
    for s in $SCENARIOS; do
        case $s in ret) x=1 ;; proxy) x=2 ;; static) x=3 ;; cached) x=4 ;; esac
        # Each round starts one contender further on (lb nginx haproxy, then nginx haproxy lb,
        # ...): a slot's own advantage (the one after HAProxy ran faster in session 13) is shared.
        n=${#CONTENDERS[@]}
        for k in $(seq 0 $((n - 1))); do
            c=${CONTENDERS[$(((k + r - 1) % n))]}
            set -- $c
            name=$1 port=$2$x pid=$3
            # CPU over the measured seconds: sampled when the warm-up second ends, and at the end.
            ( sleep 1; cpu "$pid" > "$W/cpu-before" ) & sampler=$!
            out=$(taskset -c 0 h2load -c "$CONNS" -m "$STREAMS" -D "$SECS" --warm-up-time=1 "https://127.0.0.1:$port/body" 2>&1)
            after=$(cpu "$pid")
            wait "$sampler"
            before=$(cat "$W/cpu-before")
            rps=$(echo "$out" | sed -n 's/.*finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p')
            done_=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p')
            failed=$(echo "$out" | sed -n 's/^requests: .* \([0-9]*\) failed.*/\1/p')
            us=$(awk -v c=$((after - before)) -v n="${done_:-1}" -v hz="$HZ" 'BEGIN { printf "%.1f", c / hz * 1e6 / (n > 0 ? n : 1) }')
            printf '%-8s %-7s round %d: %10s req/s  %6s us CPU/request  (%s ok, %s failed)\n' "$name" "$s" "$r" "$rps" "$us" "$done_" "$failed"
            RESULTS[$name.$s]+="$rps "
            CPUS[$name.$s]+="$us "
        done
    done
done
echo
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "medians (req/s, us CPU/request):"
for s in $SCENARIOS; do
    for c in "${CONTENDERS[@]}"; do
        set -- $c
        printf '  %-8s %-7s %10s %6s\n' "$1" "$s" "$(echo "${RESULTS[$1.$s]}" | median)" "$(echo "${CPUS[$1.$s]}" | median)"
    done
done
