"""Issue 4 fail-closed record path with the aws keyring: brokerside in front
of a real Apache Kafka broker, encryption with kms.type "aws" against moto_server (SigV4
checked) reached through a TCP forwarder that the test takes away.

With the KMS gone, a Produce to an encrypted topic that has no data key yet
fails (retriable per-partition error until the client gives up) and the
broker holds nothing of it; an unencrypted topic (unmatched_topics
"plaintext") keeps working throughout; with the KMS back, traffic to the
encrypted topic resumes and reads back through the sidecar."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402
from test_kms_keyring import Forwarder  # noqa: E402

REGION = "eu-west-1"
MAGIC = bytes.fromhex("be5ec0de")


class EncryptionKmsTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        moto, py = moto_server_path(), python_with_boto3()
        if not moto or not py:
            self.fail("moto_server and a python3 with boto3 are required (make deps)")
        moto_port = harness.free_port()
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        mp = harness.Proc([moto, "-H", "127.0.0.1", "-p", str(moto_port)],
                          log_path=os.path.join(self.tmp, "moto.log"), env=env)
        self.addCleanup(mp.kill)
        harness.wait_port("127.0.0.1", moto_port, proc=mp)
        out = subprocess.run([py, os.path.join(HERE, "aws_moto_setup.py"),
                              "http://127.0.0.1:%d/" % moto_port, REGION],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        creds = json.loads(out.stdout.strip().splitlines()[-1])
        self.fwd = Forwarder(moto_port)
        self.fwd.start()
        self.addCleanup(self.fwd.stop)
        # The daemon inherits the environment: its credential chain finds these.
        saved = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "HOME"}
        for k in list(os.environ):
            if k.startswith("AWS_"):
                del os.environ[k]
        os.environ.update(AWS_ACCESS_KEY_ID=creds["access_key_id"],
                          AWS_SECRET_ACCESS_KEY=creds["secret_access_key"],
                          AWS_EC2_METADATA_DISABLED="true", HOME="/nonexistent")

        def restore():
            for k in list(os.environ):
                if k.startswith("AWS_") or k == "HOME":
                    del os.environ[k]
            os.environ.update(saved)
        self.addCleanup(restore)
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["enc-a", "enc-b", "plain"])
        self.port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.port, self.kc.node(1).client,
                                   protocol="kafka", name="b1")
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            aws={"region": REGION, "max_attempts": 1, "connect_timeout_s": 2,
                 "request_timeout_s": 5},
            encryption={"kms": {"type": "aws", "region": REGION,
                                "endpoint": "http://127.0.0.1:%d/" % self.fwd.port},
                        "topics": [{"match": "enc-*", "key": creds["key_id"]}],
                        "unmatched_topics": "plaintext"})
        self.bs = self.start_brokerside(cfg)
        self.conf = {"bootstrap.servers": "127.0.0.1:%d" % self.port,
                     "security.protocol": "SSL", "ssl.ca.location": self.certs["ca_crt"]}

    def produce(self, topic, values, timeout_ms=60000):
        """Delivery errors (None = delivered), one per value."""
        from confluent_kafka import Producer
        p = Producer(dict(self.conf, acks="all", **{"message.timeout.ms": timeout_ms}))
        results = []
        for v in values:
            p.produce(topic, value=v, on_delivery=lambda err, msg: results.append(err))
        p.flush(timeout_ms / 1000 + 30)
        self.assertEqual(len(results), len(values))
        return results

    def high_watermark(self, topic):
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": self.kc.node(1).client,
                      "group.id": "w-" + uuid.uuid4().hex[:6]})
        try:
            return c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[1]
        finally:
            c.close()

    def consume(self, conf, topic, count):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        c = Consumer(dict(conf, **{"group.id": "t-" + uuid.uuid4().hex[:8]}))
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got, deadline = [], time.monotonic() + 60
        while len(got) < count and time.monotonic() < deadline:
            m = c.poll(1.0)
            if m is not None and not m.error():
                got.append(m.value())
        c.close()
        return got

    def test_kms_outage_fails_closed_then_recovers(self):
        vals = [b"enc-a secret %d" % i for i in range(5)]
        self.assertEqual(self.produce("enc-a", vals), [None] * 5)
        self.assertEqual(self.consume(self.conf, "enc-a", 5), vals)
        raw = self.consume({"bootstrap.servers": self.kc.node(1).client}, "enc-a", 5)
        self.assertTrue(all(v.startswith(MAGIC) and b"secret" not in v for v in raw))

        self.fwd.stop()  # the KMS is gone
        errs = self.produce("enc-b", [b"enc-b secret %d" % i for i in range(3)], timeout_ms=15000)
        self.assertTrue(all(e is not None for e in errs), errs)
        self.assertEqual(self.high_watermark("enc-b"), 0)  # nothing, not even ciphertext
        self.assertEqual(self.produce("plain", [b"p1", b"p2"]), [None, None])
        self.assertEqual(self.high_watermark("plain"), 2)
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_record_crypto_failures_total",
                                               reason="key_unavailable"), 1)
        self.bs.wait_log(r"Produce v\d+ from .* refused \(key_unavailable")

        self.fwd.start()  # back
        late = [b"enc-b later %d" % i for i in range(3)]
        self.assertEqual(self.produce("enc-b", late), [None] * 3)
        self.assertEqual(self.consume(self.conf, "enc-b", 3), late)
        raw = self.consume({"bootstrap.servers": self.kc.node(1).client}, "enc-b", 3)
        self.assertTrue(all(v.startswith(MAGIC) and b"later" not in v for v in raw))
        # the broker's disk: envelopes only, not one plaintext of either topic
        for topic, needle in (("enc-a", b"enc-a secret"), ("enc-b", b"enc-b secret"), ("enc-b", b"later")):
            self.assertNotIn(needle, self.kc.read_segments(topic))


if __name__ == "__main__":
    harness.main()
