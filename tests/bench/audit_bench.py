"""Throughput cost of per-request audit events (issue 5).

Three brokerside processes front the same dev broker with a TLS `kafka`
listener each: one without an `audit` section ("off"), one with
`audit.data_events: each` into a file sink ("each": one chained JSON event
per Produce/Fetch/... request, written through the spool) and one with
`aggregate` (the default: the same recording and decoding, folded into a few
aggregate events, so it separates the recorder's cost from the cost of
writing one event per request). kcat produces and
consumes N messages of 1 KiB through each, alternating, for R rounds.
Reports the best throughput per path, the sidecar's CPU time per MB, the
each/off ratios (goal: cost under 10%, i.e. throughput ratio >= 0.90) and
how many request events the `each` sidecar wrote.

usage: /usr/bin/python3 audit_bench.py [--messages N] [--rounds R]
(BS_BUILD_DIR selects the build, as for the integration tests)"""

import argparse
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from kafka_bench import MSG, cpu_seconds, paired_ratio_lines, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.messages
    tmp = tempfile.mkdtemp(prefix="bs-audit-bench-")
    procs = []
    try:
        certs = harness.make_certs(os.path.join(tmp, "certs"))
        db = harness.DevBroker(tmp, brokers=1, topics=["b:1"])
        procs.append(db)
        paths = {}
        for name in ("off", "each", "aggregate"):
            port = harness.free_port()
            d = os.path.join(tmp, name)
            os.mkdir(d)
            lst = harness.tls_listener(certs, "127.0.0.1:%d" % port, db.listen_addr(1),
                                       protocol="kafka", name=name)
            extra = {}
            if name != "off":
                extra = {"audit": {"data_events": name, "sinks": ["files"]},
                         "sinks": {"files": {"type": "file", "dir": os.path.join(d, "events")}},
                         "spool": {"dir": os.path.join(d, "spool")}}
            cfg = harness.base_config(harness.free_port(), [lst],
                                      kafka={"advertise": {"1": "127.0.0.1:%d" % port}}, **extra)
            cfg["log_level"] = "warn"
            bs = harness.Brokerside(d, cfg)
            procs.append(bs)
            paths[name] = ("127.0.0.1:%d" % port, bs, d)
        payload = b"".join(b"%08d" % i + b"x" * (MSG - 9) + b"\n" for i in range(n))
        best = {p: {"produce": None, "consume": None} for p in paths}
        cpu = {p: {"produce": 0.0, "consume": 0.0} for p in paths}
        times = {p: {"produce": [], "consume": []} for p in paths}
        cpus = {p: {"produce": [], "consume": []} for p in paths}
        for rnd in range(args.rounds):
            # rotate the order so no path always runs first
            names = list(paths)[rnd % 3:] + list(paths)[:rnd % 3]
            for name in names:
                broker, bs, _ = paths[name]
                pid = bs.proc.popen.pid
                topic = "bench-%s-%d" % (name, rnd)
                db.command("topic %s %d 1" % (topic, args.partitions))
                base = ["kcat", "-b", broker] + harness.kcat_tls(certs, client_cert=False)
                c0 = cpu_seconds(pid)
                dt, _ = timed(base + ["-P", "-t", topic, "-X", "linger.ms=5",
                                      "-X", "batch.num.messages=10000",
                                      "-X", "sticky.partitioning.linger.ms=0"], data=payload)
                c1 = cpu_seconds(pid)
                ct, r = timed(base + ["-C", "-t", topic, "-o", "beginning", "-c", str(n), "-e", "-q"])
                c2 = cpu_seconds(pid)
                cpu[name]["produce"] += c1 - c0
                cpu[name]["consume"] += c2 - c1
                times[name]["produce"].append(dt)
                times[name]["consume"].append(ct)
                cpus[name]["produce"].append(c1 - c0)
                cpus[name]["consume"].append(c2 - c1)
                got = r.stdout.count(b"\n")
                if got != n:
                    raise SystemExit("%s: consumed %d of %d" % (name, got, n))
                for k, v in (("produce", dt), ("consume", ct)):
                    if best[name][k] is None or v < best[name][k]:
                        best[name][k] = v
        mb = n * MSG / 1e6
        total_mb = mb * args.rounds
        print("audit_bench: %d messages x %d B, %d partitions, best of %d rounds "
              "(kcat, 1 mock broker, TLS kafka listener; audit off vs each)"
              % (n, MSG, args.partitions, args.rounds))
        print("%-9s %12s %12s %16s %16s" % ("audit", "produce MB/s", "consume MB/s",
                                          "produce CPU ms/MB", "consume CPU ms/MB"))
        for name in ("off", "each", "aggregate"):
            print("%-9s %12.1f %12.1f %16.2f %16.2f" % (
                name, mb / best[name]["produce"], mb / best[name]["consume"],
                1000 * cpu[name]["produce"] / total_mb, 1000 * cpu[name]["consume"] / total_mb))
        for mode in ("each", "aggregate"):
            for k in ("produce", "consume"):
                print("%s/off %s throughput ratio: %.3f   sidecar CPU ratio: %.3f" % (
                    mode, k, best["off"][k] / best[mode][k],
                    cpu[mode][k] / cpu["off"][k] if cpu["off"][k] > 0 else float("nan")))
        for line in paired_ratio_lines(times, cpus, "off", ("each", "aggregate")):
            print(line)
        # Stop the `each` sidecar so its file sink has everything, then count.
        _, bs_each, d = paths["each"]
        bs_each.proc.send_signal(15)
        bs_each.proc.wait(60)
        counts = {}
        with open(os.path.join(d, "events", "audit.ndjson"), encoding="utf-8") as f:
            for line in f:
                e = json.loads(line)
                if e.get("eventType") == "KafkaApiCall":
                    counts[e["eventName"]] = counts.get(e["eventName"], 0) + 1
        print("check: request events written by `each`: %s" %
              ", ".join("%s=%d" % kv for kv in sorted(counts.items())))
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
