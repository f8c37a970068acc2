#!/usr/bin/env bash
# run.sh BUILD_DIR - the `make bench` harness. Parts (BENCH_PARTS, default all, in
# this order; each appends its own section to BUILD_DIR/bench-results.md and prints it):
#   proxy    issue 2: TLS termination in front of a byte sink vs stunnel4 / HAProxy (below)
#   crypto   issue 4: record encryption MB/s on one core vs `openssl speed -evp
#            aes-256-gcm` on the same core, run right after it (bs_bench_crypto --openssl)
#   logtail  issue 5: log lines/s through tail -> spool -> file sink, one core
#   audit    issue 5: audit events/s rendered and chained (no goal of its own)
#   sinks    issue 6: events/s from the spool to each AWS sink against moto_server;
#            brokerside's CPU per 10,000 events vs the endpoint's (moto's) in the same run
#   kafka    issue 3: tests/bench/kafka_bench.sh (kcat through direct / tcp / kafka paths)
#   audit-cost issue 5: tests/bench/audit_bench.sh (proxy throughput, audit off vs each)
#   idle-memory issue 11: tests/bench/idle_memory.sh (KiB per idle TLS / mTLS, tcp / kafka
#            connection, each in a fresh process)
#   kafka-real issue 10: tests/bench/kafka_real_bench.sh (Kafka's perf tools against a real
#            broker through brokerside and Kroxylicious; BENCH_REPS rounds)
#   authz    issue 13: tests/bench/authz_bench.sh (produce CPU/MB, 1,000-rule policy vs none)
#   locks    issue 12: build/bs_bench_locks (ns per request on the per-request path's shared
#            locks, 1/2/4/8 threads, and the slowdown against one thread)
# More parts come from other engineers' scripts, one `bench_part NAME CMD...` line each
# at the end of this file (see bench_part).
#
# The proxy part, on loopback only:
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
# BENCH_SETUPS (space-separated subset of the setup names, default all),
# BENCH_PARTS (space-separated subset of the parts, default all), BENCH_LOG_LINES
# (logtail part: lines per repetition, 500000), BENCH_AUDIT_EVENTS (200000),
# BENCH_SINK_EVENTS (sinks part: events per sink and repetition, 20000), BENCH_OUT
# (the results file, default BUILD_DIR/bench-results.md).
# BENCH_REPS and BENCH_SECONDS apply to every part.
# Every process started here is stopped on exit (trap EXIT), whatever happens.
set -uo pipefail

BUILD=${1:?usage: tests/bench/run.sh BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd) || exit 2
SRC=$(cd "$(dirname "$0")/../.." && pwd)
REPS=${BENCH_REPS:-3}
SECS=${BENCH_SECONDS:-3}
IDLE_CONNS=${BENCH_IDLE_CONNS:-5000}
OUT_MD=${BENCH_OUT:-$BUILD/bench-results.md}
LOAD=$BUILD/bs_bench_load
SINK=$BUILD/bs_bench_sink
PY=/usr/bin/python3
TLS13_SUITE=TLS_AES_128_GCM_SHA256

LOG_LINES=${BENCH_LOG_LINES:-500000}
AUDIT_EVENTS=${BENCH_AUDIT_EVENTS:-200000}
SINK_EVENTS=${BENCH_SINK_EVENTS:-20000}

die() { echo "bench: $*" >&2; exit 1; }
log() { echo "bench: $*" >&2; }

for v in REPS SECS LOG_LINES AUDIT_EVENTS SINK_EVENTS; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v='${!v}' is not a positive integer"
done

# Known parts: the built-in ones and every `bench_part NAME` line of this file, so a
# misspelt BENCH_PARTS entry stops the run at once instead of silently measuring less.
KNOWN_PARTS="proxy crypto logtail audit sinks $(sed -n 's/^bench_part \([a-z0-9_-]*\) .*/\1/p' "$0" | tr '\n' ' ')"
PARTS=${BENCH_PARTS:-$KNOWN_PARTS}
for p in $PARTS; do [[ " $KNOWN_PARTS " == *" $p "* ]] || die "BENCH_PARTS: unknown part '$p' (known: $KNOWN_PARTS)"; done
[ -n "${PARTS// /}" ] || die "BENCH_PARTS is empty"
# want PART: true if PART is to run.
want() { [[ " $PARTS " == *" $1 "* ]]; }

