#!/usr/bin/env bash
# Runs lb's whole test suite on a fresh machine: installs the Debian packages the tests use as
# real clients and peers (only those missing; `apt-get update` once), then `swift test` twice (below).
set -euo pipefail
cd "$(dirname "$0")/.."

sudo=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then sudo="sudo"; fi

need=()
have_lib() { ldconfig -p 2>/dev/null | grep -q "$1"; }
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v redis-benchmark >/dev/null || need+=(redis-tools)
command -v redis-server >/dev/null || need+=(redis-server)
command -v chromium >/dev/null || need+=(chromium)
command -v promtool >/dev/null || need+=(prometheus)
# dnsmasq-base: the binary only (the dnsmasq package would also start a system DNS service).
[ -x /usr/sbin/dnsmasq ] || command -v dnsmasq >/dev/null || need+=(dnsmasq-base)
have_lib libpcre2-8.so.0 || need+=(libpcre2-8-0)
have_lib libz.so || need+=(zlib1g-dev)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)
[ -e /usr/include/openssl/ssl.h ] || need+=(libssl-dev)
command -v openssl >/dev/null || need+=(openssl)
[ -x /usr/sbin/haproxy ] || need+=(haproxy)
[ -x /usr/sbin/nginx ] || need+=(nginx) # the reference of the differential, limit and auth tests
[ -e /usr/include/crypt.h ] || need+=(libcrypt-dev)
compgen -G "/usr/sbin/php-fpm*" >/dev/null || need+=(php-fpm)
[ -x /usr/bin/uwsgi ] && [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || need+=(uwsgi uwsgi-plugin-python3)
command -v nghttp >/dev/null && command -v h2load >/dev/null || need+=(nghttp2-client)
/usr/bin/python3 -c 'import h2' 2>/dev/null || need+=(python3-h2)

if [ ${#need[@]} -gt 0 ]; then
    echo "installing test tools: ${need[*]}"
    $sudo apt-get update -qq
    # Instruments only: packages with a service (nginx, php-fpm, haproxy) must not start it. A
    # policy-rc.d that denies every start, for the install only, unless the machine has its own.
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        policy=/usr/sbin/policy-rc.d
        printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod +x "$policy"
    fi
    # shellcheck disable=SC2046
    status=0
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null || status=$?
    if [ -n "$policy" ]; then $sudo rm -f "$policy"; fi
    [ "$status" = 0 ] || exit "$status"
fi

swift build --build-tests

# Two processes, so the end-to-end tests (which block their threads waiting on real processes and
# sockets) cannot starve the unit tests of the test runner's threads: first every target but
# EndToEndTests, then EndToEndTests. `--skip` and `--filter` match the same test IDs
# (`Module.Suite/test()`), so together they run every test exactly once. Both run even if the
# first fails; the script fails if either does, and its closing line is a failing summary then.
# Every temporary file and directory of the run (the tests create them under $TMPDIR) goes in one
# directory, removed at the end, so that runs leave nothing behind in /tmp. Others may traverse
# it: dnsmasq and php-fpm's workers drop to unprivileged users and read files the tests put there.
run_tmp=$(mktemp -d "${TMPDIR:-/tmp}/lb-tests.XXXXXX")
chmod 755 "$run_tmp"
trap 'rm -rf "$run_tmp"' EXIT
export TMPDIR="$run_tmp"
unit_log=$(mktemp)
unit=0
swift test --skip-build --skip '^EndToEndTests\.' | tee "$unit_log" || unit=$?
# A short run of every libFuzzer target (docs/fuzzing.md); unoptimized fuzz builds take a third
# of the time of -O ones, and a smoke run needs no more. Before the end-to-end tests, so that the
# run still closes with swift test's summary.
fuzz=0
FUZZ_OPT=-Onone bash Tests/fuzz/run.sh 5 || fuzz=$?
e2e=0
swift test --skip-build --filter '^EndToEndTests\.' || e2e=$?
if [ "$unit" != 0 ]; then
    echo "unit tests (every target but EndToEndTests) failed, exit status $unit:"
    grep -a -E 'Executed [0-9]+ tests|Test run with' "$unit_log" | tail -n 2 || true
    exit "$unit"
fi
if [ "$fuzz" != 0 ]; then
    echo "fuzz smoke run failed, exit status $fuzz (see the output of Tests/fuzz/run.sh above)"
    exit "$fuzz"
fi
exit "$e2e"
