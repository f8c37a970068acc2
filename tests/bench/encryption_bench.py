"""Throughput cost of encryption at rest (issue 4).

One dev broker behind one brokerside `kafka` listener (TLS) with encryption on
for topics enc-* (local keyring) and unmatched_topics "plaintext". kcat
produces and consumes N messages of 1 KiB to an encrypted topic and to a
plaintext topic through the same sidecar, alternating, best of R rounds; it
reports MB/s, the sidecar's CPU ms per MB and the encrypted/plaintext ratios
(goal: encrypted produce >= 80% of plaintext), then runs bs_bench_crypto
--openssl for the one-core record encryption speed against
`openssl speed -evp aes-256-gcm` (goal: >= 60%).

usage: /usr/bin/python3 encryption_bench.py [--messages N] [--rounds R]
(BS_BUILD_DIR selects the build, as for the integration tests)"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from kafka_bench import MSG, cpu_seconds, timed  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.messages
    tmp = tempfile.mkdtemp(prefix="bs-enc-bench-")
    procs = []
    try:
        certs = harness.make_certs(os.path.join(tmp, "certs"))
        key = os.path.join(tmp, "master.key")
        subprocess.run([os.path.join(harness.BUILD_DIR, "bs_keygen"), key], check=True)
        port = harness.free_port()
        db = harness.DevBroker(tmp, brokers=1, topics=[])
        procs.append(db)
        lst = harness.tls_listener(certs, "127.0.0.1:%d" % port, db.listen_addr(1),
                                   protocol="kafka", name="kafka")
        cfg = harness.base_config(harness.free_port(), [lst],
                                  kafka={"advertise": {"1": "127.0.0.1:%d" % port}},
                                  encryption={"kms": {"type": "local", "key_file": key},
                                              "topics": [{"match": "enc-*", "key": "bench"}],
                                              "unmatched_topics": "plaintext"})
        cfg["log_level"] = "warn"
        bs = harness.Brokerside(tmp, cfg)
        procs.append(bs)
        payload = b"".join(b"%08d" % i + b"x" * (MSG - 9) + b"\n" for i in range(n))
        base = ["kcat", "-b", "127.0.0.1:%d" % port] + harness.kcat_tls(certs)
        kinds = ("plain", "enc")
        best = {k: {"produce": None, "consume": None} for k in kinds}
        cpu = {k: {"produce": 0.0, "consume": 0.0} for k in kinds}
        pid = bs.proc.popen.pid
        for rnd in range(args.rounds):
            for kind in (kinds if rnd % 2 == 0 else kinds[::-1]):
                topic = "%s-bench-%d" % (kind, rnd)
                db.command("topic %s %d 1" % (topic, args.partitions))
                c0 = cpu_seconds(pid)
                dt, _ = timed(base + ["-P", "-t", topic, "-X", "linger.ms=5",
                                      "-X", "batch.num.messages=10000",
                                      "-X", "sticky.partitioning.linger.ms=0"], data=payload)
                c1 = cpu_seconds(pid)
                ct, r = timed(base + ["-C", "-t", topic, "-o", "beginning", "-c", str(n), "-e", "-q"])
                c2 = cpu_seconds(pid)
                if sorted(r.stdout.splitlines()) != sorted(payload.splitlines()):
                    raise SystemExit("%s: consumed records differ from the produced ones" % kind)
                cpu[kind]["produce"] += c1 - c0
                cpu[kind]["consume"] += c2 - c1
                for k, v in (("produce", dt), ("consume", ct)):
                    if best[kind][k] is None or v < best[kind][k]:
                        best[kind][k] = v
        mb = n * MSG / 1e6
        total_mb = mb * args.rounds
        print("encryption_bench: %d messages x %d B, %d partitions, best of %d rounds "
              "(kcat over TLS through one kafka listener, 1 mock broker)"
              % (n, MSG, args.partitions, args.rounds))
        print("%-6s %12s %12s %16s %16s" % ("topic", "produce MB/s", "consume MB/s",
                                          "produce CPU ms/MB", "consume CPU ms/MB"))
        for kind in kinds:
            print("%-6s %12.1f %12.1f %16.2f %16.2f" % (
                kind, mb / best[kind]["produce"], mb / best[kind]["consume"],
                1000 * cpu[kind]["produce"] / total_mb, 1000 * cpu[kind]["consume"] / total_mb))
        for k in ("produce", "consume"):
            print("enc/plain %s throughput ratio: %.3f" % (k, best["plain"][k] / best["enc"][k]))
        m = bs.metrics()
        print("check: records_encrypted_total=%d records_decrypted_total=%d (expect %d each)" % (
            harness.metric(m, "brokerside_records_encrypted_total"),
            harness.metric(m, "brokerside_records_decrypted_total"), n * args.rounds))
    finally:
        for p in reversed(procs):
            p.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    r = subprocess.run([os.path.join(harness.BUILD_DIR, "bs_bench_crypto"), "--openssl"],
                       stdout=subprocess.PIPE, text=True, timeout=300)
    print(r.stdout.strip())


if __name__ == "__main__":
    main()
