"""Throughput cost of Kafka protocol awareness (issue 3).

Produces and consumes N messages of 1 KiB with kcat through:
  direct - plaintext straight to a dev broker (no brokerside at all),
  tcp    - a brokerside `tcp` listener (TLS termination, opaque bytes),
  kafka  - a brokerside `kafka` listener (TLS + framing, correlation,
           rewriting, per-API and per-topic metrics),
each round in the same run, alternating, and reports the best of the rounds
in MB/s plus kafka/tcp ratios. The kafka-vs-tcp ratio is the cost of
protocol awareness (goal: >= 0.95).

usage: /usr/bin/python3 kafka_bench.py [--messages N] [--rounds R]
(BS_BUILD_DIR selects the build, as for the integration tests)"""

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

MSG = 1024


def cpu_seconds(pid, want=None):
    """CPU time of every thread of process `pid` in seconds (schedstat: ns
    resolution, unlike the 10 ms ticks of /proc/PID/stat); with `want`, only of
    the threads whose name (comm) `want(name)` accepts."""
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            if want is not None:
                with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                    if not want(f.read().strip()):
                        continue
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass  # a thread that just exited
    return total / 1e9


def tree_cpu_seconds(root):
    """User + system CPU seconds of process `root` and all its descendants, reaped
    children included (cutime/cstime of /proc/PID/stat, 10 ms ticks); 0 for processes
    that are gone. For peers that fork (moto_server), where cpu_seconds sees one process."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                # The command name (field 2) may hold spaces: split after its ')'.
                rest = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        stats[int(d)] = (int(rest[1]), sum(int(x) for x in rest[11:15]))
    total, todo = 0, [root]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
        todo.extend(c for c, (pp, _) in stats.items() if pp == p)
    return total / ticks


def median(xs):
    """Median of a non-empty list of numbers."""
    ys = sorted(xs)
    m = len(ys) // 2
    return ys[m] if len(ys) % 2 else (ys[m - 1] + ys[m]) / 2


def paired_ratio_lines(times, cpus, base, modes):
    """Lines reporting, per mode and direction, the median over rounds of the
    per-round ratios against `base` (rounds are interleaved, so each round's
    paths ran under about the same machine load): throughput ratio =
    base time / mode time, CPU ratio = mode CPU / base CPU. times[path][dir]
    and cpus[path][dir] are lists with one entry per round."""
    out = []
    for mode in modes:
        for k in ("produce", "consume"):
            tr = [b / m for b, m in zip(times[base][k], times[mode][k]) if m > 0]
            cr = [m / b for b, m in zip(cpus[base][k], cpus[mode][k]) if b > 0]
            out.append("%s/%s %s median per-round ratios (%d rounds): throughput %.3f (min %.3f, "
                       "max %.3f)   sidecar CPU %.3f" % (
                           mode, base, k, len(tr), median(tr), min(tr), max(tr), median(cr)))
    return out


def timed(argv, data=None, timeout=600):
    t0 = time.monotonic()
    r = harness.run(argv, timeout=timeout, input=data)
    dt = time.monotonic() - t0
    if r.returncode != 0:
        raise SystemExit("bench command failed: %s\n%s" % (" ".join(argv), r.stderr.decode(errors="replace")))
    return dt, r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=40000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    n = args.messages
    tmp = tempfile.mkdtemp(prefix="bs-kafka-bench-")
    procs = []
    try:
        certs = harness.make_certs(os.path.join(tmp, "certs"))
        tcp_port, kafka_port = harness.free_port(), harness.free_port()
        # broker A sits behind both listeners and advertises the tcp one (an
        # opaque listener cannot rewrite); the kafka listener rewrites to
        # itself. Broker B is the direct baseline.
        a = harness.DevBroker(tmp, brokers=1, topics=["b:1"], advertise={1: "127.0.0.1:%d" % tcp_port})
        procs.append(a)
        tmp_b = os.path.join(tmp, "b")
        os.mkdir(tmp_b)
        b = harness.DevBroker(tmp_b, brokers=1, topics=["b:1"])
        procs.append(b)
        listeners = [
            harness.tls_listener(certs, "127.0.0.1:%d" % tcp_port, a.listen_addr(1), protocol="tcp", name="tcp"),
            harness.tls_listener(certs, "127.0.0.1:%d" % kafka_port, a.listen_addr(1), protocol="kafka", name="kafka"),
        ]
        cfg = harness.base_config(harness.free_port(), listeners,
                                  kafka={"advertise": {"1": "127.0.0.1:%d" % kafka_port}})
        cfg["log_level"] = "warn"
        bs = harness.Brokerside(tmp, cfg)
        procs.append(bs)
        payload = b"".join(b"%08d" % i + b"x" * (MSG - 9) + b"\n" for i in range(n))
        paths = {
            "direct": (b.listen_addr(1), [], b),
            "tcp": ("127.0.0.1:%d" % tcp_port, harness.kcat_tls(certs), a),
            "kafka": ("127.0.0.1:%d" % kafka_port, harness.kcat_tls(certs), a),
        }
        best = {p: {"produce": None, "consume": None} for p in paths}
        cpu = {p: {"produce": 0.0, "consume": 0.0} for p in paths}
        pid = bs.proc.popen.pid
        for rnd in range(args.rounds):
            # rotate the order so no path always runs first (warm caches, noisy neighbours)
            names = list(paths)[rnd % 3:] + list(paths)[:rnd % 3]
            for name in names:
                broker, tls, db = paths[name]
                topic = "bench-%s-%d" % (name, rnd)
                # several partitions: the mock broker keeps ~5 MB of log per partition
                db.command("topic %s %d 1" % (topic, args.partitions))
                base = ["kcat", "-b", broker] + tls
                c0 = cpu_seconds(pid)
                dt, _ = timed(base + ["-P", "-t", topic, "-X", "linger.ms=5",
                                      "-X", "batch.num.messages=10000",
                                      "-X", "sticky.partitioning.linger.ms=0"], data=payload)
                c1 = cpu_seconds(pid)
                ct, r = timed(base + ["-C", "-t", topic, "-o", "beginning", "-c", str(n), "-e", "-q"])
                c2 = cpu_seconds(pid)
                cpu[name]["produce"] += c1 - c0
                cpu[name]["consume"] += c2 - c1
                got = r.stdout.count(b"\n")
                if got != n:
                    raise SystemExit("%s: consumed %d of %d" % (name, got, n))
                for k, v in (("produce", dt), ("consume", ct)):
                    if best[name][k] is None or v < best[name][k]:
                        best[name][k] = v
        mb = n * MSG / 1e6
        print("kafka_bench: %d messages x %d B, %d partitions, best of %d rounds "
              "(kcat, 1 mock broker, TLS for tcp/kafka)" % (n, MSG, args.partitions, args.rounds))
        # Wall-clock throughput is noisy on a shared machine; the sidecar's own
        # CPU time per MB moved is the stable measure of what protocol
        # awareness costs.
        print("%-8s %12s %12s %16s %16s" % ("path", "produce MB/s", "consume MB/s",
                                            "produce CPU ms/MB", "consume CPU ms/MB"))
        total_mb = mb * args.rounds
        for name in ("direct", "tcp", "kafka"):
            print("%-8s %12.1f %12.1f %16.2f %16.2f" % (
                name, mb / best[name]["produce"], mb / best[name]["consume"],
                1000 * cpu[name]["produce"] / total_mb, 1000 * cpu[name]["consume"] / total_mb))
        for k in ("produce", "consume"):
            print("kafka/tcp %s throughput ratio: %.3f   kafka/direct: %.3f" %
                  (k, best["tcp"][k] / best["kafka"][k], best["direct"][k] / best["kafka"][k]))
            if cpu["tcp"][k] > 0:
                print("kafka/tcp %s sidecar CPU ratio: %.3f" % (k, cpu["kafka"][k] / cpu["tcp"][k]))
        m = bs.metrics()
        print("check: messages_in over all bench topics via kafka listener = %d (expect %d)" %
              (sum(v for (name, ls), v in m.items() if name == "brokerside_topic_messages_in_total"
                   and dict(ls).get("topic", "").startswith("bench-kafka")), n * args.rounds))
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
