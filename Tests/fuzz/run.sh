#!/usr/bin/env bash
# Builds lb's libFuzzer targets straight from the module sources (no Package.swift change, so
# `swift build` and `swift test` never need the fuzzer) and runs each for SECONDS (default 10)
# from the seed corpus in Tests/fuzz/corpus/<target>/. Fails on the first crash, leak or broken
# invariant; the input that did it is left in .build/fuzz/artifacts/<target>/.
#
#   Tests/fuzz/run.sh [SECONDS] [TARGET...]
#
# FUZZ_OPT=-Onone builds in a third of the time (about 50 s for all six targets instead of 2.5
# min) and runs slower; Tests/run.sh uses it for its short run. The default is -O.
#
# Inputs the fuzzer finds are kept in .build/fuzz/work/<target>/ (the committed seeds stay as
# they are), so later runs start from where earlier ones got to.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds="${1:-10}"
shift || true
all=(http_request http_response chunked uri config resp proxy_protocol fastcgi h2 hpack)
if [ $# -gt 0 ]; then targets=("$@"); else targets=("${all[@]}"); fi

opt="${FUZZ_OPT:--O}"
out=.build/fuzz
bin="$out/bin${opt#-O}"
mkdir -p "$bin"
flags=("$opt" -sanitize=fuzzer,address -parse-as-library)

# The sources of each target: its module's files, the shared Support.swift and its harness.
sources() {
    case "$1" in
        http_request|http_response|chunked|uri|proxy_protocol|fastcgi) echo LBHTTP Sources/LBHTTP/*.swift ;;
        h2|hpack) echo LBHTTP Sources/LBHTTP/*.swift Sources/LBHTTP/HTTP2/*.swift ;;
        config) echo LBConfig Sources/LBConfig/*.swift ;;
        resp) echo LBStore Sources/LBStore/*.swift ;;
        *) echo "unknown fuzz target $1" >&2; exit 2 ;;
    esac
}

build() {
    local t="$1" module files extra=()
    read -r module files <<<"$(sources "$t")"
    # Rebuild only when a source is newer than the binary.
    # shellcheck disable=SC2086
    if [ -x "$bin/$t" ] && [ -z "$(find $files Tests/fuzz/Support.swift "Tests/fuzz/$t.swift" -newer "$bin/$t" 2>/dev/null)" ]; then
        return
    fi
    if [ "$module" = LBConfig ]; then
        # The C shim (PCRE2 through dlopen) as SwiftPM would build it, with a module map for it.
        mkdir -p "$out/CLBShim"
        printf 'module CLBShim {\n    header "%s/Sources/CLBShim/include/CLBShim.h"\n    export *\n}\n' "$PWD" >"$out/CLBShim/module.modulemap"
        clang -O1 -D_GNU_SOURCE -fsanitize=address -I Sources/CLBShim/include -c Sources/CLBShim/shim.c -o "$out/shim.o"
        # TLS contexts are built while the config compiles: the system OpenSSL's module map.
        extra=(-I "$out/CLBShim" -I Sources/COpenSSL -Xcc -D_GNU_SOURCE "$out/shim.o")
    fi
    echo "fuzz: building $t ($opt)"
    # The linker warns about every local ASan symbol it cannot export; that is noise.
    # shellcheck disable=SC2086
    swiftc "${flags[@]}" -module-name "$module" $files Tests/fuzz/Support.swift "Tests/fuzz/$t.swift" \
        "${extra[@]}" -o "$bin/$t" 2> >(grep -v "Cannot export local symbol" >&2)
}

for t in "${targets[@]}"; do build "$t"; done

# The Swift runtime's backtracer would wait on a crashed child forever; libFuzzer and ASan report.
export SWIFT_BACKTRACE=enable=no
failed=()
for t in "${targets[@]}"; do
    mkdir -p "$out/work/$t" "$out/artifacts/$t"
    log="$out/$t.log"
    echo "fuzz: running $t for ${seconds}s"
    if "$bin/$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/artifacts/$t/" "$out/work/$t" "Tests/fuzz/corpus/$t" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "fuzz: $t ok, $runs executions"
    else
        echo "fuzz: $t FAILED (log: $log)"
        grep -E "invariant failed|ERROR:|SUMMARY:|Fatal error|Test unit written" "$log" || tail -20 "$log"
        failed+=("$t")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: crashes in ${failed[*]}"
    exit 1
fi
