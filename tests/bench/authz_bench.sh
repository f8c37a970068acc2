#!/bin/sh
# Throughput cost of the authorization policy: 1,000 rules vs no policy on produce through
# the sidecar, CPU per MB in one run (see authz_bench.py).
# usage: tests/bench/authz_bench.sh [BUILD_DIR] [extra authz_bench.py args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/authz_bench.py" "$@"
