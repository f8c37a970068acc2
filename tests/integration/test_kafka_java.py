"""The Java client (kafka-clients of the pinned Apache Kafka release, tests/java) through
brokerside `kafka` listeners to a real Kafka broker, and the sidecar's protocol coverage of
that broker.

One single-node cluster for the module (harness.module_kafka, brokers advertise their own
addresses: the sidecar rewrites). One brokerside process fronts it with three kafka listeners,
all TLS, no kafka.advertise (zero-config: each client is told the listener it came through):
  tls   -> the broker's PLAINTEXT client listener
  mtls  -> the same, client certificates required
  sasl  -> the broker's SASL_PLAINTEXT listener (SCRAM-SHA-512 and PLAIN users)
Encryption at rest is on for topics enc-* (local keyring), off for the others.

Every scenario lists the host:port of every node the client learned (partition leaders and
replicas, describeCluster, the group coordinator); only the listener's own address may appear,
and the unmapped-node counter must stay 0.
"""
import os
import re
import socket
import struct
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import java_client  # noqa: E402

sys.path.insert(0, os.path.join(harness.SOURCE_DIR, "src", "kafka"))
import gen_schemas  # noqa: E402

KEYGEN = os.path.join(harness.BUILD_DIR, "bs_keygen")
TABLES = os.path.join(harness.BUILD_DIR, "kafka_tables")
M_UNMAPPED = "brokerside_kafka_unmapped_node_total"
M_REWRITE_ERR = "brokerside_kafka_rewrite_errors_total"


def api_versions(sock):
    """ApiVersions v0 on a connected socket: {api_key: (min, max)}."""
    cid = b"bs-coverage"
    msg = struct.pack(">hhih", 18, 0, 7, len(cid)) + cid
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", harness.recv_exact(sock, 4))[0]
    data = harness.recv_exact(sock, size)
    corr, err, n = struct.unpack_from(">ihi", data, 0)
    if corr != 7 or err != 0:
        raise AssertionError("ApiVersions answer: correlation %d error %d" % (corr, err))
    out = {}
    for i in range(n):
        key, lo, hi = struct.unpack_from(">hhh", data, 10 + 6 * i)
        out[key] = (lo, hi)
    return out


class Setup(harness.IntegrationTest):
    """The module's cluster and brokerside, shared by the tests of a class."""

    bs = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        why = java_client.available()
        if why:
            raise AssertionError(why)

    @classmethod
    def tearDownClass(cls):
        if cls.bs is not None:
            cls.bs.stop()
            cls.bs = None
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        cls = type(self)
        if cls.bs is None or not cls.bs.proc.alive():
            key_file = os.path.join(self.class_tmp, "master.key")
            if not os.path.exists(key_file):
                r = subprocess.run([KEYGEN, key_file], capture_output=True, timeout=30)
                self.assertEqual(r.returncode, 0, r.stderr)
            cls.ports = {n: harness.free_port() for n in ("tls", "mtls", "sasl")}
            node = self.kc.node(1)
            listeners = [
                harness.tls_listener(self.certs, "127.0.0.1:%d" % cls.ports["tls"], node.client,
                                     protocol="kafka", name="tls"),
                harness.tls_listener(self.certs, "127.0.0.1:%d" % cls.ports["mtls"], node.client,
                                     protocol="kafka", client_auth="required", name="mtls"),
                harness.tls_listener(self.certs, "127.0.0.1:%d" % cls.ports["sasl"], node.sasl,
                                     protocol="kafka", name="sasl"),
            ]
            cfg = harness.base_config(
                harness.free_port(), listeners,
                encryption={"kms": {"type": "local", "key_file": key_file},
                            "topics": [{"match": "enc-*", "key": "orders-key"}],
                            "unmatched_topics": "plaintext"})
            # one process for the whole class: stopped by the harness's exit safety net
            cls.bs = harness.Brokerside(self.class_tmp, cfg, name="brokerside-java")
            cls.addr = {n: "127.0.0.1:%d" % p for n, p in cls.ports.items()}
        self.logs.append(cls.bs.log_path)
        self.bs = cls.bs

    def props(self, listener, client_cert=False, sasl=None, name=None):
        path = os.path.join(self.tmp, (name or listener) + ".properties")
        return java_client.write_props(path, self.addr[listener], self.certs,
                                       client_cert=client_cert, sasl=sasl)

    def assert_only_sidecar(self, res, listener):
        """The client learned no address but the listener's own."""
        self.assertTrue(res.get("nodes"), "the client reported no node addresses")
        self.assertEqual(set(res["nodes"]), {self.addr[listener]}, res["nodes"])
        real = [n.client for n in self.kc.nodes] + [n.sasl for n in self.kc.nodes] + \
            [n.internal for n in self.kc.nodes] + [n.controller for n in self.kc.nodes]
        for addr in real:
            self.assertNotIn(addr, res.get("_stderr", ""))
        m = self.bs.metrics()
        self.assertEqual(harness.metric(m, M_UNMAPPED), 0)
        self.assertEqual(harness.metric(m, M_REWRITE_ERR), 0)


