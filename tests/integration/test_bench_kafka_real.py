"""Keeps `make bench` part kafka-real (tests/bench/kafka_real_bench.py) working.

No timed assertion: the benchmark runs in its short mode (2,000 records, one round, no
verdicts) through every brokerside path against a real Apache Kafka broker, and the test checks
that each path moved the records, that the encrypting paths left ciphertext in the broker's
segment files and the others plaintext, and that the report has its rows and ratios. The checks
that turn a broken path into a failed run instead of numbers are exercised on bad tool output.
ctest gives this test 600 s (CMakeLists.txt): eight JVM launches on a loaded machine.
The Kroxylicious paths are left to `make bench`: Kroxylicious is fetched with Maven only for the
benchmark (tests/bench/kroxylicious/fetch.sh), never for `make test`.
Runs with Debian's /usr/bin/python3; needs BS_BUILD_DIR and BS_SOURCE_DIR (set by ctest).
"""
import os
import re
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
import harness  # noqa: E402
import kafka_real_bench as krb  # noqa: E402

SCRIPT = os.path.join(HERE, "..", "bench", "kafka_real_bench.py")
# Every brokerside configuration but the local-keyring encryption (bs-enc-kms encrypts too, and
# its moto set-up is what breaks first); `direct` has nothing of brokerside. Each path costs two
# JVM launches, so the short run stays near a minute on a quiet 2-core machine.
BS_MODES = ("bs-tcp", "bs-kafka", "bs-enc-kms", "bs-audit")
PRODUCER_OK = ("2000 records sent, 1000.0 records/sec (0.98 MB/sec), 900.00 ms avg latency, "
               "1500.00 ms max latency, 950 ms 50th, 1400 ms 95th, 1450 ms 99th, 1500 ms 99.9th.\n")
CONSUMER_HEAD = ("start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, "
                 "rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n")


def consumer_line(mib, n):
    return "2026-01-01 00:00:00:000, 2026-01-01 00:00:02:000, %.4f, 0.9766, %d, 1000.0, 300, 1700, 1.1489, 1176.4\n" % (mib, n)


def run_script(args, timeout=280):
    env = dict(os.environ, BS_BUILD_DIR=harness.BUILD_DIR)
    return subprocess.run([sys.executable, SCRIPT] + args, capture_output=True, text=True,
                          timeout=timeout, env=env)


class Checks(unittest.TestCase):
    """The checks that keep a broken path from reporting numbers."""

    def test_producer_summary(self):
        self.assertEqual(krb.parse_producer("progress line\n" + PRODUCER_OK, 2000), (0.98, 1450.0))
        with self.assertRaisesRegex(krb.BenchError, "sent 2000 of 3000"):
            krb.parse_producer(PRODUCER_OK, 3000)
        with self.assertRaisesRegex(krb.BenchError, "no final summary"):
            krb.parse_producer("1000 records sent, 999.0 records/sec (0.98 MB/sec), 9.0 ms avg "
                               "latency, 20.0 ms max latency.\n", 1000)

    def test_consumer_result(self):
        n = 2000
        self.assertEqual(krb.parse_consumer(CONSUMER_HEAD + consumer_line(n / 1024.0, n), n), 1.1489)
        with self.assertRaisesRegex(krb.BenchError, "read 1999 of 2000"):
            krb.parse_consumer(CONSUMER_HEAD + consumer_line(1999 / 1024.0, 1999), n)
        # Every record came back, but larger than produced: an encrypting path did not decrypt.
        with self.assertRaisesRegex(krb.BenchError, "values not returned as produced"):
            krb.parse_consumer(CONSUMER_HEAD + consumer_line(n * 1100 / 1048576.0, n), n)
        with self.assertRaisesRegex(krb.BenchError, "no result"):
            krb.parse_consumer(CONSUMER_HEAD, n)
        with self.assertRaisesRegex(krb.BenchError, "unreadable"):
            krb.parse_consumer(CONSUMER_HEAD + "a, b, c\n", n)

    def test_at_rest(self):
        class Segments:
            def __init__(self, data):
                self.data = data

            def read_segments(self, topic):
                return self.data
        plain = b"\x00\x01" + b"QWERTYUIOPASDFGHJKLZXCVBNM" * 40
        cipher = bytes(range(256)) * 8
        self.assertEqual(krb.check_at_rest(Segments(plain), "bs-kafka", "t"), "plaintext")
        self.assertEqual(krb.check_at_rest(Segments(cipher), "kx-enc", "t"), "ciphertext")
        with self.assertRaisesRegex(krb.BenchError, "holds plaintext values"):
            krb.check_at_rest(Segments(plain), "bs-enc", "t")
        with self.assertRaisesRegex(krb.BenchError, "holds no plaintext values"):
            krb.check_at_rest(Segments(cipher), "bs-audit", "t")
        with self.assertRaisesRegex(krb.BenchError, "no segment data"):
            krb.check_at_rest(Segments(b""), "direct", "t")

    def test_bad_arguments_are_refused_before_anything_starts(self):
        for args, msg in ((["--modes", "direct,bs-kafak"], "unknown mode(s) bs-kafak"),
                          (["--modes", ","], "unknown mode(s)"),
                          (["--records", "0"], "must be >= 1")):
            with self.subTest(args=args):
                p = run_script(args, timeout=30)
                self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
                self.assertIn(msg, p.stderr)


class ShortRun(unittest.TestCase):
    """The whole script, short mode, every brokerside path against a real Kafka broker."""

    def test_short_run_of_every_brokerside_path(self):
        p = run_script(["--short", "--modes", ",".join(BS_MODES)])
        self.assertEqual(p.returncode, 0, p.stdout[-3000:] + p.stderr[-3000:])
        out = p.stdout
        self.assertNotIn("FAILED", out)
        self.assertIn("2000 records x 1024 B per run", out)
        num = r"[0-9]+\.[0-9]"
        for mode in BS_MODES:
            with self.subTest(mode=mode):
                cpu = r"[0-9.]+ +[0-9.]+"
                rest = "ciphertext" if mode == "bs-enc-kms" else "plaintext"
                self.assertRegex(out, r"\n%s +%s +[0-9]+ +%s +%s +%s\n" % (re.escape(mode), num, num, cpu, rest))
                self.assertIn("round 1 %-10s produce" % mode, p.stderr)
        for pair in ("bs-kafka / bs-tcp", "bs-enc-kms / bs-kafka", "bs-audit / bs-kafka"):
            self.assertRegex(out, r"\n%s +[0-9.]+ +[0-9.]+ +[0-9.]+ " % re.escape(pair))
        self.assertRegex(out, r"kafka/tcp produce throughput +[0-9.]+ +>= 0.95 +not judged \(--short\)")
        self.assertNotIn("PASS", out)
        self.assertNotIn("kx-", out, "Kroxylicious paths were not asked for")


if __name__ == "__main__":
    unittest.main(verbosity=2)
