#!/usr/bin/env bash
# Security review of a default TLS listener with testssl.sh (Debian package `testssl.sh`):
# lb with only `listen … ssl`, an ECDSA certificate and its key — every other TLS setting at its
# default — scanned with testssl's default run (protocols, ciphers, server defaults,
# vulnerabilities). Not part of the test command: it takes a few minutes.
#
#   bash Tests/support/testssl-check.sh [path/to/lb]      # default: .build/release/lb (built)
#
# Fails unless: SSLv2, SSLv3, TLS 1.0 and TLS 1.1 are not offered; TLS compression is off;
# client-initiated renegotiation is refused; and every vulnerability check has severity OK or
# INFO. Prints those verdicts, then testssl's other MEDIUM-or-worse findings (about the
# throwaway certificate, cipher order, HTTP headers) for the record, without failing on them.
# Loopback only (the certificate is for a.test, scanned at 127.0.0.1 with --ip).
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v testssl >/dev/null || { echo "missing testssl: apt-get install testssl.sh"; exit 1; }
LB=${1:-}
if [ -z "$LB" ]; then swift build -c release --product lb >/dev/null; LB=$PWD/.build/release/lb; fi
W=$(mktemp -d /tmp/lb-testssl.XXXXXX)
LBPID=
cleanup() { [ -n "$LBPID" ] && kill "$LBPID" 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
bash Tests/support/make-test-certs.sh "$W/certs"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$W/lb.conf" <<CONF
error_log stderr notice;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:$PORT ssl;
        server_name a.test;
        ssl_certificate     $W/certs/a-ec.crt;
        ssl_certificate_key $W/certs/a-ec.key;
        location / { return 200 "ok\n"; }
    }
}
CONF
"$LB" -p "$W" -c lb.conf 2>"$W/lb.err" & LBPID=$!
for i in $(seq 1 100); do curl -sfk -o /dev/null "https://127.0.0.1:$PORT/" && break; sleep 0.1; done

testssl --quiet --color 0 --warnings off --ip 127.0.0.1 --add-ca "$W/certs/ca.crt" \
    --jsonfile "$W/out.json" "a.test:$PORT" > "$W/out.txt" 2>&1 || true

python3 - "$W/out.json" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))
by = {r["id"]: r for r in rows}
bad = []
def need(id_, ok, what):
    r = by.get(id_)
    verdict = r["finding"] if r else "(missing)"
    good = r is not None and ok(r["finding"])
    print(f"{'ok  ' if good else 'FAIL'} {what:45s} {id_}: {verdict}")
    if not good: bad.append(id_)
for p in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
    need(p, lambda f: f.startswith("not offered"), f"{p} not offered")
need("TLS1_2", lambda f: f.startswith("offered"), "TLS 1.2 offered")
need("TLS1_3", lambda f: f.startswith("offered"), "TLS 1.3 offered")
need("CRIME_TLS", lambda f: f.startswith("not vulnerable"), "no TLS compression")
need("secure_client_renego", lambda f: f.startswith("not vulnerable"), "no client-initiated renegotiation")
vulns = ["heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego", "secure_client_renego", "CRIME_TLS", "BREACH",
         "POODLE_SSL", "fallback_SCSV", "SWEET32", "FREAK", "DROWN", "DROWN_hint", "LOGJAM", "LOGJAM-common_primes",
         "BEAST", "LUCKY13", "winshock", "RC4"]
print("\nvulnerability checks (severity, finding):")
for v in vulns:
    r = by.get(v)
    if r is None: continue
    print(f"  {v:22s} {r['severity']:8s} {r['finding']}")
    if r["severity"] not in ("OK", "INFO"): bad.append(v)
others = [r for r in rows if r["severity"] in ("MEDIUM", "HIGH", "CRITICAL") and r["id"] not in vulns]
print("\nother findings of severity MEDIUM or above (the throwaway test certificate, server preferences,")
print("HTTP headers — configuration, not vulnerabilities):", "none" if not others else "")
for r in others: print(f"  {r['id']}: {r['severity']} {r['finding']}")
if bad:
    print("\nFAILED:", " ".join(sorted(set(bad))))
    sys.exit(1)
print("\nall checks passed")
PY
