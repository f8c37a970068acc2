"""CPU cost of the consumer-lag monitor (issue 15; docs/benchmarks.md, "Consumer lag").

A real Apache Kafka broker (tests/tools/kafka-cluster, one node) holds GROUPS consumer groups
(default 1,000), each with committed offsets on the PARTITIONS partitions (default 10) of one
of GROUPS/10 topics, 10 records per partition: 10,000 (group, partition) lag rows. Three
sidecars run side by side for SECONDS in front of that broker: two with a lag section (metrics
level per_topic_per_partition, so every lag series is exported), one polling every INTERVAL
seconds (default 5) and one at the configuration default (30 s), and one without a lag
section. Each /metrics is scraped every SCRAPE seconds (the control thread's rendering is part
of the cost). Reported per sidecar: polls, the CPU of the monitor's threads (bs-lag and
librdkafka's rdk:*, /proc schedstat) in total, per poll and as a share of one core, and the
whole process CPU and resident memory at the end; the monitor's cost is the process CPU minus the sidecar without it.
Goal: under 2% of one core.

usage: /usr/bin/python3 lag_bench.py [--groups N] [--partitions P] [--interval S] [--seconds T]
                                     [--scrape S]
(BS_BUILD_DIR selects the build, as for the integration tests)"""

import argparse
import os
import random
import shutil
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
from kafka_bench import cpu_seconds  # noqa: E402


def lag_thread(name):
    return name == "bs-lag" or name.startswith("rdk:")


