# maven_fetch.sh - the Maven steps shared by tests/kafka/fetch.sh, tests/java/build.sh and
# tests/bench/kroxylicious/fetch.sh. Sourced (not run); the caller sets `set -euo pipefail`.
#
#   . "$ROOT/tests/tools/maven_fetch.sh"
#   maven_require "kafka fetch"                 # mvn and java on PATH, or a clear error
#   maven_run "kafka fetch" "Apache Kafka 4.1.0" "$log" cleanup_fn mvn_fn
#
# maven_run runs `mvn_fn -o -q` (offline: the jars already in ~/.m2); when that fails it runs
# cleanup_fn and then `mvn_fn` online (Maven Central). When that fails too it exits 1 with a
# message that says whether Maven Central is reachable at all, so an outage and a broken pom
# read differently. mvn_fn writes Maven's output to the log it is given.

MAVEN_CENTRAL=https://repo.maven.apache.org/maven2/

# maven_require WHO: exits 1 with "WHO: ..." unless mvn and java are on PATH.
maven_require() {
  command -v mvn >/dev/null || { echo "$1: mvn not found (make deps installs the Debian package maven)" >&2; exit 1; }
  command -v java >/dev/null || { echo "$1: java not found (make deps installs openjdk-17-jdk-headless)" >&2; exit 1; }
}

# maven_central_reachable: success when Maven Central answers HTTP at all. Any status counts
# (its root answers 404); only no answer (curl's 000: DNS, connect or TLS failure) does not.
maven_central_reachable() {
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$MAVEN_CENTRAL" 2>/dev/null || true)
  [ -n "$code" ] && [ "$code" != 000 ]
}

# maven_run WHO WHAT LOG CLEANUP MVN_FN: offline, then online; see the header.
maven_run() {
  local who=$1 what=$2 log=$3 cleanup=$4
  shift 4
  if "$@" -o -q; then return 0; fi
  "$cleanup"
  if "$@"; then return 0; fi
  if ! maven_central_reachable; then
    echo "$who: Maven Central ($MAVEN_CENTRAL) is unreachable from this machine; cannot fetch $what. Maven's output: $log" >&2
    exit 1
  fi
  tail -n 30 "$log" >&2
  echo "$who: Maven could not resolve $what (Maven Central answers; full output: $log)" >&2
  exit 1
}