class ApiCoverageTest(Setup):
    """The real broker offers nothing the sidecar neither parses nor caps away."""

    def tables(self):
        import json
        r = subprocess.run([TABLES], capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    def test_broker_api_versions_are_covered(self):
        with socket.create_connection(("127.0.0.1", int(self.kc.node(1).client.rsplit(":", 1)[1])),
                                      timeout=30) as s:
            direct = api_versions(s)
        with harness.tls_connect(self.ports["tls"], self.certs) as s:
            via = api_versions(s)
        t = self.tables()
        table = {a["key"]: a for a in t["apis"]}
        decoded = {(m["key"], m["request"]): m for m in t["messages"]}
        schemas = gen_schemas.load_schemas(gen_schemas.read_release(gen_schemas.pinned_jar())[0])
        problems = []
        self.assertGreater(len(direct), 40, direct)
        for key, (lo, hi) in sorted(direct.items()):
            a = table.get(key)
            if a is None:
                problems.append("broker offers API %d, unknown to the sidecar's table" % key)
                continue
            if hi > a["max"] and via.get(key, (0, -1))[1] > a["max"]:
                problems.append("%s v%d-%d offered; the table stops at v%d and it is not capped"
                                % (a["name"], lo, hi, a["max"]))
            if key not in via:
                problems.append("%s (v%d-%d) was dropped by the sidecar" % (a["name"], lo, hi))
        for key, (lo, hi) in sorted(via.items()):
            a = table.get(key)
            if a is None or key not in direct:
                problems.append("the sidecar advertises API %d the broker did not" % key)
                continue
            if (lo, hi) != (direct[key][0], min(direct[key][1], a["cap"])):
                problems.append("%s: sidecar advertises v%d-%d, broker v%d-%d, cap %d"
                                % (a["name"], lo, hi, direct[key][0], direct[key][1], a["cap"]))
            if hi > a["max"] or lo < 0:
                problems.append("%s v%d-%d advertised beyond the table (v%d-%d)"
                                % (a["name"], lo, hi, a["min"], a["max"]))
            # every advertised version whose response can carry a broker endpoint is decoded
            resp = schemas.get(a["name"] + "Response")
            if resp is None:
                continue
            if resp["name"] in gen_schemas.OTHER_ENDPOINT_RESPONSES:
                continue
            common = {c["name"]: c["fields"] for c in resp.get("commonStructs", [])}
            m = decoded.get((key, False))
            for v in range(lo, hi + 1):
                if gen_schemas.has_endpoint_at(resp.get("fields", []), common, v) and \
                        (m is None or v not in m["endpoint_versions"]):
                    problems.append("%s v%d can carry broker endpoints and is advertised, "
                                    "but the sidecar does not rewrite it" % (resp["name"], v))
        self.assertEqual(problems, [])
        # what Kafka 4.4.0 really offers, through the sidecar (docs/kafka-protocol.md)
        self.assertEqual(via[0][1], 12)    # Produce: v13 (topic ids only) capped
        self.assertEqual(via[1][1], 18)    # Fetch
        self.assertEqual(via[3][1], 13)    # Metadata
        self.assertEqual(via[60][1], 2)    # DescribeCluster
        self.assertIn(78, via)             # ShareFetch (KIP-932)
        self.assertEqual(direct[0][1], 13)


class JavaClientTest(Setup):
    """The Java client's producer, consumer, share consumer and admin through the sidecar."""

    def run_java(self, scenario, props, **opts):
        res = java_client.run_scenario(self, scenario, props, **opts)
        java_client.assert_ok(self, res, scenario)
        return res

    def test_idempotent_producer_each_codec_encrypted_over_mtls(self):
        before = harness.metric(self.bs.metrics(), "brokerside_records_encrypted_total")
        res = self.run_java("produce", self.props("mtls", client_cert=True), topic="enc-codec",
                            codec="none,gzip,snappy,lz4,zstd", count=40, prefix="secret")
        self.assert_only_sidecar(res, "mtls")
        self.assertEqual(sorted(res["codecs"]), ["gzip", "lz4", "none", "snappy", "zstd"])
        after = harness.metric(self.bs.metrics(), "brokerside_records_encrypted_total")
        self.assertGreaterEqual(after - before, 5 * 40)
        # the broker's own segment files hold no plaintext value (codec none: the values
        # would be there verbatim, as the plaintext control topic below shows)
        disk = self.kc.read_segments("enc-codec-none")
        self.assertGreater(len(disk), 0)
        self.assertNotIn(b"secret-none-", disk)
        self.assertIn(b"k39", disk)  # keys stay clear

    def test_plaintext_topic_reaches_disk_as_is(self):
        res = self.run_java("produce", self.props("tls"), topic="plain-codec", codec="none",
                            count=10, prefix="visible")
        self.assert_only_sidecar(res, "tls")
        self.assertIn(b"visible-none-9", self.kc.read_segments("plain-codec"))

    def test_transactions_read_committed(self):
        res = self.run_java("transactions", self.props("tls"), topic="enc-txn", count=10,
                            transactional_id="bs-java-txn")
        self.assert_only_sidecar(res, "tls")
        self.assertEqual(res["read_committed"], 20)
        self.assertNotIn(b"committed-a-", self.kc.read_segments("enc-txn"))

    def test_consumer_group_protocols(self):
        for protocol in ("consumer", "classic"):
            with self.subTest(protocol=protocol):
                topic = "grp-" + protocol
                res = self.run_java("group", self.props("tls", name=topic), topic=topic,
                                    group="g-" + protocol, protocol=protocol, partitions=3, count=60)
                self.assert_only_sidecar(res, "tls")
                self.assertEqual(res["group_type"].lower(), protocol)
                self.assertEqual(res["committed"], 60)

    def test_share_group_consumer(self):
        res = self.run_java("share", self.props("tls"), topic="enc-share", group="share-1", count=30)
        self.assertEqual(res["read"], 30)
        self.assertIn("share-1", res["share_groups"])
        self.assertEqual(harness.metric(self.bs.metrics(), M_UNMAPPED), 0)
        self.assertNotIn(b"share-", self.kc.read_segments("enc-share"))

    def test_admin_client(self):
        res = self.run_java("admin", self.props("mtls", client_cert=True), topic="adm-topic")
        self.assert_only_sidecar(res, "mtls")
        self.assertEqual(res["cluster_nodes"], ["1@" + self.addr["mtls"]])
        self.assertEqual(res["cluster_id"], self.kc.cluster_id)


class SaslTest(Setup):
    """SCRAM-SHA-512 and PLAIN through a TLS kafka listener to the broker's SASL_PLAINTEXT
    listener: the Java client with both, kcat with PLAIN (its librdkafka cannot do SCRAM with
    Kafka 4.x at all, see below)."""

    def test_java_scram_and_plain(self):
        for mech, user in (("SCRAM-SHA-512", "alice"), ("PLAIN", "bob")):
            with self.subTest(mechanism=mech):
                topic = "sasl-java-" + user
                props = self.props("sasl", sasl=(mech, user, self.kc.users[user]), name=topic)
                res = java_client.run_scenario(self, "produce", props, topic=topic, count=20)
                java_client.assert_ok(self, res, mech)
                self.assert_only_sidecar(res, "sasl")

    def kcat_sasl(self, mech, user, password, args, input=None):
        argv = ["kcat", "-b", self.addr["sasl"], "-X", "security.protocol=SASL_SSL",
                "-X", "ssl.ca.location=" + self.certs["ca_crt"], "-X", "sasl.mechanisms=" + mech,
                "-X", "sasl.username=" + user, "-X", "sasl.password=" + password] + args
        return harness.run(argv, input=input, timeout=90)

    def test_kcat_plain(self):
        for user in ("alice", "admin"):
            with self.subTest(user=user):
                topic = "sasl-kcat-" + user
                self.kc.reset_topics([topic])
                pw = self.kc.users[user]
                msgs = ["%s-%d" % (user, i) for i in range(10)]
                r = self.kcat_sasl("PLAIN", user, pw, ["-P", "-t", topic],
                                   input=("\n".join(msgs) + "\n").encode())
                self.assertEqual(r.returncode, 0, r.stderr)
                r = self.kcat_sasl("PLAIN", user, pw, ["-C", "-t", topic, "-o", "beginning", "-e",
                                                       "-c", str(len(msgs))])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout.decode().split(), msgs)
                r = self.kcat_sasl("PLAIN", user, pw, ["-L"])
                self.assertIn("broker 1 at %s" % self.addr["sasl"], r.stdout.decode())
                self.assertNotIn(self.kc.node(1).sasl, r.stdout.decode())

    def test_kcat_scram_fails_as_it_does_direct(self):
        """Debian's librdkafka 2.0.2 (kcat) cannot do SCRAM with any Kafka 4.x broker: it repeats
        the client nonce in its final message, which 4.x rejects (fixed in librdkafka 2.6.1,
        confluentinc/librdkafka#4895). The sidecar must not change that outcome: the broker's
        own verdict comes back through it, exactly as without it."""
        direct = harness.run(["kcat", "-b", self.kc.node(1).sasl, "-X", "security.protocol=SASL_PLAINTEXT",
                              "-X", "sasl.mechanisms=SCRAM-SHA-512", "-X", "sasl.username=alice",
                              "-X", "sasl.password=" + self.kc.users["alice"], "-L", "-m", "6"],
                             timeout=90)
        via = self.kcat_sasl("SCRAM-SHA-512", "alice", self.kc.users["alice"], ["-L", "-m", "6"])
        verdict = "invalid credentials with SASL mechanism SCRAM-SHA-512"
        self.assertNotEqual(direct.returncode, 0)
        self.assertIn(verdict, direct.stderr.decode())
        self.assertNotEqual(via.returncode, 0)
        self.assertIn(verdict, via.stderr.decode())

    def test_kafka_python_scram(self):
        """A second SCRAM-SHA-512 client next to Java: kafka-python (Debian's 2.0), through the
        sidecar. It authenticates the pre-KIP-152 way, SaslHandshake v0 followed by bare SASL
        token frames that are not Kafka requests; the sidecar used to take the first token for
        a request and close the connection on the broker's answer."""
        code = """
import sys
from kafka import KafkaProducer, KafkaConsumer, TopicPartition
conf = dict(bootstrap_servers=sys.argv[1], security_protocol="SASL_SSL", ssl_cafile=sys.argv[2],
            sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="bob", sasl_plain_password=sys.argv[3])
p = KafkaProducer(**conf)
for i in range(10):
    p.send("sasl-kpy", ("kpy-%d" % i).encode()).get(60)
p.close()
c = KafkaConsumer(**conf, auto_offset_reset="earliest", consumer_timeout_ms=20000)
tp = TopicPartition("sasl-kpy", 0)
c.assign([tp]); c.seek_to_beginning(tp)
got = [m.value.decode() for _, m in zip(range(10), c)]
print(" ".join(got)); print("BROKERS", " ".join("%s:%d" % (b.host, b.port) for b in c._client.cluster.brokers()))
"""
        self.kc.reset_topics(["sasl-kpy"])
        r = harness.run(["/usr/bin/python3", "-c", code, self.addr["sasl"], self.certs["ca_crt"],
                         self.kc.users["bob"]], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr.decode()[-3000:])
        out = r.stdout.decode().splitlines()
        self.assertEqual(out[0].split(), ["kpy-%d" % i for i in range(10)])
        self.assertEqual(out[1].split()[1:], [self.addr["sasl"]])

    def test_wrong_password_is_refused(self):
        r = self.kcat_sasl("PLAIN", "alice", "not-the-password", ["-L", "-m", "8"])
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr.decode(), re.compile("SASL|[Aa]uthentication", re.S))
        props = self.props("sasl", sasl=("PLAIN", "bob", "wrong"), name="badpw")
        res = java_client.run_scenario(self, "produce", props, topic="sasl-bad", count=1, timeout=180)
        self.assertFalse(res["ok"])
        self.assertIn("SaslAuthenticationException", res["_stderr"] + str(res.get("errors")))


if __name__ == "__main__":
    harness.main()
