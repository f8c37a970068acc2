#!/usr/bin/env bash
# make demo: a real Apache Kafka broker (single KRaft node, the release pinned in
# tests/kafka/pom.xml, fetched from Maven Central on the first run), brokerside
# terminating TLS (mutual TLS) in front of it with encryption at rest, kcat
# producing and consuming through the sidecar over TLS, and the proof that the
# broker's own segment files hold ciphertext only.
#
#   tests/demo.sh BUILD_DIR
#
# Everything it starts is stopped on exit (also on failure or Ctrl-C); the
# temp dir with the config and logs is removed unless KEEP=1. Exit status is
# non-zero if any step failed.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)
bin="$build/brokerside"
cluster="$root/tests/tools/kafka-cluster"
certs="$root/certs/dev"
topic=demo

bold() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
die() { printf '\ndemo FAILED: %s\n' "$*" >&2; exit 1; }

[ -x "$bin" ] || die "$bin is not built (run: make build)"
for t in kcat curl python3 openssl java mvn; do
    command -v "$t" >/dev/null || die "$t is missing (run: make deps)"
done

tmp=$(mktemp -d -t brokerside-demo.XXXXXX)
pids=()
cleanup() {
    local rc=$?
    # the Kafka node (kafka-cluster stops exactly what it started, by PID)
    [ -f "$tmp/kafka/cluster.json" ] && python3 "$cluster" down --dir "$tmp/kafka" >/dev/null 2>&1
    for pid in "${pids[@]}"; do
        # Each child leads its own process group (setsid): stop the group.
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ $rc -ne 0 ]; then
        for log in "$tmp"/brokerside.log "$tmp"/kafka/node-1/server.log; do
            [ -s "$log" ] && { echo "--- tail of $log"; tail -n 30 "$log"; }
        done
    fi
    if [ "${KEEP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for DESCRIPTION SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local what=$1 secs=$2
    shift 2
    for _ in $(seq $((secs * 10))); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "timed out waiting for $what"
}

bold "Dev certificates ($certs)"
"$root/certs/make-dev-certs.sh" "$certs"
ls "$certs"/*.crt | sed 's/^/  /'

# Encryption at rest (protocol kafka): the local keyring's master key, made
# once like `brokerside keygen` would (conf/brokerside.json uses this file too).
enc=""
if [ "${DEMO_PROTOCOL:-kafka}" = kafka ]; then
    [ -f "$certs/master.key" ] || "$build/bs_keygen" "$certs/master.key"
    enc=',
  "encryption": { "kms": { "type": "local", "key_file": "'"$certs/master.key"'" },
                  "topics": [ { "match": "*", "key": "dev" } ] }'
fi

tls_port=$(free_port)
admin_port=$(free_port)

protocol=${DEMO_PROTOCOL:-kafka}
bold "Apache Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$root/tests/kafka/pom.xml") from Maven Central artifacts"
if ! ls "$root"/.cache/kafka/*/READY >/dev/null 2>&1; then
    echo "  first run: fetching the broker's jars with Maven (about 45 MB, once; cached in .cache/kafka)"
fi
"$root/tests/kafka/fetch.sh" | sed 's/^/  cache: /'

bold "A real Kafka broker (1 KRaft node, loopback, free ports, topic '$topic')"
# protocol kafka: the broker advertises its own (loopback) address and
# brokerside rewrites it to the sidecar's (kafka.advertise). protocol tcp:
# the broker must advertise the sidecar's address itself (advertised.listeners).
# Either way clients learn only 127.0.0.1:$tls_port.
adv=()
[ "$protocol" = tcp ] && adv=(--advertise "1=127.0.0.1:$tls_port")
python3 "$cluster" up --nodes 1 --dir "$tmp/kafka" --format env "${adv[@]}" >"$tmp/kafka.env"
# shellcheck disable=SC1091
. "$tmp/kafka.env"
broker=$KAFKA_NODE1_CLIENT
python3 "$cluster" create-topic "$topic" --dir "$tmp/kafka"
echo "  Apache Kafka $KAFKA_VERSION, node 1 (pid $KAFKA_NODE1_PID): client listener $broker (plaintext, loopback)"
echo "  its data (log.dirs): $KAFKA_NODE1_LOG_DIR"

