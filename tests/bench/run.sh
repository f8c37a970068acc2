#!/usr/bin/env bash
# run.sh BUILD_DIR - the `make bench` harness: TLS termination in front of a byte
# sink, side by side in one run, on loopback only.
#
# Setups (each with two listeners: "bulk" -> a discarding sink, "rtt" -> an echo server):
#   direct       plaintext straight to the sink/echo (the ceiling; no TLS)
#   bs-w1/bs-w2  brokerside, protocol tcp, workers 1 / 2   (skipped, with the reason, if
#                BUILD_DIR/brokerside is not a working daemon yet)
#   stunnel      stunnel4 in server mode (a thread per connection)
#   haproxy-t1/t2  HAProxy `mode tcp`, `bind ... ssl crt`, nbthread 1 / 2
# TLS is the same for all: exactly TLS 1.3, TLS_AES_128_GCM_SHA256, X25519, ECDSA P-256
# server certificate (certs/make-dev-certs.sh), full handshakes (no resumption); the
# client pins version, suite and group, so no setup can negotiate anything else.
#
# Measures (bs_bench_load; each REPS times, interleaved across setups, median kept):
#   bulk throughput with 1 and 16 connections for SECONDS each (MB/s, 10^6 bytes)
#   1 KiB request/response round trips over one connection (p50/p99 microseconds),
#   once as the scheduler places things and once with client, proxy and echo server
#   pinned to one CPU (taskset): cross-CPU wake-ups cost ~20 us each in this VM and
#   make the unpinned numbers bimodal; the pinned run shows the proxy's own cost
#   memory per idle TLS connection: a fresh proxy, VmRSS before and after IDLE_CONNS
#   connections (each handshaken and carrying one 1 KiB echo), divided by IDLE_CONNS
# Prints a table and writes it as markdown to BUILD_DIR/bench-results.md.
# Environment overrides: BENCH_REPS (3), BENCH_SECONDS (3), BENCH_IDLE_CONNS (5000),
# BENCH_SETUPS (space-separated subset of the setup names, default all).
# Every process started here is stopped on exit (trap EXIT), whatever happens.
set -uo pipefail

BUILD=${1:?usage: tests/bench/run.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${BENCH_REPS:-3}
SECS=${BENCH_SECONDS:-3}
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
OUT_MD=$BUILD/bench-results.md
LOAD=$BUILD/bs_bench_load
SINK=$BUILD/bs_bench_sink
PY=/usr/bin/python3
TLS13_SUITE=TLS_AES_128_GCM_SHA256

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

for t in "$LOAD" "$SINK"; do [ -x "$t" ] || die "$t missing (build first: make build)"; done
command -v stunnel4 >/dev/null || die "stunnel4 not installed (make deps)"
command -v haproxy >/dev/null || die "haproxy not installed (make deps)"
command -v ss >/dev/null || die "ss (iproute2) not installed (make deps)"

# Two descriptors per proxied connection plus the client's: 5,000 idle connections
# need ~10,000 in the proxy. The tools raise their own soft limit too.
ulimit -n 20000 2>/dev/null || die "cannot raise the open-file limit to 20000 (hard limit: $(ulimit -Hn))"

TMP=$(mktemp -d /tmp/bs-bench.XXXXXX)
PIDS=()

# Stop every process this script started (TERM, then KILL after 5 s), remove TMP.
cleanup() {
    local p i
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do
        for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        { wait "$p"; } 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID WHAT: stop one process started here and forget it. A process that
# dies of anything but our TERM (or the KILL after 5 s) is reported by name.
stop_pid() {
    local p=$1 what=${2:-process} i rc keep=()
    kill -TERM "$p" 2>/dev/null
    for i in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
    # The braces keep bash's own "Segmentation fault" job notice off the output.
    { wait "$p"; } 2>/dev/null
    rc=$?
    case $rc in 0 | 1 | 143 | 137) ;; *) log "$what (pid $p) ended with status $rc while being stopped" ;; esac
    for i in "${PIDS[@]}"; do [ "$i" = "$p" ] || keep+=("$i"); done
    PIDS=("${keep[@]}")
}

