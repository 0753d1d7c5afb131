#!/usr/bin/env bash
# HTTP/2 instructions per request, counted by callgrind (deterministic: two lb builds compare on
# a busy machine where wall-clock rounds are noisy). The machine-independent side of h2-bench.sh.
#
#   bash Tests/bench/h2-instructions.sh LB_BINARY [LB_BINARY ...]
#   REQS=5000 CASES="ret proxy4k static4k" PROTOS="h2c h2" bash Tests/bench/h2-instructions.sh ...
#   PROTOS="h1 h1s h2c h2" TOOL=strace bash Tests/bench/h2-instructions.sh ...   # syscalls instead
#   python3 Tests/bench/callgrind-groups.py /tmp/lb-h2-instr/measured.1.h2c.ret 5000   # where they went
#
# For every binary, protocol and case: lb (one worker, access log off) runs under
# `valgrind --tool=callgrind`; h2load sends 500 warm-up requests, the counters are zeroed
# (`callgrind_control --zero`), h2load sends exactly REQS requests (-c CONNS (16) -m STREAMS (10),
# every response checked 2xx), the counters are dumped and the dump's total Ir is divided by REQS.
# Protocols: h2c (cleartext, prior knowledge: no OpenSSL in the count) and h2 (TLS 1.3, ALPN,
# ECDSA P-256; h2load opens new connections for the measured run, so CONNS full handshakes are
# in the count, spread over REQS); h1 and h1s are HTTP/1.1 on the same servers and cases, cleartext
# and over TLS (ALPN http/1.1), sent by `h2load --h1` with one request at a time per connection
# (-c CONNS -m 1), the HTTP/1.1 baseline that shows what HTTP/2 adds.
# HANDSHAKES=0 leaves the TLS handshakes out of the count (callgrind --toggle-collect=SSL_do_handshake):
# the per-request cost of a long run, where CONNS handshakes are spread over far more requests.
# TOOL=callgrind (default) counts instructions as above. TOOL=strace runs lb natively on core 1
# (h2load on core 0), attaches `strace -c -f` after the warm-up and prints system calls per
# request (total and the largest). TOOL=cpu runs lb natively the same way and prints the user and
# system CPU microseconds per request from /proc/PID/stat (noisy on a shared machine; the split
# is what it is for).
# CALLGRIND_OPTS: more callgrind options, e.g. CALLGRIND_OPTS=--separate-callers=6 for
# Tests/bench/callgrind-allocs.py (allocations per request by caller).
# Cases: ret `return 200 "ok"`; proxy4k a 4 KiB response from a kept-alive nginx upstream;
# static4k a 4 KiB file. Dumps stay in OUT (default /tmp/lb-h2-instr) for callgrind_annotate.
# STATIC_EXTRA: directives added to lb's static4k servers, e.g. STATIC_EXTRA="open_file_cache max=1000;".
# Needs: valgrind, nginx, h2load (nghttp2-client), curl. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -ge 1 ] || { echo "usage: $0 LB_BINARY [LB_BINARY ...]"; exit 1; }
REQS=${REQS:-5000}
CONNS=${CONNS:-16}
STREAMS=${STREAMS:-10}
CASES=${CASES:-"ret proxy4k static4k"}
PROTOS=${PROTOS:-"h2c h2"}
TOOL=${TOOL:-callgrind}
OUT=${OUT:-/tmp/lb-h2-instr}
[ "${HANDSHAKES:-1}" = 0 ] && toggle="--toggle-collect=SSL_do_handshake --collect-atstart=yes"
case $TOOL in callgrind) need="valgrind callgrind_control" ;; strace) need="strace taskset" ;; cpu) need=taskset ;;
              *) echo "TOOL is callgrind, strace or cpu"; exit 1 ;; esac
for t in nginx h2load curl $need; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
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
       upstream app { server 127.0.0.1:29301; keepalive 1024; }  # ≥ CONNS × STREAMS in flight: no upstream connection churn
       server { listen 127.0.0.1:28511 http2; location / { return 200 "ok"; } }
       server { listen 127.0.0.1:28512 http2;
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
       server { listen 127.0.0.1:28513 http2; default_type text/plain; root $W/www; ${STATIC_EXTRA:-} }
       server { listen 127.0.0.1:28521 ssl http2; $TLS location / { return 200 "ok"; } }
       server { listen 127.0.0.1:28522 ssl http2; $TLS
                location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; } }
       server { listen 127.0.0.1:28523 ssl http2; $TLS default_type text/plain; root $W/www; ${STATIC_EXTRA:-} } }