if want proxy; then
    for t in "$LOAD" "$SINK"; do [ -x "$t" ] || die "$t missing (build first: make build)"; done
    command -v stunnel4 >/dev/null || die "stunnel4 not installed (make deps)"
    command -v haproxy >/dev/null || die "haproxy not installed (make deps)"
    command -v ss >/dev/null || die "ss (iproute2) not installed (make deps)"
fi

# Two descriptors per proxied connection plus the client's: 5,000 idle connections
# need ~10,000 in the proxy. The tools raise their own soft limit too.
ulimit -n 20000 2>/dev/null || die "cannot raise the open-file limit to 20000 (hard limit: $(ulimit -Hn))"

TMP=$(mktemp -d /tmp/bs-bench.XXXXXX)
PIDS=()
# The component tools make their scratch directories under TMPDIR: inside TMP, so
# whatever a killed tool leaves behind goes with it.
export TMPDIR=$TMP

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

# rss_kib, free_port, wait_ready_line (shared with idle_memory.sh)
. "$SRC/tests/bench/bench_lib.sh"

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

# run_bg OUT ERR CMD...: run CMD in the background with stdout to OUT (- = this
# script's stdout) and stderr appended to ERR, wait for it, return its exit status.
# In the background so that the EXIT trap stops it if the run is interrupted.
run_bg() {
    local out=$1 err=$2 pid rc i keep=()
    shift 2
    if [ "$out" = - ]; then "$@" 2>>"$err" & else "$@" >"$out" 2>>"$err" & fi
    pid=$!; PIDS+=("$pid")
    wait "$pid"; rc=$?
    for i in "${PIDS[@]}"; do [ "$i" = "$pid" ] || keep+=("$i"); done
    PIDS=("${keep[@]}")
    return $rc
}


ALL_CPUS=0-$(($(nproc) - 1))
PIN_CPU=$(($(nproc) - 1))

# ---- results helpers (all parts) ----
declare -A RES
# record SETUP METRIC VALUE: append one repetition's value ("" = failed).
record() { RES[$1,$2]="${RES[$1,$2]:-} ${3:-x}"; }

# get FIELD LINE: the value of key FIELD in a RESULT line ("" if absent or not a number).
get() { sed -n "s/.*[ ]$1=\([0-9.]*\).*/\1/p" <<<"$2"; }

# median SETUP METRIC: median of the successful repetitions, "" if none.
median() {
    tr ' ' '\n' <<<"${RES[$1,$2]:-}" | grep -E '^[0-9.]+$' | sort -g |
        awk '{v[NR]=$1} END {if (NR == 0) exit; if (NR % 2) print v[(NR+1)/2]; else printf "%.1f\n", (v[NR/2]+v[NR/2+1])/2}'
}
# nfail SETUP METRIC: how many repetitions failed.
nfail() { tr ' ' '\n' <<<"${RES[$1,$2]:-}" | grep -c '^x$'; }

ratio() { # A B: A/B with 2 decimals, or n/a
    awk -v a="$1" -v b="$2" 'BEGIN {if (a == "" || b == "" || b + 0 == 0) print "n/a"; else printf "%.2f", a / b}'
}

# verdict VALUE min|max LIMIT: PASS / FAIL, or "not measured" for an empty VALUE.
verdict() {
    [ -n "$1" ] || { echo "not measured"; return; }
    awk -v r="$1" -v l="$3" -v k="$2" 'BEGIN {ok = (k == "min") ? (r >= l) : (r <= l); print ok ? "PASS" : "FAIL"}'
}

# comp_row LABEL KEY METRIC: a table row "| LABEL | median | failed | raw values |".
comp_row() {
    local v f
    v=$(median "$2" "$3"); f=$(nfail "$2" "$3")
    echo "| $1 | ${v:-n/a} | $f | ${RES[$2,$3]:- (none)} |"
}

