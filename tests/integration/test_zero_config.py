"""Zero-config address mapping: a kafka listener with no kafka.advertise
entry announces itself for the broker whose advertised address is its
upstream; the other brokers of the fleet still need the map or a template,
and their real addresses never reach a client.

Real Apache Kafka brokers (a 1-node and a 3-node cluster, shared by the tests of this module)
advertise their own client listeners, as a broker advertising its loopback listener does.
Clients: kcat over TLS.
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ZeroConfigTest(harness.IntegrationTest):

    def broker_ports(self, kc):
        """Every port of the real brokers (client, SASL, internal, controller listeners)."""
        return [str(p) for n in kc.nodes for p in n.ports.values()]

    def assert_no_leak(self, db, text):
        for bp in self.broker_ports(db):
            self.assertNotIn(":" + bp, text, "a real broker port leaked:\n" + text)

    def test_single_broker_needs_no_advertise(self):
        db = self.kafka(nodes=1, sidecar=False)
        db.reset_topics(["zc:2"])
        port = harness.free_port()
        bs = self.front_broker(port, db.node(1).client, protocol="kafka", advertise=False, name="self")
        self.assertEqual(harness.run([harness.BROKERSIDE, "--check-config", bs.config_path]).returncode, 0)
        boot = "127.0.0.1:%d" % port
        r = harness.kcat(boot, ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("broker 1 at 127.0.0.1:%d" % port, out)
        self.assert_no_leak(db, out)
        msgs = ["zc-%d" % i for i in range(20)]
        harness.kcat_produce(boot, "zc", msgs, self.certs)
        got = harness.kcat_consume(boot, "zc", len(msgs), self.certs)
        self.assertEqual(sorted(got), sorted(msgs))
        self.assertEqual(harness.metric(bs.metrics(), "brokerside_kafka_unmapped_node_total",
                                        listener="self", node="1"), 0)

    def test_wildcard_bind_announces_the_advertised_key(self):
        db = self.kafka(nodes=1, sidecar=False)
        db.reset_topics(["zw"])
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "0.0.0.0:%d" % port, db.node(1).client,
                                   protocol="kafka", name="pub")
        lst["advertised"] = "localhost:%d" % port
        bs = self.start_brokerside(harness.base_config(harness.free_port(), [lst]))
        r = harness.kcat("127.0.0.1:%d" % port, ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("broker 1 at localhost:%d" % port, out)
        self.assert_no_leak(db, out)
        harness.kcat_produce("localhost:%d" % port, "zw", ["w1", "w2"], self.certs)
        self.assertEqual(sorted(harness.kcat_consume("localhost:%d" % port, "zw", 2, self.certs)),
                         ["w1", "w2"])
        del bs

    def test_fleet_of_three_sidecars(self):
        # One sidecar per broker, each fronting only its own broker. Without a map the
        # other nodes are unmapped: the metadata is refused, nothing leaks.
        db = self.kafka(nodes=3, sidecar=False)
        db.reset_topics(["fleet:3:3"])
        ports = {b: harness.free_port() for b in (1, 2, 3)}
        alone = harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[1], db.node(1).client,
                                     protocol="kafka", name="alone")
        lone = self.start_brokerside(harness.base_config(harness.free_port(), [alone]), name="alone")
        r = harness.kcat("127.0.0.1:%d" % ports[1], ["-L", "-m", "5"], self.certs, timeout=30)
        self.assert_no_leak(db, r.stdout.decode() + r.stderr.decode())
        lone.wait_log(r"node [23] has no advertised address \(kafka\.advertise\)")
        lone.stop()
        # The fleet: each sidecar maps the other two nodes and derives its own.
        sidecars = {}
        for b in (1, 2, 3):
            lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[b], db.node(b).client,
                                       protocol="kafka", name="b%d" % b)
            others = {str(o): "127.0.0.1:%d" % ports[o] for o in (1, 2, 3) if o != b}
            cfg = harness.base_config(harness.free_port(), [lst], kafka={"advertise": others})
            sidecars[b] = self.start_brokerside(cfg, name="sidecar%d" % b)
        for b in (1, 2, 3):
            r = harness.kcat("127.0.0.1:%d" % ports[b], ["-L"], self.certs)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            for o in (1, 2, 3):
                self.assertIn("broker %d at 127.0.0.1:%d" % (o, ports[o]), out)
            self.assert_no_leak(db, out)
        boot = ",".join("127.0.0.1:%d" % ports[b] for b in (1, 2, 3))
        msgs = ["f-%d" % i for i in range(60)]
        harness.kcat_produce(boot, "fleet", msgs, self.certs)
        group = "zc-" + uuid.uuid4().hex[:8]
        r = harness.kcat(boot, ["-G", group, "-o", "beginning", "-c", str(len(msgs)), "-e", "-q",
                                "fleet"], self.certs, timeout=90)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.decode().splitlines()), sorted(msgs))
        for b, bs in sidecars.items():
            self.assertNotIn("has no advertised address", bs.log_text())

    def test_one_sidecar_fronting_every_broker(self):
        # One brokerside with a listener per broker: every node is derived, no map at all.
        db = self.kafka(nodes=3, sidecar=False)
        db.reset_topics(["all:3:3"])
        ports = {b: harness.free_port() for b in (1, 2, 3)}
        lsts = [harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[b], db.node(b).client,
                                     protocol="kafka", name="b%d" % b) for b in (1, 2, 3)]
        self.start_brokerside(harness.base_config(harness.free_port(), lsts))
        r = harness.kcat("127.0.0.1:%d" % ports[2], ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for b in (1, 2, 3):
            self.assertIn("broker %d at 127.0.0.1:%d" % (b, ports[b]), out)
        self.assert_no_leak(db, out)


    def test_broker_id_limits_the_derived_node(self):
        # A listener's broker_id says which node is behind it: another node whose address
        # the listener fronts is not derived (brokers that all advertise one loopback address,
        # each on its own host, can only be told apart this way; the rule for a shared address
        # without broker_id is unit-tested: test_kafka_codec, test_config).
        db = self.kafka(nodes=3, sidecar=False)
        ports = {b: harness.free_port() for b in (1, 2, 3)}
        wrong = harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[1], db.node(1).client,
                                     protocol="kafka", name="wrong")
        wrong["broker_id"] = 2
        cfg = harness.base_config(harness.free_port(), [wrong], kafka={"advertise": {
            "2": "127.0.0.1:%d" % ports[2], "3": "127.0.0.1:%d" % ports[3]}})
        bs = self.start_brokerside(cfg, name="wrong-id")
        r = harness.kcat("127.0.0.1:%d" % ports[1], ["-L", "-m", "5"], self.certs, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assert_no_leak(db, r.stdout.decode() + r.stderr.decode())
        bs.wait_log(r"node 1 has no advertised address \(kafka\.advertise\)")
        bs.stop()
        right = dict(wrong, broker_id=1)
        cfg = harness.base_config(harness.free_port(), [right], kafka={"advertise": {
            "2": "127.0.0.1:%d" % ports[2], "3": "127.0.0.1:%d" % ports[3]}})
        self.start_brokerside(cfg, name="right-id")
        r = harness.kcat("127.0.0.1:%d" % ports[1], ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("broker 1 at 127.0.0.1:%d" % ports[1], r.stdout.decode())
        self.assert_no_leak(db, r.stdout.decode())

if __name__ == "__main__":
    harness.main()