CONF
url() { # proto case -> url
    local p=1 s=http
    case $1 in h2|h1s) p=2 s=https ;; esac
    case $2 in
        ret) echo "$s://127.0.0.1:285${p}1/s4k" ;; proxy4k) echo "$s://127.0.0.1:285${p}2/s4k" ;;
        static4k) echo "$s://127.0.0.1:285${p}3/s4k" ;; *) echo "unknown case $2" >&2; exit 1 ;;
    esac
}
run_h2load() { # url n
    local out ok pin= opts="-c $CONNS -m $STREAMS"
    case $proto in h1|h1s) opts="--h1 -c $CONNS -m 1" ;; esac
    [ "$TOOL" = callgrind ] || pin="taskset -c 0"
    out=$($pin h2load $opts -n "$2" "$1" 2>&1)
    ok=$(echo "$out" | sed -n 's/^status codes: \([0-9]*\) 2xx.*/\1/p')
    [ "$ok" = "$2" ] || { echo "h2load: $ok of $2 answered 2xx" >&2; echo "$out" >&2; exit 1; }
}
total_ir() { awk '/^summary:/ {print $2}' "$1"; }
wait_up() { # url
    for _ in $(seq 1 300); do curl -skf --http2-prior-knowledge -o /dev/null "${1/https:/http:}" 2>/dev/null && return
                              curl -skf --http2 -o /dev/null "$1" 2>/dev/null && return; sleep 0.2; done
}
cpu() { awk '{print $14, $15}' "/proc/$1/stat"; }
case $TOOL in
    callgrind) echo "binary proto case requests Ir Ir_per_request" ;;
    strace) echo "binary proto case requests syscalls_per_request (the largest calls per request)" ;;
    cpu) echo "binary proto case requests user_us_per_request sys_us_per_request" ;;
esac
n=0
for bin in "$@"; do
    n=$((n + 1))
    for proto in $PROTOS; do
        for c in $CASES; do
            u=$(url "$proto" "$c")
            if [ "$TOOL" != callgrind ]; then
                taskset -c 1 "$bin" -p "$W" -c lb.conf 2>"$W/lb.err" & lb=$!; PIDS+=($lb)
                wait_up "$u"
                run_h2load "$u" 500
                if [ "$TOOL" = strace ]; then
                    strace -c -f -p "$lb" -o "$W/strace.out" 2>/dev/null & st=$!
                    until [ "$(awk '/^TracerPid/ {print $2}' "/proc/$lb/status")" != 0 ]; do sleep 0.05; done
                    run_h2load "$u" "$REQS"
                    kill -INT "$st"; wait "$st" 2>/dev/null || true
                    total=$(awk '$NF == "total" {print $4}' "$W/strace.out")
                    top=$(awk -v n="$REQS" 'NF >= 5 && $NF != "total" && $1 ~ /^[0-9.]+$/ {printf "%s=%.2f\n", $NF, $4 / n}' "$W/strace.out" | sort -t= -k2 -rn | head -7 | tr '\n' ' ')
                    echo "$bin $proto $c $REQS $(awk -v t="$total" -v n="$REQS" 'BEGIN {printf "%.2f", t / n}') ($top)"
                    cp "$W/strace.out" "$OUT/strace.$n.$proto.$c"
                else
                    hz=$(getconf CLK_TCK)
                    set -- $(cpu "$lb"); u0=$1 s0=$2
                    run_h2load "$u" "$REQS"
                    set -- $(cpu "$lb")
                    echo "$bin $proto $c $REQS $(awk -v u=$(($1 - u0)) -v s=$(($2 - s0)) -v n="$REQS" -v hz="$hz" 'BEGIN {printf "%.2f %.2f", u / hz * 1e6 / n, s / hz * 1e6 / n}')"
                fi
                kill "$lb"; wait "$lb" 2>/dev/null || true
                continue
            fi
            f="$OUT/callgrind.$n.$proto.$c"
            rm -f "$f" "$f".*
            valgrind --tool=callgrind ${toggle:-} ${CALLGRIND_OPTS:-} --callgrind-out-file="$f" "$bin" -p "$W" -c lb.conf 2>"$W/vg.err" & vg=$!; PIDS+=($vg)
            wait_up "$u"
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
