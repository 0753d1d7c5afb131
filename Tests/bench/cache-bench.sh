#!/usr/bin/env bash
# Cache hits: wrk fetching a cached 4 KiB and 100 KiB object through lb's proxy_cache and through
# nginx's proxy_cache (same zone settings, same origin), one worker each on core 1, wrk and the
# origin on core 0, rounds interleaved. Each object is fetched once first, so every measured
# request is a HIT (checked: the origin's request count must not move during the rounds). Reports
# req/s and the server's CPU time per request (utime+stime over the run), both same-round ratios.
#
#   bash Tests/bench/cache-bench.sh [rounds] [seconds]
#   LB=path/to/lb LB_BASE=path/to/other/lb SIZES="4096" bash Tests/bench/cache-bench.sh ...
#
# LB: the lb binary (default: this tree's release build). LB_BASE: a second lb binary measured in
# the same rounds as "base", with its own cache (same-round lb/base ratios). SIZES: the objects.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-5}
for t in nginx wrk taskset curl; do command -v $t >/dev/null || { echo "missing $t: apt-get install nginx-light wrk curl"; exit 1; }; done
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
LB_BASE=${LB_BASE:-}
SIZES=${SIZES:-"4096 102400"}
W=$(mktemp -d /tmp/lb-cache.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/ng" "$W/base"
ORIGIN=18310
taskset -c 0 python3 Tests/support/backend.py $ORIGIN origin >/dev/null 2>&1 & PIDS+=($!)
common="proxy_cache_valid 200 1h; proxy_http_version 1.1; proxy_set_header Connection \"\";"
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
       proxy_cache_path $W/lbcache levels=1:2 keys_zone=z:10m max_size=1g;
       upstream origin { server 127.0.0.1:$ORIGIN; keepalive 16; }
       server { listen 127.0.0.1:18311; location / { proxy_pass http://origin; proxy_cache z; $common } } }
CONF
cat > "$W/ng/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $W/ng/pid;
error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; sendfile on;
       client_body_temp_path $W/ng/body; proxy_temp_path $W/ng/proxy;
       proxy_cache_path $W/ngcache levels=1:2 keys_zone=z:10m max_size=1g;
       upstream origin { server 127.0.0.1:$ORIGIN; keepalive 16; }
       server { listen 127.0.0.1:18312; location / { proxy_pass http://origin; proxy_cache z; $common } } }
CONF
taskset -c 1 "$LB" -p "$W" -c lb.conf & LBPID=$!; PIDS+=($LBPID)
taskset -c 1 nginx -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null & NGPID=$!; PIDS+=($NGPID)
SPECS=("lb 18311 $LBPID"); PORTS="18311 18312"
if [ -n "$LB_BASE" ]; then
    sed -e 's/127.0.0.1:18311/127.0.0.1:18313/' -e "s|$W/lbcache|$W/base/lbcache|" "$W/lb.conf" > "$W/base/lb.conf"
    taskset -c 1 "$LB_BASE" -p "$W/base" -c lb.conf & BASEPID=$!; PIDS+=($BASEPID)
    SPECS+=("base 18313 $BASEPID"); PORTS="$PORTS 18313"
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 1
for port in $PORTS; do
  for size in $SIZES; do curl -s -o /dev/null "http://127.0.0.1:$port/gen?size=$size"; done
done
before=$(curl -s "http://127.0.0.1:$ORIGIN/stats")
for r in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    for spec in "${SPECS[@]}" "nginx 18312 $NGPID"; do
      set -- $spec
      t0=$(cpu_ticks "$3")
      rps=$(taskset -c 0 wrk -t1 -c20 -d"${SECS}s" "http://127.0.0.1:$2/gen?size=$size" | awk '/Requests\/sec/ {print $2}')
      t1=$(cpu_ticks "$3")
      cpu=$(python3 -c "print(f'{($t1-$t0)*1e6/$(getconf CLK_TCK)/max(1.0,$rps*$SECS):.1f}')")
      echo "$r $size $1 $rps $cpu"
    done
  done
done | tee "$W/results.txt"
after=$(curl -s "http://127.0.0.1:$ORIGIN/stats")  # (the /stats request itself counts one)
echo "origin before: $before"
echo "origin after:  $after (requests must grow by exactly 1, the /stats call itself: every measured request was a hit)"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("\nmedians:")
for size in sorted({r[1] for r in rows}, key=int):
    lb = [float(r[3]) for r in rows if r[1] == size and r[2] == "lb"]
    ng = [float(r[3]) for r in rows if r[1] == size and r[2] == "nginx"]
    lbc = [float(r[4]) for r in rows if r[1] == size and r[2] == "lb"]
    ngc = [float(r[4]) for r in rows if r[1] == size and r[2] == "nginx"]
    print(f"  {size} B: lb {statistics.median(lb):.0f} req/s ({statistics.median(lbc):.1f} us CPU/req), nginx {statistics.median(ng):.0f} req/s ({statistics.median(ngc):.1f} us CPU/req); "
          f"same-round lb/nginx req/s {statistics.median([a/b for a, b in zip(lb, ng)]):.2f}, nginx/lb CPU per request {statistics.median([b/a for a, b in zip(lbc, ngc)]):.2f}")
    base = [float(r[3]) for r in rows if r[1] == size and r[2] == "base"]
    if base:
        bc = [float(r[4]) for r in rows if r[1] == size and r[2] == "base"]
        print(f"      base {statistics.median(base):.0f} req/s ({statistics.median(bc):.1f} us CPU/req), same-round lb/base req/s {statistics.median([a/b for a, b in zip(lb, base)]):.3f}, CPU/req lb/base {statistics.median([a/b for a, b in zip(lbc, bc)]):.3f}")
PY
