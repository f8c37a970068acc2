"""Issue 4 record path end to end: a real Apache Kafka broker (one per module) behind brokerside
(TLS, kafka protocol) with encryption at rest on topics enc-* (local keyring, key file made by
bs_keygen) and unmatched_topics "plaintext".

Clients produce through the sidecar with kcat, kafka-python and confluent-kafka using every
compression codec, with keys and headers (and kafkajs with every codec too, see
test_kafkajs_every_codec_round_trip); a consumer connected DIRECTLY to the broker finds only
envelopes (no plaintext) on the encrypted topic, and the broker's own segment files (`*.log`
under its log.dirs) hold none of the plaintext values; consumers through the sidecar get every
record back byte for byte (value, key, headers); the plaintext topic is stored as sent (also on
disk: the control that shows the disk check can fail). A compacted encrypted topic still
compacts (keys stay clear). A forged envelope produced through the sidecar is refused.
EncryptionOffTest runs the same clients through a sidecar without encryption."""

import os
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "..", "node_modules")
# kafkajs and the codec packages tests/integration/kafkajs_codecs.js loads;
# all are pinned in tests/package.json and installed by `make deps`.
KAFKAJS_PACKAGES = ["kafkajs", "kafkajs-snappy", "lz4js", os.path.join("@bokuweb", "zstd-wasm")]

KEYGEN = os.path.join(harness.BUILD_DIR, "bs_keygen")
MAGIC = bytes.fromhex("be5ec0de")
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


class EncryptionTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["enc-orders", "enc-kp", "plain-logs", "enc-forged", "enc-kjs"])
        self.key_file = os.path.join(self.tmp, "master.key")
        r = subprocess.run([KEYGEN, self.key_file], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.port, self.kc.node(1).client,
                                   protocol="kafka", name="b1")
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            encryption={"kms": {"type": "local", "key_file": self.key_file},
                        "topics": [{"match": "enc-*", "key": "orders-key"}],
                        "unmatched_topics": "plaintext"})
        self.bs = self.start_brokerside(cfg)
        self.bootstrap = "127.0.0.1:%d" % self.port

    # -------------------------------------------------------------- helpers

    def tls_conf(self):
        return {"bootstrap.servers": self.bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": self.certs["ca_crt"]}

    def consume_all(self, conf, topic, count, timeout=60):
        """(value, key, headers) of the first `count` records of partition 0."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        c = Consumer(dict(conf, **{"group.id": "t-" + uuid.uuid4().hex[:8],
                                   "enable.auto.commit": False}))
        c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        got = []
        errors = []
        deadline = time.monotonic() + timeout
        while len(got) < count and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                errors.append(str(msg.error()))
                continue
            got.append((msg.value(), msg.key(), tuple(msg.headers() or ())))
        c.close()
        self.assertEqual(len(got), count, "consumed %d of %d from %s; errors %s"
                         % (len(got), count, topic, errors[:3]))
        return got

    def direct(self):
        """A client of the broker itself (its client listener advertises its own address)."""
        return {"bootstrap.servers": self.kc.node(1).client}

    def assert_not_on_disk(self, topic, plaintexts):
        """None of `plaintexts` occurs in the broker's segment files of `topic` (which must
        exist and hold data)."""
        data = self.kc.read_segments(topic)
        self.assertTrue(self.kc.segment_files(topic), "no segment files for %s" % topic)
        self.assertGreater(len(data), 0)
        leaked = [p for p in plaintexts if p in data]
        self.assertEqual(leaked[:3], [], "plaintext in the broker's segment files of %s" % topic)

    # -------------------------------------------------------------- tests

    def test_every_client_and_codec_round_trip(self):
        from confluent_kafka import Producer
        from kafka import KafkaProducer
        expected = []
        # confluent-kafka: every codec, keys and headers
        for codec in CODECS:
            p = Producer(dict(self.tls_conf(), **{"compression.codec": codec, "acks": "all",
                                                   "linger.ms": 5}))
            for i in range(20):
                v = ("ck-%s-%d secret payload " % (codec, i) * 8).encode()
                k = ("key-%s-%d" % (codec, i)).encode()
                h = (("trace", ("t%d" % i).encode()), ("codec", codec.encode()))
                p.produce("enc-orders", value=v, key=k, headers=list(h))
                expected.append((v, k, h))
            self.assertEqual(p.flush(60), 0)
        # a tombstone
        p = Producer(dict(self.tls_conf(), acks="all"))
        p.produce("enc-orders", value=None, key=b"deleted")
        self.assertEqual(p.flush(60), 0)
        expected.append((None, b"deleted", ()))
        # kafka-python: every codec
        for codec in CODECS:
            kp = KafkaProducer(bootstrap_servers=self.bootstrap, security_protocol="SSL",
                               ssl_cafile=self.certs["ca_crt"], ssl_check_hostname=False,
                               compression_type=None if codec == "none" else codec, acks="all")
            for i in range(10):
                v = ("kp-%s-%d secret payload" % (codec, i)).encode()
                k = ("kpk-%d" % i).encode()
                kp.send("enc-orders", value=v, key=k, headers=[("src", b"kafka-python")]).get(60)
                expected.append((v, k, (("src", b"kafka-python"),)))
            kp.close(10)
        # kcat: every codec
        for codec in CODECS:
            data = "".join("kc-%s-%d secret payload\n" % (codec, i) for i in range(10)).encode()
            r = harness.kcat(self.bootstrap, ["-P", "-t", "enc-orders", "-z", codec,
                                              "-X", "message.timeout.ms=30000"],
                             self.certs, client_cert=False, input=data)
            self.assertEqual(r.returncode, 0, r.stderr)
            for i in range(10):
                expected.append((("kc-%s-%d secret payload" % (codec, i)).encode(), None, ()))

        # The broker holds ciphertext only: envelopes, no plaintext, keys clear.
        raw = self.consume_all(self.direct(), "enc-orders", len(expected))
        for (v, k, h), (ev, ek, eh) in zip(raw, expected):
            self.assertEqual(k, ek)
            self.assertEqual(h, eh)
            if ev is None:
                self.assertIsNone(v)
                continue
            self.assertTrue(v.startswith(MAGIC), v[:16])
            self.assertNotIn(b"secret", v)
        # ... and on its disk: no plaintext value in the segment files (uncompressed batches
        # would show them verbatim; the keys are there in clear)
        self.assertGreaterEqual(self.kc.read_segments("enc-orders").count(b"key-none-1"), 1)
        self.assert_not_on_disk("enc-orders", [b"secret payload"] + [ev for ev, _, _ in expected if ev])
        # Through the sidecar: everything back byte for byte, in order.
        back = self.consume_all(self.tls_conf(), "enc-orders", len(expected))
        self.assertEqual(back, expected)
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_records_encrypted_total") or 0,
                                len(expected) - 1)
        self.assertGreaterEqual(harness.metric(m, "brokerside_records_decrypted_total") or 0,
                                len(expected) - 1)

    def kafkajs(self, mode, topic, n):
        """Runs kafkajs_codecs.js MODE against the sidecar; its stdout lines."""
        r = subprocess.run(["node", os.path.join(HERE, "kafkajs_codecs.js"), mode, self.bootstrap,
                            self.certs["ca_crt"], topic, str(n)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
        self.assertEqual(r.returncode, 0, "kafkajs %s failed: %s" % (mode, r.stderr.decode()[-2000:]))
        return r.stdout.decode().splitlines()

    def test_kafkajs_every_codec_round_trip(self):
        """kafkajs produces one batch per codec (none, gzip built in; snappy via
        kafkajs-snappy, lz4 via lz4js, zstd via @bokuweb/zstd-wasm, all without a
        native build) with keys and headers, plus a tombstone. The broker holds
        envelopes only; kafkajs through the sidecar gets every record back byte
        for byte, in order."""
        import json
        missing = [p for p in KAFKAJS_PACKAGES if not os.path.isdir(os.path.join(NODE_MODULES, p))]
        self.assertEqual(missing, [], "node packages missing: run `make deps`")
        per_codec = 15
        out = self.kafkajs("produce", "enc-kjs", per_codec)
        self.assertIn("PRODUCED %d" % (per_codec * len(CODECS) + 1), out)
        expected = []
        for codec in CODECS:  # same order and content as kafkajs_codecs.js
            for i in range(per_codec):
                expected.append((("kjs-%s-%d secret payload " % (codec, i) * 8).encode(),
                                 ("kjsk-%s-%d" % (codec, i)).encode(),
                                 (("trace", ("t%d" % i).encode()), ("codec", codec.encode()))))
        expected.append((None, b"kjs-deleted", ()))

        raw = self.consume_all(self.direct(), "enc-kjs", len(expected))
        for (v, k, h), (ev, ek, eh) in zip(raw, expected):
            self.assertEqual(k, ek)
            self.assertEqual(h, eh)
            if ev is None:
                self.assertIsNone(v)
                continue
            self.assertTrue(v.startswith(MAGIC), v[:16])
            self.assertNotIn(b"secret", v)

        def unhex(x):
            return None if x is None else bytes.fromhex(x)
        back = []
        for line in self.kafkajs("consume", "enc-kjs", len(expected)):
            rec = json.loads(line)
            back.append((unhex(rec["value"]), unhex(rec["key"]),
                         tuple((name, unhex(val)) for name, val in rec["headers"])))
        self.assertEqual(back, expected)
        # confluent-kafka through the sidecar agrees (decryption is not
        # client-specific), and the sidecar counted the work.
        self.assertEqual(self.consume_all(self.tls_conf(), "enc-kjs", len(expected)), expected)
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_records_encrypted_total") or 0,
                                len(expected) - 1)

    def test_sighup_applies_new_topic_rules(self):
        """A rule added by SIGHUP applies to the next Produce requests: records
        of plain-logs written before the reload stay plaintext at the broker,
        those written after it are envelopes; through the sidecar all six read
        back as sent."""
        import copy
        from confluent_kafka import Producer
        p = Producer(dict(self.tls_conf(), acks="all"))
        for i in range(3):
            p.produce("plain-logs", value=b"before-%d" % i)
        self.assertEqual(p.flush(60), 0)
        cfg = copy.deepcopy(self.bs.config)
        cfg["encryption"]["topics"].append({"match": "plain-*", "key": "logs-key"})
        self.bs.write_config(cfg)
        self.bs.signal(1)
        harness.wait_until(lambda: "reload: 2 topic rules" in harness.tail(self.bs.log_path, 500),
                           what="the encryption reload in the log")
        p = Producer(dict(self.tls_conf(), acks="all"))
        for i in range(3):
            p.produce("plain-logs", value=b"after-%d" % i)
        self.assertEqual(p.flush(60), 0)
        raw = [v for v, _, _ in self.consume_all(self.direct(), "plain-logs", 6)]
        self.assertEqual(raw[:3], [b"before-%d" % i for i in range(3)])
        for v in raw[3:]:
            self.assertTrue(v.startswith(MAGIC), v[:16])
            self.assertNotIn(b"after-", v)
        back = [v for v, _, _ in self.consume_all(self.tls_conf(), "plain-logs", 6)]
        self.assertEqual(back, [b"before-%d" % i for i in range(3)] +
                         [b"after-%d" % i for i in range(3)])

    def test_plaintext_topic_and_forged_envelope(self):
        from confluent_kafka import Producer
        p = Producer(dict(self.tls_conf(), acks="all"))
        for i in range(5):
            p.produce("plain-logs", value=b"visible-%d" % i)
        self.assertEqual(p.flush(60), 0)
        raw = self.consume_all(self.direct(), "plain-logs", 5)
        self.assertEqual([v for v, _, _ in raw], [b"visible-%d" % i for i in range(5)])
        # the control for the disk checks: a plaintext topic's values are in its segment files
        data = self.kc.read_segments("plain-logs")
        self.assertEqual([b"visible-%d" % i in data for i in range(5)], [True] * 5)
        # A value that already looks like an envelope is refused (INVALID_RECORD).
        results = []
        p2 = Producer(dict(self.tls_conf(), acks="all", retries=0,
                           **{"message.timeout.ms": 20000}))
        p2.produce("enc-forged", value=MAGIC + b"\x01\x01forged",
                   on_delivery=lambda err, msg: results.append(err))
        p2.flush(60)
        self.assertEqual(len(results), 1)
        self.assertIsNotNone(results[0])
        self.assertIn("INVALID_RECORD", str(results[0]))
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_record_crypto_failures_total",
                                               reason="envelope_in_produce") or 0, 1)
        # nothing reached the broker for that topic
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer(dict(self.direct(), **{"group.id": "w-" + uuid.uuid4().hex[:6]}))
        lo, hi = c.get_watermark_offsets(TopicPartition("enc-forged", 0), timeout=30)
        c.close()
        self.assertEqual(hi, 0)


    def consume_to_end(self, conf, topic, timeout=60):
        """Every record of partition 0, from the beginning to the high watermark:
        [(offset, key, value)]."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
        c = Consumer(dict(conf, **{"group.id": "e-" + uuid.uuid4().hex[:8],
                                   "enable.auto.commit": False}))
        try:
            _, hi = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
            c.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
            got, last = [], -1
            deadline = time.monotonic() + timeout
            while last < hi - 1 and time.monotonic() < deadline:
                msg = c.poll(1.0)
                if msg is None or msg.error():
                    continue
                got.append((msg.offset(), msg.key(), msg.value()))
                last = msg.offset()
            self.assertGreaterEqual(last, hi - 1, "did not reach the end of %s" % topic)
            return got
        finally:
            c.close()

    def test_compacted_topic_still_compacts(self):
        """Encrypted values under a compacted topic: the broker compacts by the clear keys.
        Ten keys, five versions each, produced through the sidecar into small segments; the
        log cleaner (forced by segment.ms and min.cleanable.dirty.ratio) keeps the last
        version of each key; through the sidecar those decrypt to the newest plaintexts; the
        disk never holds a plaintext value."""
        from confluent_kafka import Producer
        self.kc.reset_topics(["enc-compact"], config={
            "cleanup.policy": "compact", "segment.ms": 100, "min.cleanable.dirty.ratio": 0.01,
            "min.compaction.lag.ms": 0, "delete.retention.ms": 100, "segment.bytes": 1048576})
        p = Producer(dict(self.tls_conf(), acks="all", **{"linger.ms": 0}))
        latest = {}
        for version in range(5):
            for k in range(10):
                key = b"ck-%d" % k
                latest[key] = b"compact secret v%d of %d" % (version, k)
                p.produce("enc-compact", key=key, value=latest[key])
            self.assertEqual(p.flush(60), 0)
            time.sleep(0.2)  # the next batch starts a new segment (segment.ms=100)
        before = self.consume_to_end(self.direct(), "enc-compact")
        self.assertEqual(before[-1][0], 49, "all 50 records written (the cleaner may already run)")

        def compacted():
            # the active segment is never cleaned: roll it with one more record now and then
            p.produce("enc-compact", key=b"roll", value=b"roll secret")
            p.flush(30)
            recs = self.consume_to_end(self.direct(), "enc-compact")
            ck = [k for _, k, _ in recs if k.startswith(b"ck-")]
            return len(ck) == 10
        harness.wait_until(compacted, 120, "the log cleaner to compact enc-compact")
        raw = self.consume_to_end(self.direct(), "enc-compact")
        for _, k, v in raw:
            self.assertTrue(v.startswith(MAGIC), (k, v[:16]))
        self.assert_not_on_disk("enc-compact", [b"compact secret"])
        data = self.kc.read_segments("enc-compact")
        self.assertTrue(all(b"ck-%d" % k in data for k in range(10)), "keys stay clear on disk")
        back = {k: v for _, k, v in self.consume_to_end(self.tls_conf(), "enc-compact")
                if k.startswith(b"ck-")}
        self.assertEqual(back, latest)