def commit_offsets(addr, groups):
    """OffsetCommit v2 (no member, generation -1: a group without members, as an admin tool
    commits) for every (group, topic, {partition: offset}) through one connection."""
    with harness.KafkaWire(addr, timeout=30) as w:
        # FindCoordinator v1 creates the offsets topic on first use; wait until it answers
        for attempt in range(600):
            resp = w.request(10, 1, harness.KafkaWire._str(groups[0][0]) + struct.pack(">b", 0))
            if struct.unpack_from(">h", resp, 4)[0] == 0:  # throttle_time_ms, error_code
                break
            time.sleep(0.1)
        for group, topic, offsets in groups:
            s = harness.KafkaWire._str
            body = s(group) + struct.pack(">i", -1) + s("") + struct.pack(">q", -1)
            body += struct.pack(">i", 1) + s(topic) + struct.pack(">i", len(offsets))
            for p, off in sorted(offsets.items()):
                body += struct.pack(">iq", p, off) + struct.pack(">h", -1)
            for attempt in range(600):  # the offsets topic is created and loaded on first use
                resp = w.request(8, 2, body)
                if struct.unpack_from(">h", resp, 4 + 2 + len(topic) + 4 + 4)[0] not in (14, 15, 16):
                    break
                time.sleep(0.1)
            # [topics: name, [partition, error]]: every error must be 0
            (nt,) = struct.unpack_from(">i", resp, 0)
            pos = 4
            for _ in range(nt):
                (ln,) = struct.unpack_from(">h", resp, pos)
                pos += 2 + ln
                (np_,) = struct.unpack_from(">i", resp, pos)
                pos += 4
                for _ in range(np_):
                    _, err = struct.unpack_from(">ih", resp, pos)
                    pos += 6
                    if err:
                        raise SystemExit("OffsetCommit %s: error %d" % (group, err))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--groups", type=int, default=1000)
    ap.add_argument("--partitions", type=int, default=10)
    ap.add_argument("--interval", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--scrape", type=int, default=15)
    a = ap.parse_args()
    from confluent_kafka import Producer

    tmp = tempfile.mkdtemp(prefix="bs-lag-bench-")
    cluster = None
    sidecars = []
    try:
        cluster = harness.KafkaCluster(os.path.join(tmp, "kafka"), nodes=1)
        n_topics = max(1, a.groups // 10)
        topics = ["lagbench-%03d" % i for i in range(n_topics)]
        t0 = time.monotonic()
        for t in topics:
            cluster.create_topic(t, partitions=a.partitions)
        p = Producer({"bootstrap.servers": cluster.bootstrap, "linger.ms": 20})
        for t in topics:
            for part in range(a.partitions):
                for i in range(10):
                    p.produce(t, value=b"r%d" % i, partition=part)
        if p.flush(120) != 0:
            raise SystemExit("produce: records not delivered")
        del p
        rnd = random.Random(15)
        groups = [("lagbench-g%04d" % g, topics[g % n_topics],
                   {part: rnd.randint(0, 10) for part in range(a.partitions)})
                  for g in range(a.groups)]
        commit_offsets(cluster.nodes[0].client, groups)
        setup_s = time.monotonic() - t0

        def start(name, interval):
            admin = harness.free_port()
            cfg = harness.base_config(admin, [{"name": "clients",
                                               "bind": "127.0.0.1:%d" % harness.free_port(),
                                               "upstream": cluster.nodes[0].client,
                                               "protocol": "kafka"}])
            cfg["log_level"] = "warn"
            if interval:
                cfg["lag"] = {"interval_s": interval, "timeout_s": 30}
                cfg["metrics"] = {"level": "per_topic_per_partition", "sinks": ["f"],
                                  "interval_s": 3600}
                cfg["sinks"] = {"f": {"type": "file", "dir": os.path.join(tmp, name, "ev")}}
                cfg["spool"] = {"dir": os.path.join(tmp, name, "spool")}
            os.makedirs(os.path.join(tmp, name), exist_ok=True)
            b = harness.Brokerside(os.path.join(tmp, name), cfg, name=name)
            sidecars.append(b)
            return b

        fast, slow = start("lag-fast", a.interval), start("lag-default", 30)
        none = start("none", 0)
        want_rows = a.groups * a.partitions

        def rows(b):
            return sum(1 for (n, _) in b.metrics() if n == "brokerside_consumer_lag_offsets")
        for b in (fast, slow):
            deadline = time.monotonic() + 300
            while rows(b) < want_rows and time.monotonic() < deadline:
                time.sleep(1)
            got_rows = rows(b)
            if got_rows != want_rows:
                raise SystemExit("the monitor exports %d lag rows, not %d" % (got_rows, want_rows))
        cars = {"fast": fast, "slow": slow, "none": none}
        polls0 = {k: harness.metric(b.metrics(), "brokerside_lag_monitor_polls_total", result="ok")
                  for k, b in cars.items()}
        lag0 = {k: cpu_seconds(b.proc.pid, lag_thread) for k, b in cars.items()}
        all0 = {k: cpu_seconds(b.proc.pid, lambda n: True) for k, b in cars.items()}
        w0 = time.monotonic()
        while time.monotonic() - w0 < a.seconds:
            time.sleep(a.scrape)
            for b in cars.values():
                b.get("/metrics")
        wall = time.monotonic() - w0
        res = {}
        for k, b in cars.items():
            m = b.metrics()
            res[k] = {"polls": harness.metric(m, "brokerside_lag_monitor_polls_total", result="ok") - polls0[k],
                      "errors": harness.metric(m, "brokerside_lag_monitor_polls_total", result="error"),
                      "groups": harness.metric(m, "brokerside_lag_monitor_groups"),
                      "lag": cpu_seconds(b.proc.pid, lag_thread) - lag0[k],
                      "all": cpu_seconds(b.proc.pid, lambda n: True) - all0[k],
                      "rss": int(open("/proc/%d/status" % b.proc.pid).read().split("VmRSS:")[1].split()[0])}
        print("setup: %d groups x %d partitions (%d topics), %d lag rows; set-up %.0f s"
              % (a.groups, a.partitions, n_topics, want_rows, setup_s))
        print("window %.0f s, /metrics scraped every %d s (level per_topic_per_partition, %d lag "
              "rows rendered per scrape); machine load average %s"
              % (wall, a.scrape, want_rows, open("/proc/loadavg").read().split()[0]))
        print("%-28s %8s %7s %7s %12s %10s %10s %12s %9s" % (
            "sidecar", "interval", "polls", "groups", "lag CPU s", "ms/poll", "% core", "process %",
            "RSS KiB"))
        for k, label, iv in (("fast", "monitor, fast interval", a.interval),
                             ("slow", "monitor, default interval", 30), ("none", "no monitor", 0)):
            r = res[k]
            per = 1000 * r["lag"] / r["polls"] if r["polls"] else float("nan")
            print("%-28s %8s %7d %7d %12.3f %10.1f %10.2f %12.2f %9d" % (
                label, "%ds" % iv if iv else "-", r["polls"], r["groups"], r["lag"],
                per if r["polls"] else 0.0, 100 * r["lag"] / wall, 100 * r["all"] / wall, r["rss"]))
            if r["errors"]:
                print("  NOTE: %d failed polls" % r["errors"])
        for k, iv in (("fast", a.interval), ("slow", 30)):
            extra = 100 * (res[k]["all"] - res["none"]["all"]) / wall
            verdict = "meets" if extra < 2 else "MISSES"
            print("interval %ds: the monitor costs %.2f%% of one core (process CPU minus the "
                  "sidecar without it): %s the goal (< 2%%)" % (iv, extra, verdict))
    finally:
        for b in sidecars:
            b.stop()
        if cluster:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