{
    echo "# brokerside benchmark results"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); parts: $(echo $PARTS); repetitions: $REPS (median shown); ${SECS}s per timed measurement"
    echo "- machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), kernel $(uname -r), loadavg at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- $(openssl version | head -1)"
    echo
} | tee "$OUT_MD"

# ---- part proxy (issue 2): TLS termination vs stunnel4 and HAProxy ----
# (The part's body is not indented, to keep its history readable.)
if want proxy; then

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

declare -A BULK_PORT RTT_PORT SETUP_PID
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

PROXY_LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
log "loadavg before the run: $PROXY_LOADAVG; setups: ${RUNNING[*]}"
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
        if wait_ready_line "$TMP/idle.out" "$lpid"; then
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
METRICS=(bulk1 bulk16 p50 p99 p50s p99s mem)
declare -A MNAME=([bulk1]="bulk, 1 conn (MB/s)" [bulk16]="bulk, 16 conns (MB/s)" [p50]="1 KiB RTT p50 (us)"
    [p99]="1 KiB RTT p99 (us)" [p50s]="1 KiB RTT p50, one CPU (us)" [p99s]="1 KiB RTT p99, one CPU (us)"
    [mem]="idle TLS conn (KiB each)")
declare -A MED
for s in "${SETUPS[@]}"; do for m in "${METRICS[@]}"; do MED[$s,$m]=$(median "$s" "$m"); done; done

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
    echo "## TLS termination (issue 2): brokerside vs stunnel4 and HAProxy"
    echo
    echo "- run time ${ELAPSED}s; repetitions: $REPS (median shown); ${SECS}s per throughput/latency measurement; $IDLE_CONNS idle connections; loadavg at the start of this part $PROXY_LOADAVG"
    echo "- $(haproxy -v | head -1 | cut -d' ' -f1-3); $(stunnel4 -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2)"
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
    echo "### Goals (TLS termination)"
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
    echo "### Other ratios (TLS termination)"
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
    echo
} | tee -a "$OUT_MD"

if [ -s "$TMP/load.err" ]; then
    log "load generator errors (last lines):"
    tail -n 10 "$TMP/load.err" >&2
fi
# The sinks, echo server and proxies must not share the CPUs with the parts below.
for p in "${PIDS[@]}"; do stop_pid "$p" "proxy part process"; done
fi # want proxy

# ---- part crypto (issue 4): record encryption vs `openssl speed`, one core ----
# bs_bench_crypto encrypts 1 KiB values into envelopes for SECS s, decrypts, rewrites
# 100-record batches, then runs `openssl speed -evp aes-256-gcm -bytes 1024` itself:
# both pinned to the same CPU, one after the other, so the ratio is per core.
if want crypto; then
    CNOTE=
    for rep in $(seq "$REPS"); do
        if run_bg "$TMP/crypto.out" "$TMP/crypto.err" taskset -c "$PIN_CPU" "$BUILD/bs_bench_crypto" --seconds "$SECS" --openssl; then
            line=" $(tr '\n' ' ' <"$TMP/crypto.out")"
        else
            line=
            CNOTE="bs_bench_crypto failed in at least one repetition: $(tail -n 2 "$TMP/crypto.err" | tr '\n' ' ')"
        fi
        for k in encrypt_MBps decrypt_MBps batch_encrypt_MBps openssl_aes_256_gcm_MBps encrypt_vs_openssl_pct; do
            record crypto "$k" "$(get "$k" "$line")"
        done
        log "rep $rep crypto: encrypt ${RES[crypto,encrypt_MBps]##* } MB/s, openssl ${RES[crypto,openssl_aes_256_gcm_MBps]##* } MB/s: ${RES[crypto,encrypt_vs_openssl_pct]##* } %"
    done
    pct=$(median crypto encrypt_vs_openssl_pct)
    {
        echo "## Record encryption (issue 4): brokerside vs \`openssl speed -evp aes-256-gcm\`, one core"
        echo
        echo "- \`bs_bench_crypto --seconds $SECS --openssl\` pinned to CPU $PIN_CPU; 1 KiB values, AES-256-GCM envelopes; the openssl baseline runs on the same CPU right after, in every repetition"
        [ -n "$CNOTE" ] && echo "- NOTE: $CNOTE"
        echo
        echo "| metric | median | failed | raw values |"
        echo "|---|---:|---:|---|"
        comp_row "brokerside envelope encrypt (MB/s)" crypto encrypt_MBps
        comp_row "brokerside envelope decrypt (MB/s)" crypto decrypt_MBps
        comp_row "brokerside Produce batch rewrite, 100 records (MB/s)" crypto batch_encrypt_MBps
        comp_row "openssl speed aes-256-gcm 1024 B (MB/s)" crypto openssl_aes_256_gcm_MBps
        comp_row "encrypt / openssl (%)" crypto encrypt_vs_openssl_pct
        echo
        echo "| goal | value | target | verdict |"
        echo "|---|---:|---:|---|"
        echo "| record encryption >= 60% of openssl AES-256-GCM, one core | ${pct:-n/a} % | >= 60 % | $(verdict "$pct" min 60) |"
        echo
    } | tee -a "$OUT_MD"
