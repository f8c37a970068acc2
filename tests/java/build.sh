#!/usr/bin/env bash
# build.sh - build the Java client test program (tests/java) against the pinned Kafka release.
#
#   tests/java/build.sh          # called by `make deps`
#
# Result: .cache/java/<kafka version>/lib/*.jar (the program and kafka-clients with its
# dependencies); run it with  java -cp '.cache/java/<version>/lib/*' brokerside.tests.ClientScenarios.
# The Kafka version is the one tests/kafka/pom.xml pins. Idempotent: when READY records the
# checksum of the pom, the sources and that version, nothing runs and no network is used.
# Maven first works offline (~/.m2), then asks Maven Central. Prints the lib directory (last line).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$ROOT/tests/kafka/pom.xml")
[ -n "$VERSION" ] || { echo "java build: no <kafka.version> in tests/kafka/pom.xml" >&2; exit 1; }
CACHE=${BS_JAVA_CACHE:-$ROOT/.cache/java}/$VERSION
LIB=$CACHE/lib
STAMP=$CACHE/READY
. "$ROOT/tests/tools/maven_fetch.sh"
sum=$( (echo "$VERSION"; cat "$HERE/pom.xml"; find "$HERE/src" -type f -name '*.java' | sort | xargs cat) | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ] && compgen -G "$LIB/client-scenarios-*.jar" >/dev/null; then
  echo "$LIB"
  exit 0
fi
maven_require "java build"
echo "java build: the Java client test program with kafka-clients $VERSION into $LIB" >&2
rm -rf "$CACHE/build" "$LIB.tmp" "$STAMP"
mkdir -p "$CACHE"
log=$CACHE/mvn.log
build() {
  (cd "$HERE" && mvn -B "$@" -Dkafka.version="$VERSION" -Dbs.out="$CACHE/build" package \
     dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIB.tmp") >"$log" 2>&1
}
clean_build() { rm -rf "$CACHE/build" "$LIB.tmp"; }
maven_run "java build" "kafka-clients $VERSION and the Java client test program" "$log" clean_build build
cp "$CACHE"/build/client-scenarios-*.jar "$LIB.tmp/"
compgen -G "$LIB.tmp/kafka-clients-$VERSION.jar" >/dev/null || { echo "java build: kafka-clients-$VERSION.jar missing after the build" >&2; exit 1; }
rm -rf "$LIB"
mv "$LIB.tmp" "$LIB"
echo "$sum" > "$STAMP"
echo "$LIB"