# free_port: print a loopback TCP port that is free right now (the kernel picks it).
free_port() {
    $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_listen PORT PID WHAT: wait up to 20 s until PORT is listening; fail if PID died.
wait_listen() {
    local i
    for i in $(seq 200); do
        kill -0 "$2" 2>/dev/null || { log "$3 exited before listening on $1"; return 1; }
        [ -n "$(ss -Hltn "sport = :$1" 2>/dev/null)" ] && return 0
        sleep 0.1
    done
    log "$3 not listening on $1 after 20 s"
    return 1
}

# rss_kib PID: the process's resident set (VmRSS) in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# ---- certificates and sinks ----
"$SRC/certs/make-dev-certs.sh" "$TMP/certs" >/dev/null || die "certificate generation failed"
CERTS=$TMP/certs
cat "$CERTS/server.crt" "$CERTS/server.key" >"$CERTS/server.pem" # HAProxy wants one file

# start_sink MODE: start a sink/echo server; sets SINK_PORT.
start_sink() {
    "$SINK" --mode "$1" >"$TMP/sink-$1.out" 2>"$TMP/sink-$1.err" &
    PIDS+=($!)
    local i
    for i in $(seq 100); do
        SINK_PORT=$(awk '/^PORT/ {print $2}' "$TMP/sink-$1.out" 2>/dev/null)
        [ -n "$SINK_PORT" ] && return 0
        kill -0 "${PIDS[-1]}" 2>/dev/null || break
        sleep 0.1
    done
    die "sink ($1) did not start: $(cat "$TMP/sink-$1.err")"
}
start_sink sink; SINK_BULK=$SINK_PORT
start_sink echo; SINK_ECHO=$SINK_PORT; ECHO_PID=${PIDS[-1]}

# ---- proxies ----
# Each start_* NAME THREADS BULK_PORT RTT_PORT starts one proxy with a bulk listener
# (to the sink) and an rtt listener (to the echo server) and sets STARTED_PID; it
# returns 1 (reason on stderr) when the proxy does not come up.

start_brokerside() {
    local name=$1 threads=$2 pb=$3 pr=$4 cfg=$TMP/$1.json
    local tls="\"tls\": {\"cert\": \"$CERTS/server.crt\", \"key\": \"$CERTS/server.key\", \"client_auth\": \"none\", \"min_version\": \"TLSv1.3\", \"ciphersuites\": \"$TLS13_SUITE\"}"
    cat >"$cfg" <<EOF
// Written by tests/bench/run.sh: TLS termination of opaque bytes in front of the sinks.
{
  "workers": $threads,
  "log_level": "warn",
  "admin": null,
  "limits": { "max_connections": 12000 },
  "listeners": [
    { "name": "bulk", "bind": "127.0.0.1:$pb", "upstream": "127.0.0.1:$SINK_BULK", "protocol": "tcp", $tls },
    { "name": "rtt",  "bind": "127.0.0.1:$pr", "upstream": "127.0.0.1:$SINK_ECHO", "protocol": "tcp", $tls }
  ]
}
EOF
    if ! "$BUILD/brokerside" --check-config "$cfg" >"$TMP/$name.check" 2>&1; then
        log "brokerside rejects the bench config: $(head -c 600 "$TMP/$name.check")"
        return 1
    fi
    "$BUILD/brokerside" --config "$cfg" >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_listen "$pb" "$STARTED_PID" "brokerside ($name)" && wait_listen "$pr" "$STARTED_PID" "brokerside ($name)" || {
        log "brokerside log: $(tail -c 600 "$TMP/$name.log")"
        return 1
    }
}

start_stunnel() {
    local name=$1 pb=$3 pr=$4 cfg=$TMP/$1.conf
    # stunnel has no worker-count knob: it runs a thread per connection.
    cat >"$cfg" <<EOF
; Written by tests/bench/run.sh
foreground = yes
pid =
debug = warning
socket = l:TCP_NODELAY=1
socket = r:TCP_NODELAY=1
[bulk]
accept = 127.0.0.1:$pb
connect = 127.0.0.1:$SINK_BULK
cert = $CERTS/server.crt
key = $CERTS/server.key
sslVersionMin = TLSv1.3
ciphersuites = $TLS13_SUITE
[rtt]
accept = 127.0.0.1:$pr
connect = 127.0.0.1:$SINK_ECHO
cert = $CERTS/server.crt
key = $CERTS/server.key
sslVersionMin = TLSv1.3
ciphersuites = $TLS13_SUITE
EOF
    stunnel4 "$cfg" >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_listen "$pb" "$STARTED_PID" "stunnel" && wait_listen "$pr" "$STARTED_PID" "stunnel" || {
        log "stunnel log: $(tail -c 600 "$TMP/$name.log")"
        return 1
    }
}

start_haproxy() {
    local name=$1 threads=$2 pb=$3 pr=$4 cfg=$TMP/$1.cfg
    local bindopts="ssl crt $CERTS/server.pem ssl-min-ver TLSv1.3 ciphersuites $TLS13_SUITE"
    # maxconn 9000: two descriptors per proxied connection must fit in 20,000.
    cat >"$cfg" <<EOF
# Written by tests/bench/run.sh
global
    nbthread $threads
    maxconn 9000
defaults
    mode tcp
    timeout connect 5s
    timeout client 600s
    timeout server 600s
listen bulk
    bind 127.0.0.1:$pb $bindopts
    server sink 127.0.0.1:$SINK_BULK
listen rtt
    bind 127.0.0.1:$pr $bindopts
    server echo 127.0.0.1:$SINK_ECHO
EOF
    haproxy -db -f "$cfg" >"$TMP/$name.log" 2>&1 &
    STARTED_PID=$!
    PIDS+=("$STARTED_PID")
    wait_listen "$pb" "$STARTED_PID" "haproxy ($name)" && wait_listen "$pr" "$STARTED_PID" "haproxy ($name)" || {
        log "haproxy log: $(tail -c 600 "$TMP/$name.log")"
        return 1
    }
}

# start_setup NAME: start the proxy of setup NAME on fresh ports; sets STARTED_PID,
# PORT_BULK, PORT_RTT. The direct setup starts nothing.
start_setup() {
    STARTED_PID=
    case $1 in
    direct) PORT_BULK=$SINK_BULK; PORT_RTT=$SINK_ECHO; return 0 ;;
    esac
    PORT_BULK=$(free_port); PORT_RTT=$(free_port)
    [ "$PORT_BULK" != "$PORT_RTT" ] || PORT_RTT=$(free_port)
    case $1 in
    bs-w1) start_brokerside "$1" 1 "$PORT_BULK" "$PORT_RTT" ;;
    bs-w2) start_brokerside "$1" 2 "$PORT_BULK" "$PORT_RTT" ;;
    stunnel) start_stunnel "$1" 0 "$PORT_BULK" "$PORT_RTT" ;;
    haproxy-t1) start_haproxy "$1" 1 "$PORT_BULK" "$PORT_RTT" ;;
    haproxy-t2) start_haproxy "$1" 2 "$PORT_BULK" "$PORT_RTT" ;;
    *) die "unknown setup $1" ;;
    esac
}