fi

# ---- part logtail (issue 5): log lines/s through tail -> spool -> file sink ----
# bs_bench_logtail writes a Kafka-like server.log of LOG_LINES lines, then times the
# tailer, the spool (fsync every 100 ms) and the file sink (fdatasync per batch) on
# one thread until every event is delivered; pinned to one CPU. The goal is absolute.
if want logtail; then
    LNOTE=
    for rep in $(seq "$REPS"); do
        # The tool exits 1 (and prints MISSING_EVENTS) unless every event arrived.
        if run_bg "$TMP/logtail.out" "$TMP/logtail.err" taskset -c "$PIN_CPU" "$BUILD/bs_bench_logtail" --lines "$LOG_LINES" --dir "$TMP" &&
            grep -q ' OK$' "$TMP/logtail.out"; then
            line=" $(cat "$TMP/logtail.out")"
        else
            line=
            LNOTE="bs_bench_logtail failed in at least one repetition: $( (tail -n 1 "$TMP/logtail.out"; tail -n 2 "$TMP/logtail.err") | tr '\n' ' ' | tail -c 300)"
        fi
        for k in lines_per_s lines_per_cpu_s events_per_s; do record logtail "$k" "$(get "$k" "$line")"; done
        log "rep $rep logtail: ${RES[logtail,lines_per_s]##* } lines/s (${RES[logtail,lines_per_cpu_s]##* } per CPU second)"
    done
    lps=$(median logtail lines_per_s)
    {
        echo "## Log shipping path (issue 5): tail -> spool -> file sink, one core"
        echo
        echo "- \`bs_bench_logtail --lines $LOG_LINES\` pinned to CPU $PIN_CPU; 5% of the events are 4-line stack traces; wall time until every event is in the sink's file (fsync/fdatasync included)"
        [ -n "$LNOTE" ] && echo "- NOTE: $LNOTE"
        echo
        echo "| metric | median | failed | raw values |"
        echo "|---|---:|---:|---|"
        comp_row "lines/s (wall)" logtail lines_per_s
        comp_row "lines per CPU second" logtail lines_per_cpu_s
        comp_row "events/s (wall)" logtail events_per_s
        echo
        echo "| goal | value | target | ratio to target | verdict |"
        echo "|---|---:|---:|---:|---|"
        echo "| log lines/s on one core | ${lps:-n/a} | >= 100000 | $(ratio "$lps" 100000) | $(verdict "$lps" min 100000) |"
        echo
    } | tee -a "$OUT_MD"
fi

