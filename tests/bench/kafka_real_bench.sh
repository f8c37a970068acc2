#!/bin/sh
# brokerside beside a real Apache Kafka broker vs Kroxylicious, with the standard perf tools
# (see kafka_real_bench.py). usage: tests/bench/kafka_real_bench.sh [BUILD_DIR] [extra args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/kafka_real_bench.py" "$@"
