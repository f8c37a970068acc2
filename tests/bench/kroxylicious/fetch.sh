#!/usr/bin/env bash
# fetch.sh - build the Kroxylicious baseline of `make bench` part kafka-real into the cache.
#
#   tests/bench/kroxylicious/fetch.sh     # called by tests/bench/kafka_real_bench.py
#
# Result: .cache/kroxylicious/<version>/libs/*.jar (Kroxylicious' runtime, its record-encryption
# filter and AWS KMS provider, an SLF4J binding, and kroxylicious-launcher.jar built from
# src/main/java) and .cache/kroxylicious/<version>/READY holding the checksum of pom.xml and the
# launcher's source. Idempotent: when READY matches, nothing runs and no network is used. Maven
# tries offline first (~/.m2), then Maven Central. Never part of `make deps` or `make test`:
# Kroxylicious is a benchmark baseline, not a dependency of brokerside.
# Prints the cache directory on stdout (last line).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
POM=$HERE/pom.xml
SRC=$HERE/src/main/java/brokerside/bench/KroxyliciousLauncher.java
VERSION=$(sed -n 's:.*<kroxylicious.version>\(.*\)</kroxylicious.version>.*:\1:p' "$POM")
CACHE=${BS_KROXYLICIOUS_CACHE:-$ROOT/.cache/kroxylicious}/$VERSION
LIBS=$CACHE/libs
STAMP=$CACHE/READY
. "$ROOT/tests/tools/maven_fetch.sh"

die() { echo "kroxylicious fetch: $*" >&2; exit 1; }

sum=$(cat "$POM" "$SRC" | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ] && [ -f "$LIBS/kroxylicious-launcher.jar" ]; then
  echo "$CACHE"
  exit 0
fi

maven_require "kroxylicious fetch"

echo "kroxylicious fetch: Kroxylicious $VERSION from Maven Central into $LIBS (about 35 MB on the first run)" >&2
tmp=$CACHE/libs.tmp
build=$CACHE/build
rm -rf "$tmp" "$build" "$STAMP"
mkdir -p "$CACHE"
log=$CACHE/mvn.log
mvn_build() {
  (cd "$HERE" && mvn -B "$@" -Dbs.build.dir="$build" package dependency:copy-dependencies \
     -DincludeScope=runtime -DoutputDirectory="$tmp") >"$log" 2>&1
}
clean_build() { rm -rf "$tmp" "$build"; }
maven_run "kroxylicious fetch" "the Kroxylicious $VERSION launcher" "$log" clean_build mvn_build
cp "$build/kroxylicious-launcher.jar" "$tmp/"
for want in "kroxylicious-runtime-$VERSION.jar" "kroxylicious-record-encryption-$VERSION.jar" \
            "kroxylicious-kms-provider-aws-kms-$VERSION.jar" 'slf4j-simple-*.jar' 'netty-transport-native-epoll-*.jar'; do
  compgen -G "$tmp/$want" >/dev/null || die "after the fetch, $want is missing in $tmp"
done
rm -rf "$LIBS" "$build"
mv "$tmp" "$LIBS"
echo "$sum" > "$STAMP"
echo "kroxylicious fetch: Kroxylicious $VERSION ready ($(du -sh "$LIBS" | cut -f1))" >&2
echo "$CACHE"
