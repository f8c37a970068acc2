"""Issue 3 end to end, against a real 3-node Apache Kafka cluster (one per module, shared by the
tests) behind ONE brokerside process with three `kafka` listeners (one per broker), TLS on every
client connection, kafka.advertise mapping node ids to the sidecar addresses. The brokers
advertise their real addresses: only the sidecar's rewriting keeps clients on it.

Every client (kcat, kafka-python, confluent-kafka, kafkajs) produces and
consumes with a consumer group through the sidecar; the metadata they see
holds sidecar addresses only; a broker going down and up is survived through
the same addresses; the per-API and per-topic metrics move as expected."""

import os
import signal
import ssl
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_MODULES = os.path.join(HERE, "..", "node_modules", "kafkajs")


class KafkaProxyTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=3, sidecar=False)
        self.kc.reset_topics(["orders:3:3", "events:2:3"])
        self.ports = {bid: harness.free_port() for bid in (1, 2, 3)}
        listeners = [harness.tls_listener(self.certs, "127.0.0.1:%d" % self.ports[bid],
                                          self.kc.node(bid).client, protocol="kafka",
                                          name="b%d" % bid)
                     for bid in (1, 2, 3)]
        advertise = {str(bid): "127.0.0.1:%d" % p for bid, p in self.ports.items()}
        cfg = harness.base_config(harness.free_port(), listeners, kafka={"advertise": advertise})
        self.bs = self.start_brokerside(cfg)
        self.bootstrap = ",".join("127.0.0.1:%d" % self.ports[b] for b in (1, 2, 3))

    # -------------------------------------------------------------- helpers

    def broker_ports(self):
        """Every port of the real brokers (client, SASL, internal, controller listeners)."""
        return [str(p) for n in self.kc.nodes for p in n.ports.values()]

    def topic_metric(self, name, topic):
        return harness.metric(self.bs.metrics(), name, topic=topic)

    def api_requests(self, api):
        m = self.bs.metrics()
        total = 0
        for (name, labels), v in m.items():
            if name == "brokerside_kafka_requests_total" and dict(labels).get("api") == api:
                total += v
        return total

    def ssl_context(self):
        ctx = ssl.create_default_context(cafile=self.certs["ca_crt"])
        ctx.check_hostname = False  # the dev cert names localhost; clients dial 127.0.0.1
        return ctx

    # -------------------------------------------------------------- tests

    def test_metadata_shows_only_sidecar_addresses(self):
        for bid in (1, 2, 3):
            r = harness.kcat("127.0.0.1:%d" % self.ports[bid], ["-L"], self.certs)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            self.assertIn("3 brokers:", out)
            for b, p in self.ports.items():
                self.assertIn("broker %d at 127.0.0.1:%d" % (b, p), out)
            for bp in self.broker_ports():
                self.assertNotIn(":" + bp, out, "a real broker port leaked:\n" + out)
            self.assertIn('topic "orders" with 3 partitions', out)
        self.assertGreaterEqual(self.api_requests("Metadata"), 3)
        self.assertGreaterEqual(self.api_requests("ApiVersions"), 3)

    def test_kcat_produce_consume_group_and_topic_metrics(self):
        msgs = ["kcat-%d-%s" % (i, "x" * 100) for i in range(200)]
        harness.kcat_produce(self.bootstrap, "orders", msgs, self.certs)
        harness.wait_until(
            lambda: self.topic_metric("brokerside_topic_messages_in_total", "orders") == len(msgs),
            what="messages_in{topic=orders} == %d" % len(msgs))
        self.assertGreater(self.topic_metric("brokerside_topic_bytes_in_total", "orders"),
                           sum(len(m) for m in msgs))
        group = "g-" + uuid.uuid4().hex[:8]
        r = harness.kcat(self.bootstrap, ["-G", group, "-o", "beginning", "-c", str(len(msgs)),
                                          "-e", "-q", "orders"], self.certs, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.decode().splitlines()), sorted(msgs))
        harness.wait_until(
            lambda: self.topic_metric("brokerside_topic_bytes_out_total", "orders") >=
            sum(len(m) for m in msgs), what="bytes_out{topic=orders}")
        for api in ("Produce", "Fetch", "FindCoordinator", "JoinGroup", "SyncGroup"):
            self.assertGreater(self.api_requests(api), 0, api)
        m = self.bs.metrics()
        names = harness.metric_names(m)
        self.assertIn("brokerside_kafka_request_duration_seconds_bucket", names)
        self.assertIn("brokerside_kafka_response_bytes_total", names)
        # real client traffic against a real broker decodes, every API
        bad = {dict(ls).get("api"): v for (name, ls), v in m.items()
               if name == "brokerside_kafka_undecodable_total" and v > 0}
        self.assertEqual(bad, {})

    def test_kafka_python_group(self):
        from kafka import KafkaConsumer, KafkaProducer
        ctx = self.ssl_context()
        prod = KafkaProducer(bootstrap_servers=self.bootstrap, security_protocol="SSL",
                             ssl_context=ctx, acks="all")
        values = [("kp-%d" % i).encode() for i in range(50)]
        for v in values:
            prod.send("events", v)
        prod.flush(60)
        prod.close()
        cons = KafkaConsumer("events", bootstrap_servers=self.bootstrap, security_protocol="SSL",
                             ssl_context=ctx, group_id="kp-" + uuid.uuid4().hex[:8],
                             auto_offset_reset="earliest", consumer_timeout_ms=30000)
        got = []
        deadline = time.monotonic() + 60
        while len(got) < len(values) and time.monotonic() < deadline:
            for msg in cons:
                got.append(msg.value)
                if len(got) >= len(values):
                    break
        cons.close()
        self.assertEqual(sorted(got), sorted(values))
        self.assertGreaterEqual(self.topic_metric("brokerside_topic_messages_in_total", "events"),
                                len(values))

    def test_confluent_kafka_group(self):
        from confluent_kafka import Consumer, Producer
        conf = {"bootstrap.servers": self.bootstrap, "security.protocol": "SSL",
                "ssl.ca.location": self.certs["ca_crt"]}
        p = Producer(dict(conf, acks="all"))
        values = [("ck-%d" % i).encode() for i in range(50)]
        for v in values:
            p.produce("orders", v)
        self.assertEqual(p.flush(60), 0)
        c = Consumer(dict(conf, **{"group.id": "ck-" + uuid.uuid4().hex[:8],
                                   "auto.offset.reset": "earliest"}))
        c.subscribe(["orders"])
        got = []
        deadline = time.monotonic() + 60
        while len(got) < len(values) and time.monotonic() < deadline:
            msg = c.poll(1.0)
            if msg is None or msg.error():
                continue
            got.append(msg.value())
        c.close()
        self.assertEqual(sorted(got), sorted(values))

    def test_kafkajs_group(self):
        self.assertTrue(os.path.isdir(NODE_MODULES), "kafkajs is not installed: run `make deps`")
        group = "kjs-" + uuid.uuid4().hex[:8]
        p = subprocess.run(["node", os.path.join(HERE, "kafkajs_client.js"), self.bootstrap,
                            self.certs["ca_crt"], "events", group, "40"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=150)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        self.assertIn("CONSUMED 40", p.stdout.decode())

    def test_broker_down_and_up(self):
        harness.kcat_produce(self.bootstrap, "orders", ["before"], self.certs)
        self.kc.stop_node(2)
        self.addCleanup(self.kc.start_node, 2)
        # While broker 2 is down its sidecar cannot reach it; metadata via the
        # others still names only sidecar addresses.
        r = harness.kcat("127.0.0.1:%d" % self.ports[1], ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        for bp in self.broker_ports():
            self.assertNotIn(":" + bp, r.stdout.decode())
        self.kc.start_node(2)
        msgs = ["after-%d" % i for i in range(30)]
        harness.kcat_produce(self.bootstrap, "orders", msgs, self.certs, timeout=90)
        got = harness.kcat_consume(self.bootstrap, "orders", len(msgs) + 1, self.certs, timeout=90)
        self.assertEqual(sorted(got), sorted(msgs + ["before"]))

    def test_long_lived_producer_survives_broker_restart(self):
        # One confluent-kafka producer across the leader of a partition going down and up: it
        # follows the new leader and reconnects through the same sidecar addresses, and
        # delivers everything. (One restart: each costs about ten seconds of a real broker.)
        from confluent_kafka import Producer
        p = Producer({"bootstrap.servers": self.bootstrap, "security.protocol": "SSL",
                      "ssl.ca.location": self.certs["ca_crt"], "acks": "all",
                      "message.timeout.ms": 60000})
        failed = []

        def report(err, msg):
            if err is not None:
                failed.append(err)

        def produce(prefix):
            for part in range(3):
                for i in range(5):
                    p.produce("orders", ("%s-%d-%d" % (prefix, part, i)).encode(), partition=part,
                              on_delivery=report)
            self.assertEqual(p.flush(90), 0)
        produce("a")
        with harness.KafkaWire(self.kc.node(1).internal) as w:
            _, _, topics = w.metadata(["orders"])
        leader = topics["orders"][1][0][1]
        self.kc.stop_node(leader)   # controlled shutdown: leadership moves to the others
        self.addCleanup(self.kc.start_node, leader)
        produce("down")              # while that broker (and its sidecar's upstream) is down
        self.kc.start_node(leader)
        produce("up")
        self.assertEqual(failed, [])
        got = harness.kcat_consume(self.bootstrap, "orders", 45, self.certs, timeout=90)
        self.assertEqual(len(got), 45)
        # >= : a retried Produce (connection lost before its answer) counts twice
        self.assertGreaterEqual(self.topic_metric("brokerside_topic_messages_in_total", "orders"), 45)

    def test_reload_changes_advertised_addresses(self):
        # SIGHUP with a new kafka.advertise: new connections see the new names.
        cfg = dict(self.bs.config)
        cfg["kafka"] = {"advertise": "sidecar-{id}.example:19{id}00"}
        self.bs.write_config(cfg)
        mark = self.bs.log_mark()
        self.bs.signal(signal.SIGHUP)
        self.bs.wait_log(r"reload: applied", since=mark)
        r = harness.kcat("127.0.0.1:%d" % self.ports[1], ["-L", "-m", "10"], self.certs, timeout=30)
        out = r.stdout.decode() + r.stderr.decode()
        for b in (1, 2, 3):
            self.assertIn("broker %d at sidecar-%d.example:19%d00" % (b, b, b), out)
        for bp in self.broker_ports():
            self.assertNotIn(":" + bp, r.stdout.decode())

    def test_unmapped_node_closes_without_leaking(self):
        # A second brokerside whose advertise map lacks node 3: any metadata
        # response names node 3, so it is refused and the connection closed.
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % port, self.kc.node(1).client,
                                   protocol="kafka", name="partial")
        cfg = harness.base_config(harness.free_port(), [lst], kafka={"advertise": {
            "1": "127.0.0.1:%d" % port, "2": "127.0.0.1:%d" % self.ports[2]}})
        bs2 = self.start_brokerside(cfg, name="partial")
        r = harness.kcat("127.0.0.1:%d" % port, ["-L", "-m", "5"], self.certs, timeout=30)
        out = r.stdout.decode() + r.stderr.decode()
        for bp in self.broker_ports():
            self.assertNotIn(":" + bp, out)
        bs2.wait_log(r"node 3 has no advertised address \(kafka\.advertise\)")
        self.assertGreaterEqual(harness.metric(bs2.metrics(), "brokerside_kafka_unmapped_node_total",
                                               listener="partial", node="3"), 1)


if __name__ == "__main__":
    harness.main()
