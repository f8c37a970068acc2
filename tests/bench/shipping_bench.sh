#!/bin/sh
# Cost of shipping events (audit, metrics, logs) to a file sink and to AWS
# sinks on moto_server vs no events, through a `kafka` listener (see shipping_bench.py).
# usage: tests/bench/shipping_bench.sh [BUILD_DIR] [extra shipping_bench.py args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/shipping_bench.py" "$@"
