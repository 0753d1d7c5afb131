#!/usr/bin/env bash
# Proxy benchmark: wrk through lb, nginx and HAProxy to the same four fast loopback backends.
#
#   bash Tests/bench/proxy-bench.sh [rounds] [seconds] [connections]
#   LB=path/to/lb LB_BASE=path/to/other/lb BODY_SIZE=4096 bash Tests/bench/proxy-bench.sh ...
#
# LB: the lb binary to measure (default: this tree's release build, built first). LB_BASE: a
# second lb binary (e.g. a build of an earlier commit) measured in the same rounds as "base", with
# the lb/base ratio of each round. BODY_SIZE: the backends' response body (default 100 bytes;
# above 1,000 bytes it is a file nginx serves from disk instead of `return 200`).
# QUOTA=40: the proxies under test share a CPU cgroup (v1 `cpu` controller, root) limited to 40%
# of one core, so each is saturated while wrk's core still has room: req/s then compares the
# servers' work per unit of CPU directly (without QUOTA the load core is usually the limit).
#
# The proxy under test runs on core 1 with one worker; wrk and the backends share core 0.
# Rounds are interleaved (lb nginx haproxy lb nginx haproxy ...); the summary gives medians and
# the lb/nginx and lb/haproxy ratios of each round. Needs: nginx, haproxy, wrk
# (apt-get install nginx-light haproxy wrk). Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-5}
SECS=${2:-8}
CONNS=${3:-50}
for t in nginx haproxy wrk taskset; do command -v $t >/dev/null || { echo "missing $t: apt-get install nginx-light haproxy wrk"; exit 1; }; done
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
LB_BASE=${LB_BASE:-}
BODY_SIZE=${BODY_SIZE:-100}
W=$(mktemp -d /tmp/lb-bench.XXXXXX)
mkdir -p "$W/logs" "$W/nginx-b" "$W/nginx-p" "$W/www" "$W/base/logs"
chmod 755 "$W" "$W/www"   # nginx workers run as nobody
PIDS=()
CG=/sys/fs/cgroup/cpu/lb-bench-$$
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -d "$CG" ] && rmdir "$CG" 2>/dev/null || true
    rm -rf "$W"
}
trap cleanup EXIT

BODY=$(head -c "$BODY_SIZE" /dev/zero | tr '\0' 'x')
if [ "$BODY_SIZE" -le 1000 ]; then BACKEND="return 200 \"$BODY\";"; URLPATH=/
else printf '%s' "$BODY" > "$W/www/body"; BACKEND="root $W/www;"; URLPATH=/body; fi
# Backends: one nginx, four ports, pinned to core 0.
cat > "$W/nginx-b/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $W/nginx-b/pid;
error_log $W/nginx-b/error.log;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 1000000;
    server { listen 127.0.0.1:19101; listen 127.0.0.1:19102; listen 127.0.0.1:19103; listen 127.0.0.1:19104;
             location / { $BACKEND } }
}
CONF
taskset -c 0 nginx -p "$W/nginx-b" -c "$W/nginx-b/nginx.conf" 2>/dev/null & PIDS+=($!)

UPSTREAM='upstream app { server 127.0.0.1:19101; server 127.0.0.1:19102; server 127.0.0.1:19103; server 127.0.0.1:19104; keepalive 64; }'
LOC='location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }'
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; $UPSTREAM
       server { listen 127.0.0.1:18001; $LOC } }
CONF
cat > "$W/nginx-p/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $W/nginx-p/pid;
error_log $W/nginx-p/error.log;
events { worker_connections 20000; }
http { access_log off; keepalive_requests 1000000; $UPSTREAM
       server { listen 127.0.0.1:18002; $LOC } }
CONF
cat > "$W/haproxy.cfg" <<CONF
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend f
    bind 127.0.0.1:18003
    default_backend b
backend b
    balance roundrobin
    server s1 127.0.0.1:19101
    server s2 127.0.0.1:19102
    server s3 127.0.0.1:19103
    server s4 127.0.0.1:19104
CONF
ulimit -n 20000 2>/dev/null || true
taskset -c 1 "$LB" -p "$W" -c lb.conf 2>"$W/lb.err" & LBPID=$!; PIDS+=($LBPID)
SPECS=("lb 18001 $LBPID")
if [ -n "$LB_BASE" ]; then
    sed 's/127.0.0.1:18001/127.0.0.1:18004/' "$W/lb.conf" > "$W/base/lb.conf"
    taskset -c 1 "$LB_BASE" -p "$W/base" -c lb.conf 2>"$W/base.err" & BASEPID=$!; PIDS+=($BASEPID)
    SPECS+=("base 18004 $BASEPID")
