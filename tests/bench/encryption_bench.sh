#!/bin/sh
# Throughput cost of encryption at rest: encrypted vs plaintext topic through
# the sidecar, and record encryption vs openssl speed (see encryption_bench.py).
# usage: tests/bench/encryption_bench.sh [BUILD_DIR] [extra encryption_bench.py args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/encryption_bench.py" "$@"
