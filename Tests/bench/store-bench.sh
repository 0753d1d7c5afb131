#!/usr/bin/env bash
# Store benchmark: redis-benchmark against lb-store and redis-server, same settings (append-only
# file, fsync everysec), both pinned to core 1, the client on core 0, rounds interleaved; reports
# requests per second and each server's CPU time per operation.
#
#   bash Tests/bench/store-bench.sh [rounds] [requests]
#
# Needs redis-server and redis-tools (apt-get install redis-server redis-tools).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
N=${2:-100000}
swift build -c release --product lb-store >/dev/null
swift build -c release --product lb-app >/dev/null
W=$(mktemp -d /tmp/lb-store-bench.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$W"; }
trap cleanup EXIT
mkdir -p "$W/lb" "$W/redis"
taskset -c 1 .build/release/lb-store --port 17001 --dir "$W/lb" --appendfsync everysec 2>/dev/null & LBPID=$!; PIDS+=($LBPID)
taskset -c 1 redis-server --port 17002 --bind 127.0.0.1 --dir "$W/redis" --appendonly yes --appendfsync everysec --save "" >/dev/null & RDPID=$!; PIDS+=($RDPID)
sleep 1
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# One redis-benchmark run per test, so each gets its own CPU figure (server utime+stime per op).
for r in $(seq 1 "$ROUNDS"); do
  for P in 1 16; do
    for t in set get incr; do
      for spec in "lb-store 17001 $LBPID" "redis 17002 $RDPID"; do
        set -- $spec
        t0=$(cpu_ticks "$3")
        rps=$(taskset -c 0 redis-benchmark -p "$2" -q -n "$N" -P "$P" -t "$t" 2>/dev/null | tr '\r' '\n' | grep "requests per second" | awk '{print $2}')
        t1=$(cpu_ticks "$3")
        us=$(python3 -c "print(f'{($t1-$t0)*1e6/$(getconf CLK_TCK)/$N:.2f}')")
        echo "$r $P $1 ${t^^} $rps $us"
      done
    done
  done
done | tee "$W/results.txt"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("\nmedians: requests per second, server CPU per operation, same-round lb-store/redis-server ratios:")
for p in ("1", "16"):
    for t in ("SET", "GET", "INCR"):
        lb = [r for r in rows if r[1] == p and r[2] == "lb-store" and r[3] == t]
        rd = [r for r in rows if r[1] == p and r[2] == "redis" and r[3] == t]
        if lb and rd:
            ratios = [float(a[4]) / float(b[4]) for a, b in zip(lb, rd)]
            cpu = [float(b[5]) / max(0.001, float(a[5])) for a, b in zip(lb, rd)]
            print(f"  -P {p:2s} {t:4s}  lb-store {statistics.median(float(x[4]) for x in lb):9.0f} ({statistics.median(float(x[5]) for x in lb):.2f} us/op)"
                  f"  redis-server {statistics.median(float(x[4]) for x in rd):9.0f} ({statistics.median(float(x[5]) for x in rd):.2f} us/op)"
                  f"  req/s ratio {statistics.median(ratios):.2f}  redis/lb CPU per op {statistics.median(cpu):.2f}")
PY
# The example app's own speed: wrk on lb-app "/" (core 1), wrk on core 0.
taskset -c 1 .build/release/lb-app --port 17011 --name bench --store-port 17001 2>/dev/null & PIDS+=($!)
sleep 0.5
echo
echo "lb-app /:"
for r in $(seq 1 "$ROUNDS"); do taskset -c 0 wrk -t1 -c50 -d5s http://127.0.0.1:17011/ | awk '/Requests\/sec/ {print "  round", r, $2, "req/s"}' r="$r"; done
