#!/usr/bin/env bash
# HAProxy's HTTP/2 instructions per request under callgrind: the reference for
# h2-instructions.sh, with the same cases (return 200 "ok", a 4 KiB response proxied from a
# kept-alive nginx, a 4 KiB file), the same load (h2load -c CONNS -m STREAMS, 500 warm-up
# requests not counted) and TLS handshakes left out of the count.
#
#   REQS=20000 PROTOS="h2 h2c" bash Tests/bench/h2-haproxy-instructions.sh
#
# HAProxy runs with one thread (nbthread 1), TLS 1.3, ECDSA P-256, ALPN h2; h2c on `proto h2`
# binds. Dumps stay in OUT (default /tmp/h2-haproxy-instr). Needs valgrind, haproxy, nginx, h2load.
set -euo pipefail
cd "$(dirname "$0")/../.."
REQS=${REQS:-20000}; CONNS=${CONNS:-64}; STREAMS=${STREAMS:-10}
PROTOS=${PROTOS:-"h2 h2c"}
OUT=${OUT:-/tmp/h2-haproxy-instr}; mkdir -p $OUT
W=$(mktemp -d /tmp/h2prof-ha.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www" "$W/ng"; chmod 755 "$W" "$W/www"
head -c 4096 /dev/zero | tr '\0' 'x' > "$W/www/s4k"; chmod 644 "$W/www/s4k"
bash Tests/support/make-test-certs.sh "$W/certs" >/dev/null 2>&1
cat "$W/certs/a-ec.crt" "$W/certs/a-ec.key" > "$W/certs/a-ec.pem"
cat > "$W/ng/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $W/ng/pid; error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
       server { listen 127.0.0.1:29401; default_type text/plain; root $W/www; } }
CONF
nginx -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null & PIDS+=($!)
for _ in $(seq 1 100); do curl -sf -o /dev/null "http://127.0.0.1:29401/s4k" && break; sleep 0.1; done
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
    bind 127.0.0.1:28621 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    bind 127.0.0.1:28611 proto h2
    http-request return status 200 content-type text/plain string ok
frontend proxy
    bind 127.0.0.1:28622 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    bind 127.0.0.1:28612 proto h2
    default_backend b
frontend static
    bind 127.0.0.1:28623 ssl crt $W/certs/a-ec.pem alpn h2,http/1.1
    bind 127.0.0.1:28613 proto h2
    http-request return status 200 content-type text/plain file $W/www/s4k
backend b
    server s1 127.0.0.1:29401
CONF
echo "proto case requests Ir Ir_per_request"
for proto in $PROTOS; do
  for c in ret proxy4k static4k; do
    case $c in ret) x=1;; proxy4k) x=2;; static4k) x=3;; esac
    if [ $proto = h2 ]; then u="https://127.0.0.1:2862$x/s4k"; else u="http://127.0.0.1:2861$x/s4k"; fi
    f=$OUT/callgrind.$proto.$c; rm -f $f $f.*
    valgrind --tool=callgrind ${CALLGRIND_OPTS:-} --toggle-collect=SSL_do_handshake --collect-atstart=yes --callgrind-out-file=$f haproxy -f $W/haproxy.cfg 2>$W/vg.err & vg=$!; PIDS+=($vg)
    for _ in $(seq 1 300); do h2load -n 1 -c 1 "$u" 2>/dev/null | grep -q "1 succeeded" && break; sleep 0.2; done
    h2load -c $CONNS -m $STREAMS -n 500 "$u" >/dev/null 2>&1
    callgrind_control --zero $vg >/dev/null 2>&1
    out=$(h2load -c $CONNS -m $STREAMS -n $REQS "$u" 2>&1)
    ok=$(echo "$out" | sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p')
    callgrind_control --dump=measured $vg >/dev/null 2>&1
    kill $vg; wait $vg 2>/dev/null || true
    ir=$(awk '/^summary:/ {print $2}' $f.1)
    echo "$proto $c $REQS $ir $((ir / REQS)) (2xx: $ok)"
    cp $f.1 $OUT/measured.$proto.$c
  done
done
