#!/usr/bin/env bash
# Runs lb's whole test suite on a fresh machine: installs the Debian packages the tests use as
# real clients and peers (only those missing; `apt-get update` once), then `swift test`, then a
# short libFuzzer run of every parser (Tests/fuzz/run.sh: 5 s each, about 1.5 min with its builds).
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
have_lib libpcre2-8.so.0 || need+=(libpcre2-8-0)
have_lib libz.so || need+=(zlib1g-dev)
[ -e /usr/include/zlib.h ] || need+=(zlib1g-dev)

if [ ${#need[@]} -gt 0 ]; then
    echo "installing test tools: ${need[*]}"
    $sudo apt-get update -qq
    # shellcheck disable=SC2046
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

swift build --build-tests
swift test --skip-build

# Unoptimized fuzz builds take a third of the time of -O ones; a smoke run needs no more.
FUZZ_OPT=-Onone Tests/fuzz/run.sh 5
