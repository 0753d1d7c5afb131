#!/usr/bin/env bash
# Store benchmark: redis-benchmark against lb-store and redis-server, same settings (append-only
# file, fsync everysec), both pinned to core 1, the client on core 0, rounds interleaved.
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
taskset -c 1 .build/release/lb-store --port 17001 --dir "$W/lb" --appendfsync everysec 2>/dev/null & PIDS+=($!)
taskset -c 1 redis-server --port 17002 --bind 127.0.0.1 --dir "$W/redis" --appendonly yes --appendfsync everysec --save "" >/dev/null & PIDS+=($!)
sleep 1
for r in $(seq 1 "$ROUNDS"); do
  for P in 1 16; do
    for spec in "lb-store 17001" "redis 17002"; do
      set -- $spec
      taskset -c 0 redis-benchmark -p "$2" -q -n "$N" -P "$P" -t set,get,incr 2>/dev/null | tr '\r' '\n' | grep "requests per second" |
        awk -v r="$r" -v s="$1" -v p="$P" '{sub(":","",$1); print r, p, s, $1, $2}'
    done
  done
done | tee "$W/results.txt"
python3 - "$W/results.txt" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
print("\nmedians (requests per second) and lb-store/redis-server ratio:")
for p in ("1", "16"):
    for t in ("SET", "GET", "INCR"):
        lb = [float(r[4]) for r in rows if r[1] == p and r[2] == "lb-store" and r[3] == t]
        rd = [float(r[4]) for r in rows if r[1] == p and r[2] == "redis" and r[3] == t]
        if lb and rd:
            ratios = [a / b for a, b in zip(lb, rd)]
            print(f"  -P {p:2s} {t:4s}  lb-store {statistics.median(lb):10.0f}  redis-server {statistics.median(rd):10.0f}  ratio {statistics.median(ratios):.2f}")
PY
# The example app's own speed: wrk on lb-app "/" (core 1), wrk on core 0.
taskset -c 1 .build/release/lb-app --port 17011 --name bench --store-port 17001 2>/dev/null & PIDS+=($!)
sleep 0.5
echo
echo "lb-app /:"
for r in $(seq 1 "$ROUNDS"); do taskset -c 0 wrk -t1 -c50 -d5s http://127.0.0.1:17011/ | awk '/Requests\/sec/ {print "  round", r, $2, "req/s"}' r="$r"; done