# ---- part audit (issue 5): audit events rendered and hash-chained per second ----
# bs_bench_audit runs AUDIT_EVENTS Produce-like events through an audit log in each
# data mode (each / aggregate / off) into a sink that only counts bytes; one CPU.
# Informational: issue 5's audit goal (proxy cost of `each` vs `off`) is measured
# through the daemon by its own part, not here.
if want audit; then
    ANOTE=
    for rep in $(seq "$REPS"); do
        if ! run_bg "$TMP/audit.out" "$TMP/audit.err" taskset -c "$PIN_CPU" "$BUILD/bs_bench_audit" "$AUDIT_EVENTS"; then
            ANOTE="bs_bench_audit failed in at least one repetition: $(grep -v 'no audit signing key' "$TMP/audit.err" | tail -n 2 | tr '\n' ' ')"
            : >"$TMP/audit.out"
        fi
        for m in each aggregate off; do
            # "each  200000 events in 0.8 s:  246646 events/s,  243.5 MB/s of audit lines (...)"
            record audit "$m" "$(awk -v m="$m" '$1 == m { for (i = 2; i <= NF; i++) if ($i == "events/s,") print $(i - 1) }' "$TMP/audit.out")"
        done
        record audit each_MBps "$(awk '$1 == "each" { for (i = 2; i <= NF; i++) if ($i == "MB/s") print $(i - 1) }' "$TMP/audit.out")"
        log "rep $rep audit: each ${RES[audit,each]##* } events/s, aggregate ${RES[audit,aggregate]##* }, off ${RES[audit,off]##* }"
    done
    {
        echo "## Audit log (issue 5): events rendered and chained per second, one core"
        echo
        echo "- \`bs_bench_audit $AUDIT_EVENTS\` pinned to CPU $PIN_CPU; the sink only counts bytes (rendering, hash chain and digest records, no I/O); no signing key configured, so digests are unsigned"
        [ -n "$ANOTE" ] && echo "- NOTE: $ANOTE"
        echo
        echo "| metric | median | failed | raw values |"
        echo "|---|---:|---:|---|"
        comp_row "data_events each (events/s)" audit each
        comp_row "data_events each (MB/s of audit lines)" audit each_MBps
        comp_row "data_events aggregate (events/s)" audit aggregate
        comp_row "data_events off (events/s)" audit off
        echo
        echo "No goal of its own: issue 5's audit goal (proxy throughput with audit \`each\` vs \`off\`, under 10% cost) is measured through the daemon."
        echo
    } | tee -a "$OUT_MD"
fi

