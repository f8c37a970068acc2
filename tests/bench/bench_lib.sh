# bench_lib.sh - shell helpers shared by tests/bench/run.sh and tests/bench/idle_memory.sh.
# Sourced (not run).

# rss_kib PID: the process's resident set (VmRSS) in KiB.
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# free_port: print a loopback TCP port that is free right now (the kernel picks it).
free_port() {
    /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# wait_ready_line FILE PID: wait up to 120 s until FILE (bs_bench_load's stdout) has a line
# starting with READY. Returns 1 at once when PID exits first, or after the 120 s.
wait_ready_line() {
    local i
    for i in $(seq 1200); do
        grep -qs '^READY' "$1" && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
