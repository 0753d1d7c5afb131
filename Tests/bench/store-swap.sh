#!/usr/bin/env bash
# What replacing lb-store by redis-server costs the stack (docs/scaling.md): the same lb-app
# against each store, both with an append-only file and fsync every second.
#   - /api/count (one INCR per request) through lb-app with wrk, rounds interleaved;
#   - each store's CPU time per request and its memory (VmRSS) idle, after the rounds, and
#     after 100,000 keys of 100 bytes (redis-benchmark SET with random keys).
#
#   bash Tests/bench/store-swap.sh [rounds] [seconds]
#   BIN=path/to/release/dir bash Tests/bench/store-swap.sh 3 5
#
# Needs redis-server, redis-tools (redis-benchmark) and wrk. Traffic stays on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-3}
SECS=${2:-5}
for t in redis-server redis-benchmark wrk; do command -v $t >/dev/null || { echo "missing $t: apt-get install redis-server redis-tools wrk"; exit 1; }; done
if [ -z "${BIN:-}" ]; then
  swift build -c release --product lb-store >/dev/null
  swift build -c release --product lb-app >/dev/null
  BIN=$PWD/.build/release
fi
W=$(mktemp -d /tmp/lb-store-swap.XXXXXX)
PIDS=()
cleanup() { exec 2>/dev/null; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait; rm -rf "$W"; }
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
mkdir -p "$W/lb" "$W/redis"
"$BIN/lb-store" --port 17101 --dir "$W/lb" --appendfsync everysec 2>/dev/null & LS=$!; PIDS+=($LS)
redis-server --port 17102 --bind 127.0.0.1 --dir "$W/redis" --appendonly yes --appendfsync everysec --save "" >/dev/null & RS=$!; PIDS+=($RS)
sleep 0.5
"$BIN/lb-app" --port 17111 --name on-lb-store --store-port 17101 2>/dev/null & PIDS+=($!)
"$BIN/lb-app" --port 17112 --name on-redis --store-port 17102 2>/dev/null & PIDS+=($!)
sleep 0.5
rss() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "idle RSS (KiB): lb-store $(rss $LS), redis-server $(rss $RS)"
for r in $(seq 1 "$ROUNDS"); do
  for spec in "lb-store 17111 $LS" "redis-server 17112 $RS"; do
    set -- $spec
    c0=$(ticks "$3")
    out=$(wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$2/api/count")
    c1=$(ticks "$3")
    rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
    n=$(awk '/requests in/ {print $1}' <<<"$out")
    lat=$(awk '/Latency/ {print $2}' <<<"$out")
    us=$(python3 -c "print(f'{($c1-$c0)*1e6/$(getconf CLK_TCK)/max($n,1):.1f}')")
    echo "round $r: $1: $rps req/s, mean latency $lat, store CPU $us µs per request"
  done
done
echo "RSS after the rounds (KiB): lb-store $(rss $LS), redis-server $(rss $RS)"
for p in 17101 17102; do redis-benchmark -p $p -q -n 200000 -r 100000 -d 100 -P 16 -t set >/dev/null 2>&1; done
echo "RSS with ~100,000 keys of 100 bytes (KiB): lb-store $(rss $LS), redis-server $(rss $RS)"
