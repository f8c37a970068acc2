#!/bin/sh
# run.sh BUILD_DIR SECONDS - run every fuzz_* binary in BUILD_DIR for SECONDS
# each, starting from its seed corpus in tests/fuzz/corpus/<target>/ (copied to
# a temporary directory so runs never write into the repository). Fails if any
# fuzzer reports a crash, leak, sanitizer error or timeout. A tests/fuzz/<target>.dict
# is passed as the target's dictionary.
set -eu
BUILD=${1:?usage: run.sh BUILD_DIR SECONDS}
SECONDS_EACH=${2:-20}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bs-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT INT TERM

found=0
failed=""
for bin in "$BUILD"/fuzz_*; do
    [ -x "$bin" ] || continue
    name=$(basename "$bin")
    found=$((found + 1))
    mkdir -p "$WORK/$name/corpus" "$WORK/$name/artifacts"
    if [ -d "$HERE/corpus/$name" ]; then
        cp -R "$HERE/corpus/$name/." "$WORK/$name/corpus/"
    fi
    dict=""
    # a target may ship a libFuzzer dictionary next to its source
    if [ -f "$HERE/$name.dict" ]; then dict="-dict=$HERE/$name.dict"; fi
    echo "fuzz: $name for ${SECONDS_EACH}s"
    # shellcheck disable=SC2086
    if ! "$bin" $dict -max_total_time="$SECONDS_EACH" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
            -print_final_stats=1 -artifact_prefix="$WORK/$name/artifacts/" \
            "$WORK/$name/corpus" >"$WORK/$name/log" 2>&1; then
        echo "fuzz: $name FAILED; last lines of its log:"
        tail -n 40 "$WORK/$name/log"
        for a in "$WORK/$name/artifacts"/*; do
            [ -f "$a" ] || continue
            keep="$BUILD/fuzz-artifacts/$name"
            mkdir -p "$keep" && cp "$a" "$keep/"
            echo "fuzz: reproducer kept in $keep/$(basename "$a")"
        done
        failed="$failed $name"
    else
        grep -E '^stat::number_of_executed_units' "$WORK/$name/log" || true
    fi
done
if [ "$found" -eq 0 ]; then
    echo "fuzz: no fuzz_* binaries in $BUILD (configure with -DBS_FUZZ=ON)" >&2
    exit 1
fi
if [ -n "$failed" ]; then
    echo "fuzz: failures:$failed" >&2
    exit 1
fi
echo "fuzz: $found targets ran clean"
