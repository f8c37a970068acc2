#!/bin/sh
# Throughput cost of Kafka protocol awareness: kcat produce/consume direct vs
# a `tcp` listener vs a `kafka` listener (see kafka_bench.py).
# usage: tests/bench/kafka_bench.sh [BUILD_DIR] [extra kafka_bench.py args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/kafka_bench.py" "$@"