class InjectedBrokerErrorTest(harness.IntegrationTest):
    """A fault only the mock cluster injects on demand: the broker answers the first two
    Produce requests with NOT_LEADER_OR_FOLLOWER (retriable). The producer retries through the
    encrypting sidecar; every record lands once, as an envelope, and reads back as sent."""

    def test_retriable_produce_error_through_encryption(self):
        from confluent_kafka import Producer
        key_file = os.path.join(self.tmp, "master.key")
        r = subprocess.run([KEYGEN, key_file], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        # (the mock advertises the sidecar's address on its only listener, so no client can
        # read it directly: the at-rest checks are the real-broker tests' job)
        db, bs, port = self.mock_cluster(protocol="kafka", topics=("enc-retry:1",), config_extra={
            "encryption": {"kms": {"type": "local", "key_file": key_file},
                           "topics": [{"match": "enc-*", "key": "k"}]}})
        self.assertEqual(db.command("error 0 6 2"), "OK error 0 6 2")
        conf = {"bootstrap.servers": "127.0.0.1:%d" % port, "security.protocol": "SSL",
                "ssl.ca.location": self.certs["ca_crt"]}
        p = Producer(dict(conf, acks="all", retries=5, **{"retry.backoff.ms": 100}))
        vals = [b"retry secret %d" % i for i in range(5)]
        errs = []
        for v in vals:
            p.produce("enc-retry", value=v, partition=0, on_delivery=lambda e, m: errs.append(e))
        self.assertEqual(p.flush(60), 0)
        self.assertEqual(errs, [None] * 5)
        got = harness.kcat_consume("127.0.0.1:%d" % port, "enc-retry", 5, self.certs)
        self.assertEqual(got, [v.decode() for v in vals])   # once each, decrypted
        m = bs.metrics()
        produces = sum(v for (n, ls), v in m.items()
                       if n == "brokerside_kafka_requests_total" and dict(ls).get("api") == "Produce")
        self.assertGreaterEqual(produces, 3, "the two refused Produce requests were retried")
        self.assertGreaterEqual(harness.metric(m, "brokerside_records_encrypted_total"), 5)
        self.assertGreaterEqual(harness.metric(m, "brokerside_records_decrypted_total"), 5)


class EncryptionOffTest(harness.IntegrationTest):
    """The same kafka listener without an encryption section: records reach the broker as sent
    (every client, every codec round-trips; the broker's disk holds the plaintext)."""

    def test_round_trip_without_encryption(self):
        from confluent_kafka import Producer
        kc = self.kafka(nodes=1, sidecar=False)
        kc.reset_topics(["off-orders"])
        port = harness.free_port()
        bs = self.front_broker(port, kc.node(1).client, protocol="kafka")
        bootstrap = "127.0.0.1:%d" % port
        conf = {"bootstrap.servers": bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": self.certs["ca_crt"]}
        expected = []
        for codec in CODECS:
            p = Producer(dict(conf, **{"compression.codec": codec, "acks": "all"}))
            for i in range(10):
                v = ("off-%s-%d clear payload" % (codec, i)).encode()
                p.produce("off-orders", value=v, key=b"k%d" % i)
                expected.append(v)
            self.assertEqual(p.flush(60), 0)
        msgs = ["off-kcat-%d" % i for i in range(10)]
        harness.kcat_produce(bootstrap, "off-orders", msgs, self.certs)
        expected += [m.encode() for m in msgs]
        got = harness.kcat_consume(bootstrap, "off-orders", len(expected), self.certs)
        self.assertEqual(got, [v.decode() for v in expected])
        direct = harness.kcat_consume(kc.node(1).client, "off-orders", len(expected))
        self.assertEqual(direct, got)
        data = kc.read_segments("off-orders")
        self.assertIn(b"off-none-3 clear payload", data)
        self.assertIn(b"off-kcat-3", data)
        m = bs.metrics()
        self.assertEqual(harness.metric(m, "brokerside_records_encrypted_total"), 0)


if __name__ == "__main__":
    harness.main()