# ---- part sinks (issue 6): events/s from the spool to each AWS sink against moto ----
# bench_sinks.py starts moto_server, creates the resources and runs bs_bench_sinks per
# sink; each result line carries brokerside's CPU (its own process) and moto's CPU for
# the same events, measured in the same run: the side-by-side baseline. "Limited by
# the endpoint" is read as: brokerside busy at most half of the delivery time
# (cpu_share <= 0.5) and using less CPU per event than the endpoint.
SINK_TYPES=(firehose cloudwatch_logs cloudwatch_metrics s3)
if want sinks; then
    SNOTE=
    for rep in $(seq "$REPS"); do
        run_bg "$TMP/sinks.out" "$TMP/sinks.err" "$PY" "$SRC/tests/bench/bench_sinks.py" "$BUILD" "$SINK_EVENTS" ||
            SNOTE="bench_sinks.py failed in at least one repetition: $( (grep failed "$TMP/sinks.out"; tail -n 2 "$TMP/sinks.err") | tr '\n' ' ' | tail -c 400)"
        for k in "${SINK_TYPES[@]}"; do
            line=" $(grep "^sink=$k " "$TMP/sinks.out" | grep -v ' failed')"
            # A sink whose line lacks delivered=events did not deliver everything.
            [[ $line == *" events=$SINK_EVENTS delivered=$SINK_EVENTS "* ]] || line=
            for f in events_per_s cpu_s_per_10k cpu_share moto_cpu_s_per_10k; do record "sink-$k" "$f" "$(get "$f" "$line")"; done
        done
        log "rep $rep sinks: $(for k in "${SINK_TYPES[@]}"; do printf '%s %s ev/s; ' "$k" "${RES[sink-$k,events_per_s]##* }"; done)"
    done
    {
        echo "## AWS sinks (issue 6): events/s from the spool to each sink against moto_server"
        echo
        echo "- \`tests/bench/bench_sinks.py BUILD $SINK_EVENTS\`: moto_server (SigV4 on) on loopback, ~300-byte audit-like JSON events (EMF for cloudwatch_metrics) synced into a fresh spool, timed until the sink is idle; CPU from getrusage (brokerside) and /proc (moto_server and its children), for the same events"
        [ -n "$SNOTE" ] && echo "- NOTE: $SNOTE"
        echo
        echo "| sink | events/s | brokerside CPU s / 10k events | moto CPU s / 10k events | brokerside / moto CPU | brokerside CPU share of wall time | failed | verdict |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        for k in "${SINK_TYPES[@]}"; do
            eps=$(median "sink-$k" events_per_s); bcpu=$(median "sink-$k" cpu_s_per_10k)
            mcpu=$(median "sink-$k" moto_cpu_s_per_10k); share=$(median "sink-$k" cpu_share)
            r=$(ratio "$bcpu" "$mcpu")
            if [ -z "$share" ]; then v="not measured"
            elif [ "$r" = n/a ]; then v="undecided: moto's CPU below one clock tick"
            elif [ "$(verdict "$share" max 0.5)" = PASS ] && [ "$(verdict "$r" max 0.99)" = PASS ]; then v="PASS (endpoint-bound)"
            else v="FAIL (brokerside-bound)"
            fi
            echo "| $k | ${eps:-n/a} | ${bcpu:-n/a} | ${mcpu:-n/a} | $r | ${share:-n/a} | $(nfail "sink-$k" events_per_s) | $v |"
        done
        echo
        echo "Goal: sink throughput limited by the endpoint, not by brokerside: PASS when brokerside's CPU share of the delivery time is <= 0.5 and its CPU per event is below the endpoint's. Raw values per repetition:"
        echo
        for k in "${SINK_TYPES[@]}"; do for f in events_per_s cpu_s_per_10k moto_cpu_s_per_10k cpu_share; do
            echo "- $k $f:${RES[sink-$k,$f]}"
        done; done
        echo
    } | tee -a "$OUT_MD"
fi

log "results of the built-in parts written to $OUT_MD"

# ---- parts from other engineers' scripts ----
# bench_part NAME CMD...: if NAME is in BENCH_PARTS (default: all), run CMD (another
# engineer's bench script); what it prints on stdout is shown and copied into the
# results file under "## Part NAME" (in a text block), its stderr goes to ours as it runs. A missing
# script or a failing run is noted in the results file and the run goes on.
bench_part() {
    local name=$1 rc=0
    shift
    want "$name" || return 0
    if [ ! -x "$1" ]; then
        log "part $name: $1 is missing or not executable"
        printf '## Part %s\n\n- NOTE: not run: %s is missing or not executable\n\n' "$name" "$1" >>"$OUT_MD"
        return 0
    fi
    log "part $name: $*"
    run_bg "$TMP/part-$name.out" /dev/stderr "$@" || rc=$?
    {
        printf '## Part %s\n\n`%s`\n\n' "$name" "${*#"$SRC/"}"
        [ $rc -eq 0 ] || printf -- '- NOTE: part %s failed (exit %d); its output may be incomplete\n\n' "$name" "$rc"
        # Fenced: the scripts print plain-text tables, which markdown would reflow.
        echo '```text'
        cat "$TMP/part-$name.out"
        echo '```'
        echo
    } | tee -a "$OUT_MD"
    [ $rc -eq 0 ] || log "part $name failed (exit $rc)"
    return 0
}

bench_part kafka "$SRC/tests/bench/kafka_bench.sh" "$BUILD"
bench_part audit-cost "$SRC/tests/bench/audit_bench.sh" "$BUILD"
bench_part encryption "$SRC/tests/bench/encryption_bench.sh" "$BUILD"
bench_part shipping "$SRC/tests/bench/shipping_bench.sh" "$BUILD"
bench_part idle-memory "$SRC/tests/bench/idle_memory.sh" "$BUILD"
bench_part kafka-real "$SRC/tests/bench/kafka_real_bench.sh" "$BUILD" --rounds "$REPS"
bench_part authz "$SRC/tests/bench/authz_bench.sh" "$BUILD"
bench_part locks "$BUILD/bs_bench_locks"
bench_part lag "$SRC/tests/bench/lag_bench.sh" "$BUILD"
