#!/usr/bin/env bash
# fetch.sh - put the pinned Apache Kafka release (tests/kafka/pom.xml) into the checkout's cache.
#
#   tests/kafka/fetch.sh            # called by `make deps`
#
# Result: .cache/kafka/<version>/libs/*.jar (the broker, its CLI tools and a log4j2 back end)
# and .cache/kafka/<version>/READY, which records the pom's checksum. Idempotent: when READY
# matches the pom, nothing runs and no network is used. Maven first tries offline (jars already
# in ~/.m2), then Maven Central; if that fails too it says whether Maven Central is reachable.
# Prints the cache directory on stdout (last line).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
POM=$HERE/pom.xml
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
CACHE=${BS_KAFKA_CACHE:-$ROOT/.cache/kafka}/$VERSION
LIBS=$CACHE/libs
STAMP=$CACHE/READY
. "$ROOT/tests/tools/maven_fetch.sh"

die() { echo "kafka fetch: $*" >&2; exit 1; }

sum=$(sha256sum "$POM" | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ] && compgen -G "$LIBS/kafka_2.13-$VERSION.jar" >/dev/null; then
  echo "$CACHE"
  exit 0
fi

maven_require "kafka fetch"

echo "kafka fetch: Apache Kafka $VERSION from Maven Central into $LIBS (about 45 MB on the first run)" >&2
tmp=$CACHE/libs.tmp
rm -rf "$tmp" "$STAMP"
mkdir -p "$CACHE"
log=$CACHE/mvn.log
mvn_copy() {
  (cd "$HERE" && mvn -B "$@" dependency:copy-dependencies -DincludeScope=runtime \
     -DoutputDirectory="$tmp") >"$log" 2>&1
}
clean_tmp() { rm -rf "$tmp"; }
maven_run "kafka fetch" "Apache Kafka $VERSION" "$log" clean_tmp mvn_copy

for want in "kafka_2.13-$VERSION.jar" "kafka-tools-$VERSION.jar" "kafka-clients-$VERSION.jar" \
            'log4j-core-*.jar' 'log4j-slf4j-impl-*.jar' 'slf4j-api-1.7.*.jar' 'scala-library-*.jar'; do
  compgen -G "$tmp/$want" >/dev/null || die "after the fetch, $want is missing in $tmp"
done
if compgen -G "$tmp/slf4j-api-2.*.jar" >/dev/null || compgen -G "$tmp/log4j-slf4j2-impl-*.jar" >/dev/null; then
  die "SLF4J 2.x jars in the class path: Kafka 4.x logs through SLF4J 1.7 (log4j-slf4j-impl)"
fi
got=$(java -Dlog4j2.configurationFile="$HERE/log4j2-tools.xml" -cp "$tmp/*" kafka.Kafka --version 2>/dev/null | head -n1)
case $got in
  "$VERSION"*) ;;
  *) die "kafka.Kafka --version printed '$got', expected $VERSION" ;;
esac
rm -rf "$LIBS"
rm -f "$CACHE/broker.jsa"   # the tests' class-data archive belongs to the old jars
mv "$tmp" "$LIBS"
echo "$sum" > "$STAMP"
echo "kafka fetch: Apache Kafka $VERSION ready ($(du -sh "$LIBS" | cut -f1))" >&2
echo "$CACHE"
