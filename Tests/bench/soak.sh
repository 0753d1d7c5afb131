#!/usr/bin/env bash
# Soak (issue 17, item 18): lb under MINUTES of mixed traffic while its backends die and come back
# and its configuration is reloaded, checking that no client sees an error lb could have avoided
# and that its memory and descriptor count stay flat.
#
#   bash Tests/bench/soak.sh [MINUTES]        # default 30; LB=path/to/lb to use another build
#
# Setup (all on 127.0.0.1, in a temp dir): four backends (Tests/support/backend.py) in one
# upstream with keepalive; a proxied location, a proxy_cache location (5 s validity), a static
# root and a WebSocket location. Traffic, each bounded in connections and ending at the deadline:
#   - wrk keep-alive bursts (8 connections, 5 s of every 15 s) over static, cached and proxied URLs;
#   - a curl loop, one new connection per request;
#   - Tests/support/soak-clients.py: new-connection GETs, uploads (sha256 checked by the backend),
#     a slow upload, slow readers (static file, cache hit, proxied stream), WebSocket echo
#     sessions, cache MISS/HIT/EXPIRED checks.
# Faults: every 20 s the next backend is killed (SIGKILL) and restarted 8 s later, so at most one
# of four is down and there is always an alternative; every 60 s lb gets SIGHUP (reload) with a
# changed configuration (a response header carries the reload number).
# Expected: zero client errors, except a response already under way from a backend at the moment
# it was killed (nothing can save those; they are counted apart, as "excused"). lb's RSS and open
# descriptors are sampled every 10 s; "flat" means the last sample is within 10% (RSS, plus 4 MiB)
# and 10% (descriptors, plus 20) of the first sample after the one-minute warm-up.
set -euo pipefail
cd "$(dirname "$0")/../.."
MINUTES=${1:-30}
SECS=$(python3 -c "print(int(float('$MINUTES') * 60))")
for t in wrk curl python3; do command -v $t >/dev/null || { echo "missing $t: apt-get install wrk curl python3"; exit 1; }; done
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=.build/release/lb; fi
W=$(mktemp -d /tmp/lb-soak.XXXXXX)
PORT=18450
BPORTS=(18451 18452 18453 18454)
PIDS=()
declare -A BPID
cleanup() {
    for p in "${PIDS[@]}" "${BPID[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${KEEP:-}" ] || rm -rf "$W"
}
trap cleanup EXIT

mkdir -p "$W/www/static" "$W/cache" "$W/body"
echo "small static file" > "$W/www/static/small.txt"
head -c 2097152 /dev/urandom > "$W/www/static/big.bin"

