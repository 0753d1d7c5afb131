#!/usr/bin/env bash
# The test suite under AddressSanitizer and ThreadSanitizer (issue 17, item 16).
#
#   bash Tests/bench/sanitizers.sh [address] [thread]      # default: both, ASan first
#
# For each sanitizer: a separate build of the package and its tests (`.build-asan`, `.build-tsan`,
# ignored by git), then the unit tests and the end-to-end suite against it. The end-to-end tests
# start `lb` (and `lb-store`, `lb-app`) from the same products directory as the test bundle
# (Tests/EndToEndTests/Harness.swift), so the servers that run are the sanitized ones, and they
# inherit this environment. Every sanitizer report — from the test runner or from any child
# process — is written under a fresh log directory (`log_path`, one file per process), and
# `halt_on_error=1` makes the first report end that process. The run fails if a test failed or if
# any report file exists; the reports are printed then.
#
# Suppressions for false positives outside lb's code (Swift runtime, Foundation, OpenSSL) are in
# Tests/support/sanitizers/, each with the reason. Leak detection is off: the Swift runtime's
# metadata caches and Foundation's singletons live until exit by design and would be reported as
# leaks at every process exit; lb's memory over time is checked by Tests/bench/soak.sh instead.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
KINDS=("$@")
[ ${#KINDS[@]} -gt 0 ] || KINDS=(address thread)

# The Swift runtime's own crash handler reads every thread's stack to print a backtrace; under
# ASan those reads hit stack redzones and are reported instead of the crash itself (and its
# helper process can hang). Off here, so a crash is reported by the sanitizer, with its stack.
export SWIFT_BACKTRACE=enable=no
failed=0
for kind in "${KINDS[@]}"; do
    case "$kind" in
        address) short=asan ;;
        thread) short=tsan ;;
        *) echo "unknown sanitizer '$kind' (address or thread)"; exit 2 ;;
    esac
    scratch=".build-$short"
    logs=$(mktemp -d "/tmp/lb-$short.XXXXXX")
    supp="$ROOT/Tests/support/sanitizers/$short.supp"
    opts="halt_on_error=1:log_path=$logs/report:log_exe_name=1"
    [ -f "$supp" ] && opts="$opts:suppressions=$supp"
    if [ "$kind" = address ]; then
        export ASAN_OPTIONS="$opts:detect_leaks=0:abort_on_error=0"
        unset TSAN_OPTIONS
    else
        # second_deadlock_stack: both stacks of a lock-order inversion, not only one.
        export TSAN_OPTIONS="$opts:second_deadlock_stack=1"
        unset ASAN_OPTIONS
    fi
    echo "== $kind: build ($scratch)"
    t0=$(date +%s)
    if ! swift build --build-tests --sanitize="$kind" --scratch-path "$scratch"; then
        echo "== $kind: build failed"; failed=1; continue
    fi
    t1=$(date +%s)
    unit=0 e2e=0
    echo "== $kind: unit tests"
    swift test --skip-build --scratch-path "$scratch" --skip '^EndToEndTests\.' >"$logs/unit.out" 2>&1 || unit=$?
    grep -aE 'Executed [0-9]+ tests|Test run with' "$logs/unit.out" | tail -n 2
    t2=$(date +%s)
    echo "== $kind: end-to-end tests"
    swift test --skip-build --scratch-path "$scratch" --filter '^EndToEndTests\.' >"$logs/e2e.out" 2>&1 || e2e=$?
    grep -aE 'Executed [0-9]+ tests|Test run with' "$logs/e2e.out" | tail -n 2
    t3=$(date +%s)
    reports=$(find "$logs" -name 'report*' -type f | sort)
    echo "== $kind: build $((t1 - t0)) s, unit tests $((t2 - t1)) s, end-to-end tests $((t3 - t2)) s"
    [ "$unit" = 0 ] || { echo "== $kind: unit tests FAILED:"; grep -a "✘" "$logs/unit.out" | head -n 40; failed=1; }
    [ "$e2e" = 0 ] || { echo "== $kind: end-to-end tests FAILED:"; grep -a "✘" "$logs/e2e.out" | head -n 40; failed=1; }
    if [ -n "$reports" ]; then
        echo "== $kind: $(echo "$reports" | wc -l) sanitizer report(s):"
        for r in $reports; do echo "--- $r"; head -n 80 "$r"; done
        failed=1
    else
        echo "== $kind: no sanitizer reports"
    fi
    echo "== $kind: logs in $logs"
done
exit $failed
