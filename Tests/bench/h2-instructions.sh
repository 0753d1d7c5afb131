#!/usr/bin/env bash
# HTTP/2 instructions per request, counted by callgrind (deterministic: two lb builds compare on
# a busy machine where wall-clock rounds are noisy). The machine-independent side of h2-bench.sh.
#
#   bash Tests/bench/h2-instructions.sh LB_BINARY [LB_BINARY ...]
#   REQS=5000 CASES="ret proxy4k static4k" PROTOS="h2c h2" bash Tests/bench/h2-instructions.sh ...
#
# For every binary, protocol and case: lb (one worker, access log off) runs under
# `valgrind --tool=callgrind`; h2load sends 500 warm-up requests, the counters are zeroed
# (`callgrind_control --zero`), h2load sends exactly REQS requests (-c CONNS (16) -m STREAMS (10),
# every response checked 2xx), the counters are dumped and the dump's total Ir is divided by REQS.
# Protocols: h2c (cleartext, prior knowledge: no OpenSSL in the count) and h2 (TLS 1.3, ALPN,
# ECDSA P-256; h2load opens new connections for the measured run, so CONNS full handshakes are
# in the count, spread over REQS).
# Cases: ret `return 200 "ok"`; proxy4k a 4 KiB response from a kept-alive nginx upstream;
# static4k a 4 KiB file. Dumps stay in OUT (default /tmp/lb-h2-instr) for callgrind_annotate.
# Needs: valgrind, nginx, h2load (nghttp2-client), curl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 LB_BINARY [LB_BINARY ...]"; exit 1; }
REQS=${REQS:-5000}
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-10}
CASES=${CASES:-"ret proxy4k static4k"}
PROTOS=${PROTOS:-"h2c h2"}
OUT=${OUT:-/tmp/lb-h2-instr}
for t in nginx valgrind callgrind_control h2load curl; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
mkdir -p "$OUT"
W=$(mktemp -d /tmp/lb-h2-instr.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www" "$W/ng" "$W/logs"
chmod 755 "$W" "$W/www"   # nginx workers run as nobody
head -c 4096 /dev/zero | tr '\0' 'x' > "$W/www/s4k"
chmod 644 "$W/www/s4k"
bash Tests/support/make-test-certs.sh "$W/certs" >/dev/null 2>&1
CRT=$W/certs/a-ec.crt KEY=$W/certs/a-ec.key
cat > "$W/ng/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/ng/pid;
error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
       server { listen 127.0.0.1:29301; default_type text/plain; root $W/www; } }
CONF
nginx -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:29301/s4k" && break; sleep 0.1; done
TLS="ssl_certificate $CRT; ssl_certificate_key $KEY; ssl_protocols TLSv1.3;"
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; http2_max_concurrent_streams 128;
       upstream app { server 127.0.0.1:29301; keepalive 64; }
       server { listen 127.0.0.1:28511 http2; location / { return 200 "ok"; } }
       server { listen 127.0.0.1:28512 http2;
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
       server { listen 127.0.0.1:28513 http2; default_type text/plain; root $W/www; }
       server { listen 127.0.0.1:28521 ssl http2; $TLS location / { return 200 "ok"; } }
       server { listen 127.0.0.1:28522 ssl http2; $TLS
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
       server { listen 127.0.0.1:28523 ssl http2; $TLS default_type text/plain; root $W/www; } }
CONF
url() { # proto case -> url
    local p=1 s=http
    [ "$1" = h2 ] && p=2 s=https
    case $2 in
        ret) echo "$s://127.0.0.1:285${p}1/s4k" ;; proxy4k) echo "$s://127.0.0.1:285${p}2/s4k" ;;
        static4k) echo "$s://127.0.0.1:285${p}3/s4k" ;; *) echo "unknown case $2" >&2; exit 1 ;;
    esac
}
run_h2load() { # url n
    local out ok
    out=$(h2load -c "$CONNS" -m "$STREAMS" -n "$2" "$1" 2>&1)
    ok=$(echo "$out" | sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p')
    [ "$ok" = "$2" ] || { echo "h2load: $ok of $2 answered 2xx" >&2; echo "$out" >&2; exit 1; }
}
total_ir() { awk '/^summary:/ {print $2}' "$1"; }
echo "binary proto case requests Ir Ir_per_request"
n=0
for bin in "$@"; do
    n=$((n + 1))
    for proto in $PROTOS; do
        for c in $CASES; do
            u=$(url "$proto" "$c")
            f="$OUT/callgrind.$n.$proto.$c"
            rm -f "$f" "$f".*
            valgrind --tool=callgrind --callgrind-out-file="$f" "$bin" -p "$W" -c lb.conf 2>"$W/vg.err" & vg=$!; PIDS+=($vg)
            for _ in $(seq 1 300); do curl -skf --http2-prior-knowledge -o /dev/null "${u/https:/http:}" 2>/dev/null && break
                                      curl -skf --http2 -o /dev/null "$u" 2>/dev/null && break; sleep 0.2; done
            run_h2load "$u" 500
            callgrind_control --zero "$vg" >/dev/null 2>&1
            run_h2load "$u" "$REQS"
            callgrind_control --dump="measured" "$vg" >/dev/null 2>&1
            kill "$vg"; wait "$vg" 2>/dev/null || true
            ir=$(total_ir "$f.1")
            echo "$bin $proto $c $REQS $ir $((ir / REQS))"
            cp "$f.1" "$OUT/measured.$n.$proto.$c"
        done
    done
done