bold "brokerside: TLS on 127.0.0.1:$tls_port -> $broker, admin on 127.0.0.1:$admin_port"
cat >"$tmp/brokerside.json" <<EOF
{
  // written by tests/demo.sh
  "workers": 1,
  "listeners": [{
    "name": "clients",
    "bind": "127.0.0.1:$tls_port",
    "upstream": "$broker",
    "protocol": "$protocol",
    "tls": { "cert": "$certs/server.crt", "key": "$certs/server.key",
             "client_ca": "$certs/ca.crt", "client_auth": "required" }
  }],
  "kafka": { "advertise": { "1": "127.0.0.1:$tls_port" } },
  "admin": { "bind": "127.0.0.1:$admin_port", "probe_interval_s": 1 }$enc
}
EOF
"$bin" --check-config "$tmp/brokerside.json"
setsid "$bin" --config "$tmp/brokerside.json" >"$tmp/brokerside.log" 2>&1 &
pids+=($!)
admin="http://127.0.0.1:$admin_port"
wait_for "brokerside /readyz" 30 curl -fsS "$admin/readyz"
echo "  /readyz: $(curl -sS "$admin/readyz")"

kc=(kcat -b "127.0.0.1:$tls_port" -X security.protocol=SSL
    -X "ssl.ca.location=$certs/ca.crt"
    -X "ssl.certificate.location=$certs/client.crt" -X "ssl.key.location=$certs/client.key")

bold "Metadata as a client sees it (kcat -L over TLS)"
md=$("${kc[@]}" -L -t "$topic")
printf '%s\n' "$md" | sed 's/^/  /'
case $md in *"$broker"*) die "the real broker address $broker reached the client" ;; esac

bold "Produce 5 messages over TLS"
msgs=$(for i in 1 2 3 4 5; do echo "hello brokerside #$i $(date -u +%H:%M:%S)"; done)
printf '%s\n' "$msgs" | sed 's/^/  > /'
printf '%s\n' "$msgs" | "${kc[@]}" -P -t "$topic" -X message.timeout.ms=30000

bold "Consume them back over TLS"
got=$("${kc[@]}" -C -t "$topic" -o beginning -c 5 -e -q -f '%p/%o: %s\n')
printf '%s\n' "$got" | sed 's/^/  < /'
[ "$(printf '%s\n' "$got" | sed 's/^[0-9]*\/[0-9]*: //')" = "$msgs" ] ||
    die "consumed messages differ from the produced ones"

if [ -n "$enc" ]; then
    bold "The broker holds ciphertext (consumed DIRECTLY from $broker, no sidecar)"
    direct=(kcat -b "$KAFKA_INTERNAL_BOOTSTRAP" -C -t "$topic" -o beginning -c 5 -e -q -f '%s\n')
    "${direct[@]}" | od -An -c | head -n 6 | sed 's/^/  /'
    "${direct[@]}" | grep -q "hello brokerside" && die "plaintext reached the broker"
    echo "  every value is an envelope (magic be 5e c0 de)"

    bold "...and so does its disk (the broker's own segment files under log.dirs)"
    segs=("$KAFKA_NODE1_LOG_DIR/$topic-0/"*.log)
    for f in "${segs[@]}"; do echo "  $f ($(stat -c %s "$f") bytes)"; done
    [ "$(cat "${segs[@]}" | wc -c)" -gt 0 ] || die "no data in the segment files"
    if grep -a -q "hello brokerside" "${segs[@]}"; then die "plaintext in the broker's segment files"; fi
    echo "  'hello brokerside' occurs 0 times in them; the first bytes of the first record batch:"
    od -An -tx1 -N 96 "${segs[0]}" | sed 's/^/  /'
fi

bold "What brokerside saw (/metrics, brokerside_* samples)"
metrics=$(curl -fsS "$admin/metrics")
printf '%s\n' "$metrics" | grep -E '^brokerside_(connections|bytes|tls_handshake|upstream|kafka_requests|topic_|records_|record_crypto|kms_|dek_)' | sed 's/^/  /' || true
printf '%s\n' "$metrics" | grep -qE '^brokerside_bytes_total(\{[^}]*\})? [1-9]' ||
    die "brokerside_bytes_total did not grow: the traffic did not go through the sidecar"

bold "Readiness and status"
echo "  /healthz: $(curl -sS "$admin/healthz")"
echo "  /readyz:  $(curl -sS "$admin/readyz")"
status=$(curl -sS "$admin/status")
echo "  /status:  ${status:0:400}"

bold "demo OK: 5 messages went through brokerside over TLS (mutual TLS, dev CA) to Apache Kafka $KAFKA_VERSION"
