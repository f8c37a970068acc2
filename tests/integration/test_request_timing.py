"""Request timing split (docs/observability.md, "Request timing") against the real Apache Kafka
broker: two sidecars in front of the same broker, one plain and one encrypting (local keyring),
take the same produce and fetch traffic, interleaved round by round so both see the same machine.

Checked per sidecar: brokerside_kafka_broker_duration_seconds{api} and
brokerside_kafka_sidecar_duration_seconds{api} move with traffic (one observation per request,
both histograms the same count as the request total), broker + sidecar sums add up to the
total, and with encryption the sidecar's share of the time is larger than without: the
encrypting sidecar decompresses, encrypts and recompresses every gzip batch (the plain one
streams the few compressed bytes), while the broker's work is the same append. Only counts and
sums are compared, never wall-clock thresholds. The EMF side is checked in test_ops_metrics."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

KEYGEN = os.path.join(harness.BUILD_DIR, "bs_keygen")
ROUNDS = 6
PER_ROUND = 6
VALUE_BYTES = 100 * 1024


def hist(m, family, api, part):
    """_count or _sum of one histogram family for `api` (every listener)."""
    return harness.metric(m, "%s_%s" % (family, part), api=api)


def split(m, api):
    """(count broker, count sidecar, sum broker, sum sidecar, count total, sum total)."""
    return (hist(m, "brokerside_kafka_broker_duration_seconds", api, "count"),
            hist(m, "brokerside_kafka_sidecar_duration_seconds", api, "count"),
            hist(m, "brokerside_kafka_broker_duration_seconds", api, "sum"),
            hist(m, "brokerside_kafka_sidecar_duration_seconds", api, "sum"),
            harness.metric(m, "brokerside_kafka_request_duration_seconds_count", api=api,
                           stage="total"),
            harness.metric(m, "brokerside_kafka_request_duration_seconds_sum", api=api,
                           stage="total"))


class RequestTimingTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["timing-plain", "enc-timing"])
        key_file = os.path.join(self.tmp, "master.key")
        r = subprocess.run([KEYGEN, key_file], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.plain_port = harness.free_port()
        self.plain = self.front_broker(self.plain_port, self.kc.node(1).client, protocol="kafka",
                                       name="plain")
        self.enc_port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.enc_port,
                                   self.kc.node(1).client, protocol="kafka", name="enc")
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.enc_port}},
            encryption={"kms": {"type": "local", "key_file": key_file},
                        "topics": [{"match": "enc-*", "key": "timing-key"}],
                        "unmatched_topics": "plaintext"})
        self.enc = self.start_brokerside(cfg, name="brokerside-enc")

    def conf(self, port):
        return {"bootstrap.servers": "127.0.0.1:%d" % port, "security.protocol": "SSL",
                "ssl.ca.location": self.certs["ca_crt"]}

    def produce_round(self, producer, topic, r):
        # Compressible values: small gzip batches on the wire; the encrypting sidecar has to
        # compress the (incompressible) envelopes again.
        for i in range(PER_ROUND):
            text = ("round %d record %d of the timing test; " % (r, i)).encode()
            producer.produce(topic, value=(text * (VALUE_BYTES // len(text) + 1))[:VALUE_BYTES],
                             key=b"k%d" % i)
        self.assertEqual(producer.flush(60), 0, "undelivered records to %s" % topic)

    def test_split_moves_with_traffic_and_encryption_grows_sidecar_share(self):
        from confluent_kafka import Producer
        before = {"plain": split(self.plain.metrics(), "Produce"),
                  "enc": split(self.enc.metrics(), "Produce")}
        producers = {}
        for name, port in (("plain", self.plain_port), ("enc", self.enc_port)):
            producers[name] = Producer(dict(self.conf(port), **{
                "compression.codec": "gzip", "acks": "all", "linger.ms": 20,
                "batch.size": 1000000, "message.max.bytes": 1000000}))
        for r in range(ROUNDS):
            self.produce_round(producers["plain"], "timing-plain", r)
            self.produce_round(producers["enc"], "enc-timing", r)
        # the records are really there, and the encrypted ones read back through the sidecar
        got = harness.kcat_consume("127.0.0.1:%d" % self.enc_port, "enc-timing",
                                   ROUNDS * PER_ROUND, self.certs)
        self.assertEqual(len(got), ROUNDS * PER_ROUND)
        self.assertTrue(got[0].startswith("round 0 record 0"))

        share = {}
        for name, bs in (("plain", self.plain), ("enc", self.enc)):
            m = bs.metrics()
            after = split(m, "Produce")
            d = [a - b for a, b in zip(after, before[name])]
            n_broker, n_sidecar, s_broker, s_sidecar, n_total, s_total = d
            self.assertGreaterEqual(n_broker, ROUNDS, "%s: Produce requests timed" % name)
            self.assertEqual(n_broker, n_sidecar, "%s: one broker and one sidecar time each"
                             % name)
            self.assertEqual(n_broker, n_total, "%s: as many as the request totals" % name)
            self.assertGreater(s_broker, 0, name)
            self.assertGreater(s_sidecar, 0, name)
            self.assertAlmostEqual(s_broker + s_sidecar, s_total, delta=1e-3 * n_total + 1e-6,
                                   msg="%s: broker + sidecar = total" % name)
            # every Produce series has the listener and api labels only
            series = [ls for (n, ls) in m if n == "brokerside_kafka_sidecar_duration_seconds_count"
                      and ("api", "Produce") in ls]
            self.assertEqual([sorted(k for k, _ in ls) for ls in series], [["api", "listener"]])
            share[name] = s_sidecar / (s_broker + s_sidecar)
            # the fetches of the consumer (enc) and of nobody (plain): Fetch moves on enc only
            if name == "enc":
                self.assertGreater(hist(m, "brokerside_kafka_broker_duration_seconds", "Fetch",
                                        "count"), 0)
                self.assertGreater(hist(m, "brokerside_kafka_sidecar_duration_seconds", "Fetch",
                                        "count"), 0)
        self.assertGreater(share["enc"], share["plain"],
                           "the sidecar's share of Produce time grows with encryption: %r" % share)
        self.assertGreater(harness.metric(self.enc.metrics(), "brokerside_records_encrypted_total"),
                           0)


if __name__ == "__main__":
    harness.main()
