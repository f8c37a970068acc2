"""Audit completeness on a full disk: no acknowledged request without its event.

The spool and the audit file sink live on a 3 MiB tmpfs the test mounts, so
the disk really fills (ENOSPC), as in the incident this reproduces: before,
audit events piled up in memory and were dropped while Produce requests kept
being acknowledged and /readyz stayed 200.

With `data_events: each` a real producer (confluent-kafka, acks=all, one
message per request) writes through a `kafka` listener to a real Apache
Kafka broker until the disk is full. Then: requests are refused (Produce answered KAFKA_STORAGE_ERROR, so
the producer sees failures, not successes), /readyz is 503 and /status says
audit_blocked. The tmpfs is then grown, the event path catches up, /readyz
turns 200 and production succeeds again. After a clean stop every
acknowledged message has its Produce event in the audit file, and `audit
verify` passes (nothing was lost, so no AuditEventsLost record).

The mount needs root (or an unprivileged user namespace): without either the
test fails with a clear message rather than silently skipping.
"""

import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

TMPFS_SIZE = "3m"


def mount_tmpfs(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("this test needs to mount a small tmpfs (run as root): %s" %
                             r.stderr.strip())


class AuditSpoolFullTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.fs = os.path.join(self.tmp, "smallfs")
        os.makedirs(self.fs)
        mount_tmpfs(self.fs, TMPFS_SIZE)
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.fs], capture_output=True))

    def produce(self, producer_conf, n, stop_after_failures=None):
        """Produce n messages one request each; returns (acked, failed)."""
        from confluent_kafka import Producer
        p = Producer(producer_conf)
        acked, failed = [], []

        def report(err, msg):
            (failed if err else acked).append(msg.value().decode())
        consecutive = 0
        for i in range(n):
            before = len(failed)
            p.produce("orders", value=("m-%d-%f" % (i, time.time())).encode(), callback=report)
            p.flush(30)
            consecutive = consecutive + 1 if len(failed) > before else 0
            if stop_after_failures and consecutive >= stop_after_failures:
                break
        p.flush(30)
        return acked, failed

    def test_full_disk_refuses_instead_of_losing(self):
        kc = self.kafka(nodes=1, sidecar=False)
        kc.reset_topics(["orders:1:1"])
        port = harness.free_port()
        key = os.path.join(self.tmp, "audit.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        lst = {"name": "b1", "bind": "127.0.0.1:%d" % port, "upstream": kc.node(1).client,
               "protocol": "kafka", "broker_id": 1}
        events = os.path.join(self.fs, "events")
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % port}},
            audit={"data_events": "each", "signing_key_file": key, "sinks": ["files"],
                   "digest_every_events": 100},
            sinks={"files": {"type": "file", "dir": events}},
            spool={"dir": os.path.join(self.fs, "spool"), "segment_bytes": 1 << 20})
        bs = self.start_brokerside(cfg)
        conf = {"bootstrap.servers": "127.0.0.1:%d" % port, "acks": "all", "linger.ms": 0,
                "message.timeout.ms": 3000, "retries": 1, "retry.backoff.ms": 200,
                "enable.idempotence": False}

        # Fill the disk: stop once 5 messages in a row failed.
        acked1, failed1 = self.produce(conf, 6000, stop_after_failures=5)
        self.assertGreater(len(acked1), 100, "the disk filled before anything was produced")
        self.assertGreaterEqual(len(failed1), 5, "the producer never saw a refusal")
        code, body = bs.get("/readyz")
        self.assertEqual(code, 503, body)
        self.assertIn("audit", body)
        code, st = bs.get("/status")
        self.assertTrue(json.loads(st)["events"]["audit_blocked"], st)
        self.assertGreater(harness.metric(bs.metrics(), "brokerside_audit_refused_requests_total"), 0)
        self.assertIn("audit events cannot be stored", bs.log_text())

        # Room again: the queued events reach the spool, requests are accepted.
        r = subprocess.run(["mount", "-o", "remount,size=64m", self.fs], capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        harness.wait_until(lambda: bs.get("/readyz")[0] == 200, 60, "/readyz 200 after the disk grew")
        acked2, failed2 = self.produce(conf, 50)
        self.assertEqual(len(failed2), 0)

        # Clean stop: the chain is sealed and the sink has caught up.
        bs.signal(signal.SIGTERM)
        self.assertEqual(bs.proc.wait(60), 0)
        audit = os.path.join(events, "audit.ndjson")
        n_events = sum(1 for line in open(audit) if '"eventName":"Produce"' in line)
        sys.stderr.write("acked %d + %d, refused %d, Produce events %d\n" %
                         (len(acked1), len(acked2), len(failed1), n_events))
        self.assertGreaterEqual(n_events, len(acked1) + len(acked2),
                                "acknowledged Produce requests without an audit event")
        self.assertNotIn("AuditEventsLost", open(audit).read())
        r = harness.run([harness.BROKERSIDE, "audit", "verify", "--key", key, audit], timeout=120)
        self.assertEqual(r.returncode, 0, (r.stdout + r.stderr).decode()[-3000:])


if __name__ == "__main__":
    harness.main()
