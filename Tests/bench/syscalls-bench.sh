#!/usr/bin/env bash
# System calls per request, counted by strace: deterministic where wall-clock rounds on the shared
# 2-core machine are not, and the measure of what the kernel side of a request costs.
#
#   bash Tests/bench/syscalls-bench.sh LB_BINARY [LB_BINARY ...]
#   REQS=20000 CASES="proxy100 static4k" bash Tests/bench/syscalls-bench.sh ...
#
# For every binary and case: lb (one worker, access log off) starts, 500 warm-up requests are
# sent, `strace -c -f -p` attaches, exactly REQS keep-alive requests are sent by
# fixed-requests.py (10 connections, every response checked 200), strace detaches, and the
# calls it counted are printed per request, in total and for the calls that make up the count
# (read, write/writev, sendfile, epoll_wait, ...). Cases as instructions-bench.sh: proxy to a
# keep-alive nginx upstream (100 B), a 4 KiB static file, a 4 KiB proxy_cache hit.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 LB_BINARY [LB_BINARY ...]"; exit 1; }
REQS=${REQS:-20000}
CASES=${CASES:-"proxy100 static4k cache4k"}
for t in nginx strace python3; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
W=$(mktemp -d /tmp/lb-sys.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
CLIENT=$PWD/Tests/bench/fixed-requests.py
mkdir -p "$W/www" "$W/ng"
chmod 755 "$W" "$W/www"
head -c 100 /dev/zero | tr '\0' a > "$W/www/s100"
head -c 4096 /dev/zero | tr '\0' b > "$W/www/s4k"
cat > "$W/ng/nginx.conf" <<CONF
worker_processes 1; daemon off; error_log /dev/null; pid $W/ng/nginx.pid;
events {}
http { access_log off; keepalive_requests 1000000; sendfile on;
       add_header Cache-Control "max-age=3600";
       server { listen 127.0.0.1:29211; root $W/www; } }
CONF
nginx -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null & PIDS+=($!)
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; sendfile on; tcp_nopush on;
       proxy_cache_path $W/cache levels=1:2 keys_zone=z:10m max_size=1g;
       upstream app { server 127.0.0.1:29211; keepalive 64; }
       server { listen 127.0.0.1:28411;
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
       server { listen 127.0.0.1:28412; root $W/www; }
       server { listen 127.0.0.1:28413;
                location / { proxy_pass http://app; proxy_cache z; proxy_cache_valid 200 1h;
                             proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
spec() {
    case $1 in
        proxy100) echo "28411 /s100" ;; static4k) echo "28412 /s4k" ;; cache4k) echo "28413 /s4k" ;;
        *) echo "unknown case $1" >&2; exit 1 ;;
    esac
}
echo "binary case requests syscalls_per_request (per request: the largest calls; reads that heard EAGAIN)"
for bin in "$@"; do
    for c in $CASES; do
        set -- $(spec "$c")
        port=$1 path=$2
        rm -rf "$W/cache"
        if ss -ltn | grep -q ":$port "; then echo "port $port is already in use" >&2; exit 1; fi
        "$bin" -p "$W" -c lb.conf 2>"$W/lb.err" & lb=$!; PIDS+=($lb)
        for _ in $(seq 1 100); do curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.1; done
        python3 "$CLIENT" "$port" "$path" 500 10
        strace -c -f -p "$lb" -o "$W/strace.out" & st=$!
        sleep 1
        python3 "$CLIENT" "$port" "$path" "$REQS" 10
        sleep 0.5
        kill -INT "$st"; wait "$st" 2>/dev/null || true
        kill "$lb"; wait "$lb" 2>/dev/null || true
        total=$(awk '$NF == "total" {print $4}' "$W/strace.out")
        eagain=$(awk '$NF == "read" && NF == 6 {print $5}' "$W/strace.out")
        top=$(awk -v n="$REQS" 'NF >= 5 && $NF != "total" && $1 ~ /^[0-9.]+$/ {calls = $4; printf "%s=%.2f\n", $NF, calls / n}' "$W/strace.out" | sort -t= -k2 -rn | head -6 | tr '\n' ' ')
        echo "$bin $c $REQS $(awk -v t="$total" -v n="$REQS" 'BEGIN {printf "%.2f", t / n}') ($top; failed reads $(awk -v e="${eagain:-0}" -v n="$REQS" 'BEGIN {printf "%.2f", e / n}'))"
    done
done