write_config() {  # $1: reload number
    cat > "$W/lb.conf" <<CONF
worker_processes 2;
pid $W/lb.pid;
error_log $W/error.log notice;
events { worker_connections 4096; }
http {
    log_format soak '\$status \$upstream_status \$upstream_cache_status \$request_uri';
    access_log $W/access.log soak;
    keepalive_timeout 30s;
    client_max_body_size 16m;
    client_body_temp_path $W/body;
    proxy_cache_path $W/cache levels=1:2 keys_zone=soak:10m max_size=200m inactive=10m;
    upstream app {
        server 127.0.0.1:${BPORTS[0]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:${BPORTS[1]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:${BPORTS[2]} max_fails=1 fail_timeout=5s;
        server 127.0.0.1:${BPORTS[3]} max_fails=1 fail_timeout=5s;
        keepalive 16;
    }
    server {
        listen 127.0.0.1:$PORT;
        root $W/www;
        add_header X-Reload $1;
        proxy_http_version 1.1;
        proxy_connect_timeout 1s;
        proxy_next_upstream error timeout http_502 http_503 non_idempotent;
        location /static/ { }
        location /app/ {
            proxy_pass http://app/;
            proxy_set_header Connection "";
        }
        location /cached/ {
            proxy_pass http://app/;
            proxy_set_header Connection "";
            proxy_cache soak;
            proxy_cache_use_stale error timeout updating http_502 http_503;
            add_header X-Cache-Status \$upstream_cache_status;
        }
        location /ws {
            proxy_pass http://app;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 60s;
        }
    }
}
CONF
}

wait_port() { for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 never opened"; return 1; }
start_backend() {  # $1: index
    python3 Tests/support/backend.py "${BPORTS[$1]}" "b$1" >/dev/null 2>&1 &
    BPID[$1]=$!
    wait_port "${BPORTS[$1]}"
}
for i in 0 1 2 3; do start_backend $i; done
write_config 0
"$LB" -p "$W" -c "$W/lb.conf" 2>>"$W/lb.stderr" & LBPID=$!; PIDS+=($LBPID)
wait_port $PORT
curl -sf -o /dev/null "http://127.0.0.1:$PORT/static/small.txt"

rss() { awk '/VmRSS/ {print $2}' "/proc/$LBPID/status"; }
fds() { ls "/proc/$LBPID/fd" | wc -l; }
echo "lb $LB (pid $LBPID), $MINUTES min, work dir $W"
echo "idle before traffic: RSS $(rss) KiB, $(fds) descriptors"
START=$(date +%s)
END=$((START + SECS))

# wrk: keep-alive bursts; its summary lines are kept for the report.
cat > "$W/mix.lua" <<'LUA'
local paths = {"/static/small.txt", "/cached/gen?k=w1&cc=max-age%3D5", "/cached/gen?k=w2&cc=max-age%3D5", "/app/w"}
local i = 0
request = function() i = i + 1; return wrk.format("GET", paths[(i % #paths) + 1]) end
LUA
(
    while [ $(($(date +%s) + 5)) -le $END ]; do
        wrk -t1 -c8 -d5s -s "$W/mix.lua" "http://127.0.0.1:$PORT" >> "$W/wrk.out" 2>&1 || echo "wrk exit $?" >> "$W/wrk.out"
        sleep 10
    done
) & WRKLOOP=$!; PIDS+=($WRKLOOP)

# curl: a new connection per request; anything but 200 is an error.
(
    n=0 bad=0
    while [ "$(date +%s)" -lt $END ]; do
        for u in /static/small.txt "/app/c$n" "/cached/gen?k=c$((n % 50))&cc=max-age%3D5"; do
            code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 20 "http://127.0.0.1:$PORT$u" || true)
            n=$((n + 1))
            [ "$code" = 200 ] || { bad=$((bad + 1)); echo "curl $u -> $code" >> "$W/curl.errors"; }
        done
        sleep 0.1
    done
    echo "$n $bad" > "$W/curl.out"
) & CURLLOOP=$!; PIDS+=($CURLLOOP)

python3 Tests/support/soak-clients.py $PORT "$SECS" "$W" > "$W/clients.json" & CLIENTS=$!; PIDS+=($CLIENTS)

# Faults and samples: each at its own next due time.
echo "t_s rss_kib fds" > "$W/samples.txt"
victim=0 down=-1 reloads=0 kills=0
next_sample=$START next_kill=$((START + 10)) restart_at=0 next_reload=$((START + 30))
while [ "$(date +%s)" -lt $END ]; do
    now=$(date +%s)
    if [ "$now" -ge $next_sample ]; then
        echo "$((now - START)) $(rss) $(fds)" >> "$W/samples.txt"; next_sample=$((next_sample + 10))
    fi
    if [ "$now" -ge $next_kill ] && [ $down = -1 ]; then
        # Logged before the kill: a client that sees its tunnel close must find the entry.
        echo "$(date +%s.%N) b$victim" >> "$W/kills.log"
        kill -KILL "${BPID[$victim]}" 2>/dev/null || true
        wait "${BPID[$victim]}" 2>/dev/null || true
        down=$victim restart_at=$((now + 8)) victim=$(((victim + 1) % 4)) kills=$((kills + 1))
        next_kill=$((next_kill + 20))
    fi
    if [ $down != -1 ] && [ "$now" -ge $restart_at ]; then start_backend $down; down=-1; fi
    if [ "$now" -ge $next_reload ]; then
        reloads=$((reloads + 1)); write_config $reloads; kill -HUP $LBPID; next_reload=$((next_reload + 60))
    fi
    sleep 0.5
done
[ $down = -1 ] || start_backend $down
wait $CLIENTS $WRKLOOP $CURLLOOP || true
sleep 2
echo "$(( $(date +%s) - START )) $(rss) $(fds)" >> "$W/samples.txt"
kill -0 $LBPID 2>/dev/null || { echo "lb is not running any more"; cat "$W/lb.stderr"; exit 1; }

echo "== soak: $MINUTES min, $kills backend kills, $reloads reloads"
python3 - "$W" <<'PY'
import json, sys, collections
w = sys.argv[1]
c = json.load(open(f"{w}/clients.json"))
print("clients ok:", json.dumps(c["ok"], sort_keys=True))
print("cache statuses seen:", json.dumps(c["cache_status"], sort_keys=True))
print("excused (response under way when its backend was killed):", json.dumps(c["excused_by_backend_kill"]))
print("client errors:", c["errors"])
for e in c["error_list"]:
    print("   ", e)
n, bad = open(f"{w}/curl.out").read().split()
print(f"curl new-connection requests: {n}, errors: {bad}")
try:
    for l in open(f"{w}/curl.errors").readlines()[:20]: print("   ", l.rstrip())
except FileNotFoundError:
    pass
wrk = open(f"{w}/wrk.out").read()
reqs = sum(int(l.split()[0]) for l in wrk.splitlines() if "requests in" in l)
sock = [l.strip() for l in wrk.splitlines() if "Socket errors" in l or "Non-2xx" in l or "wrk exit" in l]
print(f"wrk keep-alive requests: {reqs}, error lines: {len(sock)}")
for l in sock[:20]: print("   ", l)
status = collections.Counter(l.split()[0] for l in open(f"{w}/access.log"))
print("access log statuses:", dict(sorted(status.items())))
levels = collections.Counter()
for l in open(f"{w}/error.log"):
    for lv in ("[emerg]", "[alert]", "[crit]", "[error]", "[warn]"):
        if lv in l: levels[lv] += 1
print("error log lines by level:", dict(levels))
rows = [list(map(int, l.split())) for l in open(f"{w}/samples.txt").readlines()[1:]]
after = [r for r in rows if r[0] >= 60] or rows
def fmt(i, unit):
    first, last, top = after[0][i], rows[-1][i], max(r[i] for r in rows)
    return first, last, top
r0, r1, rmax = fmt(1, "KiB"); f0, f1, fmax = fmt(2, "")
print(f"RSS KiB: first after warm-up {r0}, last {r1}, max {rmax}; descriptors: first after warm-up {f0}, last {f1}, max {fmax}")
flat_rss = r1 <= r0 * 1.10 + 4096
flat_fd = f1 <= f0 * 1.10 + 20
print("samples (t_s rss_kib fds):", " | ".join(" ".join(map(str, r)) for r in rows))
errors = c["errors"] + int(bad) + len(sock)
print(f"verdict: client errors {errors}, RSS {'flat' if flat_rss else 'GROWING'}, descriptors {'flat' if flat_fd else 'GROWING'}")
sys.exit(0 if errors == 0 and flat_rss and flat_fd else 1)
PY