# pin CPUS PID...: set the CPU affinity of every thread of each PID (threads they
# create later inherit it).
pin() {
    local cpus=$1 p
    shift
    for p in "$@"; do taskset -a -p -c "$cpus" "$p" >/dev/null || log "taskset $cpus $p failed"; done
}
ALL_CPUS=0-$(($(nproc) - 1))
PIN_CPU=$(($(nproc) - 1))

# set_tls_args SETUP: TARGS = the client's TLS options for that setup (none for direct).
set_tls_args() {
    TARGS=()
    [ "$1" = direct ] && return 0
    TARGS=(--tls --ca "$CERTS/ca.crt" --servername localhost --tls-version 1.3
        --ciphersuites "$TLS13_SUITE" --groups X25519)
}

# ---- which setups run ----
SETUPS=(direct)
BS_NOTE=
if [ -x "$BUILD/brokerside" ] && "$BUILD/brokerside" --help 2>&1 | grep -q -- '--config'; then
    SETUPS+=(bs-w1 bs-w2)
else
    BS_NOTE="brokerside not measured: $BUILD/brokerside is not the daemon yet (no --config in --help)"
    log "$BS_NOTE"
fi
SETUPS+=(stunnel haproxy-t1 haproxy-t2)
if [ -n "${BENCH_SETUPS:-}" ]; then # a subset, for quick comparisons while developing
    keep=()
    for s in "${SETUPS[@]}"; do [[ " $BENCH_SETUPS " == *" $s "* ]] && keep+=("$s"); done
    [ ${#keep[@]} -gt 0 ] || die "BENCH_SETUPS='$BENCH_SETUPS' names none of: ${SETUPS[*]}"
    SETUPS=("${keep[@]}")
fi

declare -A BULK_PORT RTT_PORT SETUP_PID RES
RUNNING=()
NOTES=() # lines for the results file: what went wrong, so numbers are read with it
for s in "${SETUPS[@]}"; do
    if start_setup "$s"; then
        BULK_PORT[$s]=$PORT_BULK; RTT_PORT[$s]=$PORT_RTT; SETUP_PID[$s]=$STARTED_PID; RUNNING+=("$s")
    else
        log "setup $s could not start; its columns stay empty"
        NOTES+=("setup $s could not start (see the run's output); its columns are empty")
        [ -n "$STARTED_PID" ] && stop_pid "$STARTED_PID" "$s"
    fi
done

# record SETUP METRIC VALUE: append one repetition's value ("" = failed).
record() { RES[$1,$2]="${RES[$1,$2]:-} ${3:-x}"; }

# get FIELD LINE: the value of key FIELD in a RESULT line.
get() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

log "loadavg before the run: $(cut -d' ' -f1-3 /proc/loadavg); setups: ${RUNNING[*]}"
START_TS=$(date +%s)
for rep in $(seq "$REPS"); do
    for s in "${RUNNING[@]}"; do
        set_tls_args "$s"
        for c in 1 16; do
            line=$("$LOAD" --mode bulk --port "${BULK_PORT[$s]}" --conns $c --seconds "$SECS" "${TARGS[@]}" 2>>"$TMP/load.err")
            record "$s" "bulk$c" "$(get mbps "$line")"
        done
        line=$("$LOAD" --mode rtt --port "${RTT_PORT[$s]}" --conns 1 --size 1024 --seconds "$SECS" "${TARGS[@]}" 2>>"$TMP/load.err")
        record "$s" p50 "$(get p50_us "$line")"
        record "$s" p99 "$(get p99_us "$line")"
        # The same with client, proxy and echo server on one CPU: no cross-CPU
        # wake-ups (expensive in a VM), so the proxy's own per-request cost shows.
        pids=("$ECHO_PID"); [ -n "${SETUP_PID[$s]}" ] && pids+=("${SETUP_PID[$s]}")
        pin "$PIN_CPU" "${pids[@]}"
        line=$(taskset -c "$PIN_CPU" "$LOAD" --mode rtt --port "${RTT_PORT[$s]}" --conns 1 --size 1024 --seconds "$SECS" "${TARGS[@]}" 2>>"$TMP/load.err")
        pin "$ALL_CPUS" "${pids[@]}"
        record "$s" p50s "$(get p50_us "$line")"
        record "$s" p99s "$(get p99_us "$line")"
        log "rep $rep $s: bulk1 ${RES[$s,bulk1]##* } bulk16 ${RES[$s,bulk16]##* } MB/s, rtt p50 ${RES[$s,p50]##* } p99 ${RES[$s,p99]##* } us; one CPU: p50 ${RES[$s,p50s]##* } p99 ${RES[$s,p99s]##* } us"
    done
done
for s in "${RUNNING[@]}"; do
    p=${SETUP_PID[$s]}
    if [ -n "$p" ] && ! kill -0 "$p" 2>/dev/null; then
        log "setup $s (pid $p) died during the throughput/latency runs"
        NOTES+=("setup $s died during the throughput/latency runs; its failed repetitions are marked x")
    fi
done

# ---- memory per idle TLS connection: a fresh proxy per repetition ----
for s in "${RUNNING[@]}"; do
    case $s in direct | bs-w2 | haproxy-t2) continue ;; esac
    for rep in $(seq "$REPS"); do
        if ! start_setup "$s"; then
            [ -n "$STARTED_PID" ] && stop_pid "$STARTED_PID" "$s"
            record "$s" mem ""; continue
        fi
        pid=$STARTED_PID
        sleep 0.5
        rss0=$(rss_kib "$pid")
        : >"$TMP/idle.out" # exists before the poll below reads it
        set_tls_args "$s"
        "$LOAD" --mode idle --port "$PORT_RTT" --conns "$IDLE_CONNS" --ping 1024 --hold 300 "${TARGS[@]}" >"$TMP/idle.out" 2>>"$TMP/load.err" &
        lpid=$!; PIDS+=("$lpid")
        ok=
        for i in $(seq 1200); do
            grep -qs '^READY' "$TMP/idle.out" && { ok=1; break; }
            kill -0 "$lpid" 2>/dev/null || break
            sleep 0.1
        done
        if [ -n "$ok" ]; then
            sleep 1 # let the proxy finish what the last connections started
            rss1=$(rss_kib "$pid")
            kib=$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_CONNS" 'BEGIN {printf "%.1f", (b - a) / n}')
            record "$s" mem "$kib"
            log "rep $rep $s: VmRSS $rss0 -> $rss1 KiB with $IDLE_CONNS idle TLS connections: $kib KiB each"
        else
            record "$s" mem ""
            log "rep $rep $s: idle connections failed: $(tail -n 3 "$TMP/load.err")"
            NOTES+=("$s: idle-connection repetition $rep failed: $(tail -n 1 "$TMP/load.err")")
        fi
        stop_pid "$lpid" "load generator"
        stop_pid "$pid" "$s"
    done
done
ELAPSED=$(( $(date +%s) - START_TS ))

# ---- results ----
# median SETUP METRIC: median of the successful repetitions, "" if none.
median() {
    tr ' ' '\n' <<<"${RES[$1,$2]:-}" | grep -E '^[0-9.]+$' | sort -g |
        awk '{v[NR]=$1} END {if (NR == 0) exit; if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'
}
# nfail SETUP METRIC: how many repetitions failed.
nfail() { tr ' ' '\n' <<<"${RES[$1,$2]:-}" | grep -c '^x$'; }

METRICS=(bulk1 bulk16 p50 p99 p50s p99s mem)
declare -A MNAME=([bulk1]="bulk, 1 conn (MB/s)" [bulk16]="bulk, 16 conns (MB/s)" [p50]="1 KiB RTT p50 (us)"
    [p99]="1 KiB RTT p99 (us)" [p50s]="1 KiB RTT p50, one CPU (us)" [p99s]="1 KiB RTT p99, one CPU (us)"
    [mem]="idle TLS conn (KiB each)")
declare -A MED
for s in "${SETUPS[@]}"; do for m in "${METRICS[@]}"; do MED[$s,$m]=$(median "$s" "$m"); done; done

ratio() { # A B: A/B with 2 decimals, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'
}
# goal LABEL BS REF METRIC MIN_RATIO|MAX_RATIO: one goal row (bigger is better for
# throughput, smaller for latency and memory).
goal_row() {
    local label=$1 bs=$2 ref=$3 m=$4 kind=$5 limit=$6
    local a=${MED[$bs,$m]:-} b=${MED[$ref,$m]:-} r verdict
    r=$(ratio "$a" "$b")
    if [ "$r" = n/a ]; then verdict="not measured"
    else verdict=$(awk -v r="$r" -v l="$limit" -v k="$kind" 'BEGIN {ok = (k == "min") ? (r >= l) : (r <= l); print ok ? "PASS" : "FAIL"}')
    fi
    echo "| $label | $bs | ${a:-n/a} | $ref | ${b:-n/a} | $r | $([ "$kind" = min ] && echo ">=" || echo "<=") $limit | $verdict |"
}

{
    echo "# brokerside benchmark results"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); run time ${ELAPSED}s; repetitions: $REPS (median shown); ${SECS}s per throughput/latency measurement; $IDLE_CONNS idle connections"
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r), loadavg at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $(openssl version | head -1); $(haproxy -v | head -1 | cut -d' ' -f1-3); $(stunnel4 -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2)"
    echo "- TLS: TLSv1.3 $TLS13_SUITE, X25519, ECDSA P-256 certificate, full handshakes; client, proxy and sink share the machine's CPUs"
    [ -n "$BS_NOTE" ] && echo "- $BS_NOTE"
    for n in "${NOTES[@]}"; do echo "- NOTE: $n"; done
    echo
    printf '| metric |'; for s in "${SETUPS[@]}"; do printf ' %s |' "$s"; done; echo
    printf '|---|'; for s in "${SETUPS[@]}"; do printf -- '---:|'; done; echo
    for m in "${METRICS[@]}"; do
        printf '| %s |' "${MNAME[$m]}"
        for s in "${SETUPS[@]}"; do
            v=${MED[$s,$m]:-}; f=$(nfail "$s" "$m")
            if [ "$m" = mem ] && { [ "$s" = direct ] || [ "$s" = bs-w2 ] || [ "$s" = haproxy-t2 ]; }; then v="-"
            elif [ -z "$v" ]; then v="n/a"
            fi
            [ "$f" -gt 0 ] && [ "$v" != "-" ] && v="$v ($f failed)"
            printf ' %s |' "$v"
        done
        echo
    done
    echo
    echo "## Goals"
    echo
    echo "| goal | brokerside | value | reference | value | ratio | target | verdict |"
    echo "|---|---|---:|---|---:|---:|---:|---|"
    for bs in bs-w1 bs-w2; do
        ha=haproxy-t${bs#bs-w}
        goal_row "bulk 1 conn >= 1.2x stunnel" $bs stunnel bulk1 min 1.2
        goal_row "bulk 16 conns >= 1.2x stunnel" $bs stunnel bulk16 min 1.2
        goal_row "bulk 1 conn >= HAProxy" $bs $ha bulk1 min 1.0
        goal_row "bulk 16 conns >= HAProxy" $bs $ha bulk16 min 1.0
        goal_row "RTT p99 <= HAProxy" $bs $ha p99 max 1.0
        goal_row "RTT p99, one CPU <= HAProxy" $bs $ha p99s max 1.0
    done
    goal_row "idle TLS conn memory <= HAProxy" bs-w1 haproxy-t1 mem max 1.0
    echo
    echo "## Other ratios"
    echo
    echo "| ratio | bulk 1 | bulk 16 | RTT p50 | RTT p99 | RTT p50, one CPU | RTT p99, one CPU | idle memory |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    for pair in "bs-w1 stunnel" "bs-w2 stunnel" "bs-w1 haproxy-t1" "bs-w2 haproxy-t2" "haproxy-t1 stunnel" "haproxy-t2 stunnel" "stunnel direct" "haproxy-t2 direct"; do
        set -- $pair
        printf '| %s / %s |' "$1" "$2"
        for m in "${METRICS[@]}"; do printf ' %s |' "$(ratio "${MED[$1,$m]:-}" "${MED[$2,$m]:-}")"; done
        echo
    done
    echo
    echo "Raw values per repetition (x = failed):"
    echo
    for s in "${SETUPS[@]}"; do for m in "${METRICS[@]}"; do
        [ -n "${RES[$s,$m]:-}" ] && echo "- $s $m:${RES[$s,$m]}"
    done; done
} >"$OUT_MD"

echo
cat "$OUT_MD"
echo
log "results written to $OUT_MD"
if [ -s "$TMP/load.err" ]; then
    log "load generator errors (last lines):"
    tail -n 10 "$TMP/load.err" >&2
fi
"$SRC/tests/bench/kafka_bench.sh" "$BUILD" || log "kafka_bench failed (see its output above)"
"$SRC/tests/bench/encryption_bench.sh" "$BUILD" || log "encryption_bench failed (see its output above)"
"$SRC/tests/bench/audit_bench.sh" "$BUILD" || log "audit_bench failed (see its output above)"
