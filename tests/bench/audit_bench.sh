#!/bin/sh
# Throughput cost of per-request audit events: audit off vs `each` (and
# `aggregate`) through a `kafka` listener (see audit_bench.py).
# usage: tests/bench/audit_bench.sh [BUILD_DIR] [extra audit_bench.py args]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/../../build}
[ $# -gt 0 ] && shift
BS_BUILD_DIR=$(cd "$build" && pwd) exec /usr/bin/python3 "$here/audit_bench.py" "$@"
