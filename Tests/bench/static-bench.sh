#!/usr/bin/env bash
# Static files: wrk fetching a 4 KiB and a 1 MiB file from lb and from nginx serving the same
# directory, one worker each on core 1, wrk on core 0, rounds interleaved.
#
#   bash Tests/bench/static-bench.sh [rounds] [seconds]
#   LB=path/to/lb LB_BASE=path/to/other/lb bash Tests/bench/static-bench.sh ...
#   EXTRA="open_file_cache max=1000;" bash Tests/bench/static-bench.sh   # the same directives in every server
#
# LB: the lb binary (default: this tree's release build). LB_BASE: a second lb binary measured in
# the same rounds as "base" (same-round lb/base ratio). Each server's CPU time per request
# (utime+stime from /proc) is reported too.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-5}
for t in nginx wrk taskset; do command -v $t >/dev/null || { echo "missing $t: apt-get install nginx-light wrk"; exit 1; }; done
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
LB_BASE=${LB_BASE:-}
W=$(mktemp -d /tmp/lb-static.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/www" "$W/ng" "$W/base"
head -c 4096 /dev/urandom > "$W/www/4k.bin"
head -c 1048576 /dev/urandom > "$W/www/1m.bin"
cat > "$W/lb.conf" <<CONF
worker_processes 1;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
       server { listen 127.0.0.1:18301; root $W/www; ${EXTRA:-} } }
CONF
cat > "$W/ng/nginx.conf" <<CONF
worker_processes 1;
daemon off;
master_process off;
pid $W/ng/pid;
error_log $W/ng/error.log;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
       server { listen 127.0.0.1:18302; root $W/www; ${EXTRA:-} } }
CONF
taskset -c 1 "$LB" -p "$W" -c lb.conf & LBPID=$!; PIDS+=($LBPID)
taskset -c 1 nginx -p "$W/ng" -c "$W/ng/nginx.conf" 2>/dev/null & NGPID=$!; PIDS+=($NGPID)
SPECS=("lb 18301 $LBPID")
if [ -n "$LB_BASE" ]; then
    sed 's/127.0.0.1:18301/127.0.0.1:18303/' "$W/lb.conf" > "$W/base/lb.conf"
    taskset -c 1 "$LB_BASE" -p "$W/base" -c lb.conf & BASEPID=$!; PIDS+=($BASEPID)
    SPECS+=("base 18303 $BASEPID")
fi
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
sleep 1
for r in $(seq 1 "$ROUNDS"); do
  for f in 4k.bin 1m.bin; do
    for spec in "${SPECS[@]}" "nginx 18302 $NGPID"; do
      set -- $spec
      t0=$(cpu_ticks "$3")
      rps=$(taskset -c 0 wrk -t1 -c20 -d"${SECS}s" "http://127.0.0.1:$2/$f" | awk '/Requests\/sec/ {print $2}')
      t1=$(cpu_ticks "$3")
      cpu=$(python3 -c "print(f'{($t1-$t0)*1e6/$(getconf CLK_TCK)/max(1.0,$rps*$SECS):.1f}')")
      echo "$r $f $1 $rps $cpu"
    done
  done
done | tee "$W/results.txt"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("\nmedians:")
for f in ("4k.bin", "1m.bin"):
    lb = [float(r[3]) for r in rows if r[1] == f and r[2] == "lb"]
    ng = [float(r[3]) for r in rows if r[1] == f and r[2] == "nginx"]
    lbc = [float(r[4]) for r in rows if r[1] == f and r[2] == "lb"]
    ngc = [float(r[4]) for r in rows if r[1] == f and r[2] == "nginx"]
    print(f"  {f}: lb {statistics.median(lb):.0f} req/s ({statistics.median(lbc):.1f} us CPU/req), nginx {statistics.median(ng):.0f} req/s ({statistics.median(ngc):.1f} us CPU/req), same-round lb/nginx {statistics.median([a/b for a, b in zip(lb, ng)]):.2f}")
    base = [float(r[3]) for r in rows if r[1] == f and r[2] == "base"]
    if base:
        bc = [float(r[4]) for r in rows if r[1] == f and r[2] == "base"]
        print(f"      base {statistics.median(base):.0f} req/s ({statistics.median(bc):.1f} us CPU/req), same-round lb/base req/s {statistics.median([a/b for a, b in zip(lb, base)]):.3f}, CPU/req lb/base {statistics.median([a/b for a, b in zip(lbc, bc)]):.3f}")
PY
