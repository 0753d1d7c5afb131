#!/usr/bin/env bash
# Instructions per request, counted by callgrind: deterministic, so two lb builds can be compared
# on a busy machine where wall-clock rounds are noisy.
#
#   bash Tests/bench/instructions-bench.sh LB_BINARY [LB_BINARY ...]
#   REQS=20000 CASES="proxy100 proxy4k proxy64k static4k cache4k" bash Tests/bench/instructions-bench.sh ...
#
# For every binary and case: lb (one worker, access log off) runs under
# `valgrind --tool=callgrind`; 500 warm-up requests are sent, the counters are zeroed
# (`callgrind_control --zero`), exactly REQS keep-alive requests are sent by fixed-requests.py
# (10 connections, every response checked 200), the counters are dumped (`callgrind_control --dump`)
# and the dump's total Ir divided by REQS is printed. Startup and warm-up are not counted; the
# event loop's own timers are (they are a few thousand instructions a second, noise here).
# Cases: proxy to a keep-alive nginx upstream with 100 B / 4 KiB / 64 KiB bodies, a 4 KiB static
# file, a 4 KiB proxy_cache hit. The dumps stay in OUT (default /tmp/lb-instr) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 LB_BINARY [LB_BINARY ...]"; exit 1; }
REQS=${REQS:-20000}
CASES=${CASES:-"proxy100 proxy4k proxy64k static4k cache4k"}
OUT=${OUT:-/tmp/lb-instr}
for t in nginx valgrind callgrind_control python3; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
mkdir -p "$OUT"
W=$(mktemp -d /tmp/lb-instr.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
CLIENT=$PWD/Tests/bench/fixed-requests.py
mkdir -p "$W/www" "$W/ng"
chmod 755 "$W" "$W/www"   # nginx workers run as nobody
head -c 100 /dev/zero | tr '\0' 'x' > "$W/www/s100"
head -c 4096 /dev/urandom > "$W/www/s4k"
head -c 65536 /dev/urandom > "$W/www/s64k"
cat > "$W/ng/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/ng/pid;
error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; sendfile on;
       add_header Cache-Control "max-age=3600";
       server { listen 127.0.0.1:29201; root $W/www; } }
CONF
nginx -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null & PIDS+=($!)
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; sendfile on; tcp_nopush on;
       proxy_cache_path $W/cache levels=1:2 keys_zone=z:10m max_size=1g;
       upstream app { server 127.0.0.1:29201; keepalive 64; }
       server { listen 127.0.0.1:28401;
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
       server { listen 127.0.0.1:28402; root $W/www; }
       server { listen 127.0.0.1:28403;
                location / { proxy_pass http://app; proxy_cache z; proxy_cache_valid 200 1h;
                             proxy_http_version 1.1; proxy_set_header Connection ""; } } }
CONF
spec() { # case -> "port path"
    case $1 in
        proxy100) echo "28401 /s100" ;; proxy4k) echo "28401 /s4k" ;; proxy64k) echo "28401 /s64k" ;;
        static4k) echo "28402 /s4k" ;; cache4k) echo "28403 /s4k" ;; *) echo "unknown case $1" >&2; exit 1 ;;
    esac
}
total_ir() { awk '/^summary:/ {print $2}' "$1"; }
echo "binary case requests Ir Ir_per_request"
n=0
for bin in "$@"; do
    n=$((n + 1))
    for c in $CASES; do
        set -- $(spec "$c")
        port=$1 path=$2
        rm -rf "$W/cache"
        f="$OUT/callgrind.$n.$c"
        rm -f "$f" "$f".*
        if ss -ltn | grep -q ":$port "; then echo "port $port is already in use" >&2; exit 1; fi
        valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" -p "$W" -c lb.conf 2>"$W/vg.err" & vg=$!; PIDS+=($vg)
        for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port$path" && break; sleep 0.2; done
        python3 "$CLIENT" "$port" "$path" 500 10
        callgrind_control --zero "$vg" >/dev/null 2>&1
        python3 "$CLIENT" "$port" "$path" "$REQS" 10
        callgrind_control --dump="measured" "$vg" >/dev/null 2>&1
        kill "$vg"; wait "$vg" 2>/dev/null || true
        dump="$f.1"   # the first (only) dump: the measured requests; "$f" is the exit dump
        ir=$(total_ir "$dump")
        echo "$bin $c $REQS $ir $((ir / REQS))"
        cp "$dump" "$OUT/measured.$n.$c"
    done
done
