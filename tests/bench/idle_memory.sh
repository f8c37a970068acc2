#!/usr/bin/env bash
# idle_memory.sh BUILD_DIR - memory per idle connection, TLS vs mTLS on a kafka listener.
#
# For each variant a fresh brokerside (1 worker, nothing else configured) in front of
# the bench echo server; VmRSS is read before and after BENCH_IDLE_CONNS (default 2000)
# connections, each handshaken (TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, ECDSA P-256)
# and having carried one exchange, then held idle. The difference divided by the
# number of connections is the cost of one idle connection (median of BENCH_REPS, 3).
#   tls-tcp      `tcp` listener, TLS, no client certificate; one 1 KiB echo
#   mtls-tcp     the same with client_auth required (the dev client certificate)
#   tls-kafka    `kafka` listener, TLS, no client certificate; one Kafka
#                request/response (a 1 KiB Heartbeat whose echo parses as its
#                answer) so the Kafka session exists and has worked
#   mtls-kafka   the same with client_auth required: the issue's configuration
# Prints one plain-text table on stdout (run.sh embeds it in bench-results.md).
set -uo pipefail
BUILD=${1:?usage: idle_memory.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CONNS=${BENCH_IDLE_CONNS:-2000}
REPS=${BENCH_REPS:-3}
VARIANTS=${BENCH_IDLE_VARIANTS:-"tls-tcp mtls-tcp tls-kafka mtls-kafka"}
LOAD=$BUILD/bs_bench_load
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bs-idlemem.XXXXXX")
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$TMP"
}
trap cleanup EXIT
log() { echo "idle_memory: $*" >&2; }
. "$SRC/tests/bench/bench_lib.sh"
median() { sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "-"}'; }

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
bash "$SRC/certs/make-dev-certs.sh" "$TMP/certs" >/dev/null || { log "cannot make certs"; exit 1; }
"$BUILD/bs_bench_sink" --mode echo >"$TMP/echo.out" 2>"$TMP/echo.err" &
PIDS+=($!)
for i in $(seq 100); do
    ECHO=$(awk '/^PORT/ {print $2}' "$TMP/echo.out" 2>/dev/null); [ -n "$ECHO" ] && break; sleep 0.1
done
[ -n "${ECHO:-}" ] || { log "echo server did not start"; exit 1; }

# one_rep VARIANT: prints KiB per idle connection, or nothing on failure
one_rep() {
    local v=$1 port proto auth extra
    port=$(free_port)
    local cert=(--cert "$TMP/certs/client.crt" --key "$TMP/certs/client.key")
    case $v in
    tls-tcp) proto=tcp; auth=none; extra=(--ping 1024) ;;
    mtls-tcp) proto=tcp; auth=required; extra=(--ping 1024 "${cert[@]}") ;;
    tls-kafka) proto=kafka; auth=none; extra=(--ping 1024 --kafka-ping) ;;
    mtls-kafka) proto=kafka; auth=required; extra=(--ping 1024 --kafka-ping "${cert[@]}") ;;
    esac
    cat >"$TMP/$v.json" <<EOF
{"workers": 1, "log_level": "warn", "admin": null,
 "limits": {"max_connections": $((CONNS + 100))},
 "listeners": [{"name": "$v", "bind": "127.0.0.1:$port", "upstream": "127.0.0.1:$ECHO",
   "protocol": "$proto", "broker_id": 1,
   "tls": {"cert": "$TMP/certs/server.crt", "key": "$TMP/certs/server.key",
           "client_ca": "$TMP/certs/ca.crt", "client_auth": "$auth"}}],
 "kafka": {"advertise": {"1": "127.0.0.1:$port"}}}
EOF
    "$BUILD/brokerside" --config "$TMP/$v.json" 2>>"$TMP/$v.log" &
    local pid=$! lpid
    PIDS+=("$pid")
    for i in $(seq 100); do
        /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1).close()" 2>/dev/null && break
        sleep 0.1
    done
    sleep 0.5
    local rss0 rss1
    rss0=$(rss_kib "$pid")
    : >"$TMP/idle.out"
    "$LOAD" --mode idle --port "$port" --conns "$CONNS" --hold 300 --tls --ca "$TMP/certs/ca.crt" \
        "${extra[@]}" >"$TMP/idle.out" 2>>"$TMP/load.err" &
    lpid=$!
    PIDS+=("$lpid")
    if wait_ready_line "$TMP/idle.out" "$lpid"; then
        sleep 1
        rss1=$(rss_kib "$pid")
        awk -v a="$rss0" -v b="$rss1" -v n="$CONNS" 'BEGIN {printf "%.1f\n", (b - a) / n}'
        log "$v: VmRSS $rss0 -> $rss1 KiB with $CONNS idle connections"
    else
        log "$v: failed: $(tail -n 2 "$TMP/load.err"; tail -n 2 "$TMP/$v.log")"
    fi
    kill "$lpid" 2>/dev/null; wait "$lpid" 2>/dev/null
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
}

declare -A RES
for rep in $(seq "$REPS"); do
    for v in $VARIANTS; do
        r=$(one_rep "$v")
        RES[$v]="${RES[$v]:-} $r"
    done
done
printf '%-12s %-28s %s\n' "variant" "KiB per idle connection" "(median of $REPS, $CONNS connections, one worker)"
for v in $VARIANTS; do
    m=$(echo "${RES[$v]}" | tr ' ' '\n' | grep -v '^$' | median)
    printf '%-12s %-28s %s\n' "$v" "$m" "all: ${RES[$v]# }"
done
