#!/usr/bin/env bash
# DNS scale: one upstream of MEMBERS members found through DNS (`server NAME resolve`), served by
# Debian's dnsmasq from a hosts file. Reports
#   - the time from lb's start until every member is in (from the error log's "added" lines),
#   - lb's memory (VmRSS) with those members, against the same lb with one static member,
#   - the time from a DNS change (hosts file rewritten, SIGHUP to dnsmasq) until lb has applied it
#     (the "added"/"removed" line appears in the error log; polled every 5 ms),
#   - requests/s through lb with wrk and lb's CPU time per request, without changes and while
#     changes stream in (every CHANGE_MS, ROTATE members of one name replaced by new addresses),
#   - memory again after the stream of changes.
#
#   bash Tests/bench/dns-scale.sh [members] [seconds]
#   LB=path/to/lb CHANGE_MS=500 ROTATE=100 bash Tests/bench/dns-scale.sh 10000 10
#
# A DNS message holds at most 64 KiB, about 4,000 A records of one name, so the members are
# spread over several names of PER_NAME (default 2,500) records each, one `server … resolve` line
# per name (answers of that size come over TCP after a truncated UDP answer).
#
# Runs as root inside its own network namespace (loopback only: nothing can leave the machine);
# every address of 127.0.0.0/8 reaches the one backend (a second lb answering `return 200`),
# which listens on the namespace's 0.0.0.0. Needs: dnsmasq (dnsmasq-base), wrk, iproute2; dig
# (dnsutils) to tell dnsmasq's own delay from lb's.
set -euo pipefail
cd "$(dirname "$0")/../.."
MEMBERS=${1:-10000}
SECS=${2:-10}
PER_NAME=${PER_NAME:-2500}
CHANGE_MS=${CHANGE_MS:-500}
ROTATE=${ROTATE:-100}
[ "$(id -u)" = 0 ] || { echo "dns-scale.sh needs root (it runs in its own network namespace)"; exit 1; }
for t in wrk ip python3; do command -v $t >/dev/null || { echo "missing $t"; exit 1; }; done
[ -x /usr/sbin/dnsmasq ] || { echo "missing /usr/sbin/dnsmasq: apt-get install dnsmasq-base"; exit 1; }
if [ -z "${LB:-}" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi

NS=lbdns$$
W=$(mktemp -d /tmp/lb-dns-scale.XXXXXX)
chmod 755 "$W"   # dnsmasq drops to nobody and must read the hosts file
PIDS=()
cleanup() {
  exec 2>/dev/null   # no job-status lines for the processes killed here
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
X() { ip netns exec "$NS" "$@"; }
now_ms() { date +%s%3N; }
# A process's resident memory with its children's (lb may fork workers), in KiB.
rss_kb() { local t=0 p; for p in $1 $(pgrep -P "$1" || true); do t=$((t + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status"))); done; echo $t; }
NAMES=$(( (MEMBERS + PER_NAME - 1) / PER_NAME ))

# hosts file: member i is 127.(1 + i/65536).(i/256 % 256).(i % 256) in name m(i / PER_NAME).test;
# generation G of the rotating window uses 127.200+.x.y instead.
write_hosts() { # $1: generation of the rotated window (0: none rotated)
  python3 - "$MEMBERS" "$PER_NAME" "$ROTATE" "$1" "$W/hosts.new" <<'PY'
import sys
members, per, rotate, gen, path = map(str, sys.argv[1:6])
members, per, rotate, gen = int(members), int(per), int(rotate), int(gen)
with open(path, "w") as f:
    for i in range(members):
        if gen and i < rotate:
            j = gen * rotate + i
            a = f"127.{200 + j // 65536}.{j // 256 % 256}.{j % 256}"
        else:
            a = f"127.{1 + i // 65536}.{i // 256 % 256}.{i % 256}"
        f.write(f"{a} m{i // per}.test\n")
PY
  chmod 644 "$W/hosts.new"
  mv "$W/hosts.new" "$W/hosts"
}
write_hosts 0
UNBLOCK='import os, signal, sys; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv(sys.argv[1], sys.argv[1:])'
ip netns exec "$NS" python3 -c "$UNBLOCK" /usr/sbin/dnsmasq --keep-in-foreground --no-resolv --no-hosts --port=5353 --listen-address=127.0.0.1 \
  --bind-interfaces --addn-hosts="$W/hosts" --local=/test/ --local-ttl=1 --pid-file= --log-facility=- 2>"$W/dnsmasq.log" &
DNSPID=$!; PIDS+=($DNSPID)

mkdir -p "$W/backend" "$W/lb" "$W/static"
cat >"$W/backend/lb.conf" <<EOF
worker_processes 1;
events {}
http { access_log off; server { listen 9000; location / { return 200 "ok\n"; } } }
EOF
ip netns exec "$NS" "$LB" -p "$W/backend" -c lb.conf 2>"$W/backend.log" & PIDS+=($!)

servers=""
for n in $(seq 0 $((NAMES - 1))); do servers="$servers server m$n.test:9000 resolve;"; done
lbconf() { # $1: the upstream's servers
  cat <<EOF
worker_processes 1;
error_log stderr notice;
events {}
http {
    access_log off;
    resolver 127.0.0.1:5353 ipv6=off;
    resolver_timeout 10s;   # dnsmasq needs seconds to answer after reading 10,000 records again
    upstream pool { zone pool 16m; $1 }
    server {
        listen 127.0.0.1:8080;
        location / { proxy_pass http://pool; }
        location /lb-api/ { api; }
    }
}
EOF
}
lbconf "server 127.0.0.1:9000;" >"$W/static/lb.conf"
sed -i 's/8080/8081/' "$W/static/lb.conf"
lbconf "$servers" >"$W/lb/lb.conf"
# dnsmasq answering (it takes seconds to read 10,000 records) and the backend up.
if command -v dig >/dev/null; then
  until X dig +short +tries=1 +time=10 @127.0.0.1 -p 5353 m0.test A 2>/dev/null | grep -q .; do sleep 0.1; done
else
  sleep 10
fi

# The same lb with one static member: the memory baseline.
ip netns exec "$NS" "$LB" -p "$W/static" -c lb.conf 2>"$W/static.log" & SPID=$!; PIDS+=($SPID)
t0=$(now_ms)
ip netns exec "$NS" "$LB" -p "$W/lb" -c lb.conf 2>"$W/lb.log" & LBPID=$!; PIDS+=($LBPID)
added() { cat "$W/lb.log" 2>/dev/null | grep -c "added from DNS" || true; }
while [ "$(added)" -lt "$MEMBERS" ]; do
  sleep 0.005
  [ $(( $(now_ms) - t0 )) -lt 60000 ] || { echo "only $(added) of $MEMBERS members after 60 s"; tail -5 "$W/lb.log"; exit 1; }
done
t1=$(now_ms)
sleep 1
echo "members: $MEMBERS in $NAMES names; all in $((t1 - t0)) ms after lb started"
echo "lb RSS: $(rss_kb $LBPID) KiB with $MEMBERS DNS members; $(rss_kb $SPID) KiB with one static member"

# One change at a time: a member added to m0.test, then removed. Measured: from SIGHUP until lb
# logged it, and (with dig) from the moment dnsmasq answers with the change until lb logged it —
# dnsmasq itself needs seconds to read 10,000 records again.
dns_has() { X dig +tcp +short +tries=1 +time=10 @127.0.0.1 -p 5353 m0.test A 2>/dev/null | grep -qx "$1"; }
apply_times=()
for k in 1 2 3 4 5; do
  a="127.250.0.$k"
  for step in added gone; do
    if [ $step = added ]; then { cat "$W/hosts"; echo "$a m0.test"; } >"$W/hosts.new"; else grep -v "^$a " "$W/hosts" >"$W/hosts.new"; fi
    chmod 644 "$W/hosts.new"; mv "$W/hosts.new" "$W/hosts"
    s=$(now_ms); kill -HUP $DNSPID
    d=""
    if command -v dig >/dev/null; then
      if [ $step = added ]; then until dns_has "$a"; do :; done; else while dns_has "$a"; do :; done; fi
      d=$(now_ms)
    fi
    until grep -q "peer $a:9000 $step" "$W/lb.log"; do sleep 0.005; done
    e=$(now_ms)
    apply_times+=("$((e - s))${d:+/$((e - d))}")
  done
done
echo "DNS change → applied by lb, ms from SIGHUP/from dnsmasq answering with it (add, remove × 5): ${apply_times[*]}"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# wrk's req/s, then the lb's CPU time per request (µs; the machine may be busy, that is not).
run_wrk() {
  local pid=${2:-$LBPID} t0 t1 out n
  t0=$(ticks "$pid")
  out=$(X wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:${1:-8080}/")
  t1=$(ticks "$pid")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  echo "$(awk '/Requests\/sec/ {print $2} /Non-2xx/ {print "non-2xx: " $NF}' <<<"$out" | tr '\n' ' ')req/s," \
       "lb CPU $(python3 -c "print(f'{($t1-$t0)*1e6/$(getconf CLK_TCK)/max($n,1):.0f}')") µs per request"
}
echo "wrk -t1 -c32 -d${SECS}s, no changes: $(run_wrk)"
echo "same, through the lb with one static member: $(run_wrk 8081 $SPID)"
echo "lb RSS after that load: $(rss_kb $LBPID) KiB"
before=$(grep -c "gone from DNS" "$W/lb.log" || true)
CHANGE_S=$(python3 -c "print($CHANGE_MS / 1000)")
(
  g=1
  while :; do
    write_hosts $g; kill -HUP $DNSPID 2>/dev/null || exit 0
    g=$((g + 1))
    sleep "$CHANGE_S"
  done
) & CHPID=$!; PIDS+=($CHPID)
out=$(run_wrk)
kill $CHPID 2>/dev/null || true
sleep 2.5
gone=$(( $(grep -c "gone from DNS" "$W/lb.log" || true) - before ))
failed=$(grep -c "could not be resolved" "$W/lb.log" || true)
echo "wrk -t1 -c32 -d${SECS}s, $ROTATE members replaced every $CHANGE_MS ms: $out ($gone members left and as many joined while it ran; $failed failed lookups in all)"
grep "could not be resolved" "$W/lb.log" | tail -3
echo "lb RSS after the changes: $(rss_kb $LBPID) KiB"
