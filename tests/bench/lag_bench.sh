#!/bin/sh
# CPU cost of the consumer-lag monitor: 1,000 groups x 10 partitions on a real broker, the
# monitor's threads as a share of one core, and a sidecar without it side by side (see
# lag_bench.py).
# usage: tests/bench/lag_bench.sh [BUILD_DIR] [extra lag_bench.py args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/lag_bench.py" "$@"