fi
taskset -c 1 nginx -p "$W/nginx-p" -c "$W/nginx-p/nginx.conf" 2>/dev/null & NGPID=$!; PIDS+=($NGPID)
taskset -c 1 haproxy -f "$W/haproxy.cfg" 2>/dev/null & HAPID=$!; PIDS+=($HAPID)
sleep 1
if [ -n "${QUOTA:-}" ]; then
    mkdir "$CG" || { echo "QUOTA needs a writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu"; exit 1; }
    cat /sys/fs/cgroup/cpu/cpu.cfs_period_us > "$CG/cpu.cfs_period_us"
    echo $(( $(cat "$CG/cpu.cfs_period_us") * QUOTA / 100 )) > "$CG/cpu.cfs_quota_us"
    for spec in "${SPECS[@]}" "nginx 0 $NGPID" "haproxy 0 $HAPID"; do set -- $spec; echo "$3" > "$CG/cgroup.procs"; done
    echo "proxies limited to $QUOTA% of core 1 (cgroup $CG)"
fi
for port in 18001 18002 18003 ${LB_BASE:+18004}; do curl -sf -o /dev/null "http://127.0.0.1:$port$URLPATH" || { echo "proxy on $port not answering"; cat "$W/lb.err"; exit 1; }; done

run() { # name port
    local out
    out=$(taskset -c 0 wrk -t1 -c"$CONNS" -d"${SECS}s" --latency "http://127.0.0.1:$2$URLPATH" 2>&1)
    local rps p50 p99
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1=="50%" {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    if echo "$out" | grep -q "Non-2xx\|Socket errors"; then echo "$1: $(echo "$out" | grep -E 'Non-2xx|Socket errors')" >&2; fi
    echo "$1 $rps $p50 $p99"
}
cpu_ticks() { # utime+stime of a process and its threads, in clock ticks
    awk '{print $14 + $15}' "/proc/$1/stat"
}
echo "round proxy req/s p50 p99 rss_kib cpu_us_per_req"
for r in $(seq 1 "$ROUNDS"); do
    for spec in "${SPECS[@]}" "nginx 18002 $NGPID" "haproxy 18003 $HAPID"; do
        set -- $spec
        t0=$(cpu_ticks "$3")
        line=$(run "$1" "$2")
        t1=$(cpu_ticks "$3")
        rss=$(ps -o rss= -p "$3" | tr -d ' ')
        rps=$(echo "$line" | awk '{print $2}')
        cpu=$(python3 -c "print(f'{($t1-$t0)*1e6/$(getconf CLK_TCK)/max(1.0,$rps*$SECS):.1f}')")
        echo "$r $line $rss $cpu"
    done
done | tee "$W/results.txt"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l[0].isdigit()]
by = {}
for r in rows: by.setdefault(r[1], []).append(r)
def ms(v): return float(v[:-2]) if v.endswith("ms") else float(v[:-2]) / 1000 if v.endswith("us") else float(v[:-1]) * 1000
print("\nmedians:")
for name, rs in by.items():
    print(f"  {name:8s} {statistics.median(float(r[2]) for r in rs):10.0f} req/s  p50 {statistics.median(ms(r[3]) for r in rs):.3f} ms  p99 {statistics.median(ms(r[4]) for r in rs):.3f} ms  rss {statistics.median(int(r[5]) for r in rs)} KiB  cpu {statistics.median(float(r[6]) for r in rs):.1f} us/req")
rounds = sorted(set(r[0] for r in rows))
def ratio(a, b):
    vals = []
    for k in rounds:
        x = [float(r[2]) for r in rows if r[0] == k and r[1] == a]
        y = [float(r[2]) for r in rows if r[0] == k and r[1] == b]
        if x and y: vals.append(x[0] / y[0])
    return vals
pairs = [("lb", "nginx"), ("lb", "haproxy")]
if "base" in by: pairs = [("lb", "base")] + pairs + [("base", "nginx"), ("base", "haproxy")]
for a, b in pairs:
    v = ratio(a, b)
    print(f"  {a}/{b}: median {statistics.median(v):.2f}  per round {' '.join(f'{x:.2f}' for x in v)}")
def cpu_ratio(a, b):
    vals = []
    for k in rounds:
        x = [float(r[6]) for r in rows if r[0] == k and r[1] == a]
        y = [float(r[6]) for r in rows if r[0] == k and r[1] == b]
        if x and y and y[0] > 0: vals.append(x[0] / y[0])
    return vals
if "base" in by:
    v = cpu_ratio("lb", "base")
    print(f"  CPU per request lb/base: median {statistics.median(v):.3f}  per round {' '.join(f'{x:.3f}' for x in v)}")
PY
