"""Zero-config address mapping: a kafka listener with no kafka.advertise
entry announces itself for the broker whose advertised address is its
upstream; the other brokers of the fleet still need the map or a template,
and their real addresses never reach a client.

The brokers advertise their own listen addresses, as a real broker advertising
its loopback listener does: the dev broker (fast; also brokers that all
advertise one address) and a real 3-node Apache Kafka cluster (a fleet of three
sidecars, and a lone sidecar that must refuse the nodes it cannot name).
Clients: kcat over TLS.
"""

import os
import sys
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ZeroConfigTest(harness.IntegrationTest):

    def broker_ports(self, db):
        return [addr["listen"].rsplit(":", 1)[1] for addr in db.brokers.values()]

    def assert_no_leak(self, db, text):
        for bp in self.broker_ports(db):
            self.assertNotIn(":" + bp, text, "a real broker port leaked:\n" + text)

    def test_single_broker_needs_no_advertise(self):
        db = self.start_devbroker(brokers=1, topics=["zc:2"])
        self.assertEqual(db.brokers[1]["advertised"], db.listen_addr(1))
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % port, db.listen_addr(1),
                                   protocol="kafka", name="self")
        bs = self.start_brokerside(harness.base_config(harness.free_port(), [lst]))
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
        db = self.start_devbroker(brokers=1, topics=["zw:1"])
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "0.0.0.0:%d" % port, db.listen_addr(1),
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
        db = self.start_devbroker(brokers=3, topics=["fleet:3:3"])
        ports = {b: harness.free_port() for b in (1, 2, 3)}
        alone = harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[1], db.listen_addr(1),
                                     protocol="kafka", name="alone")
        lone = self.start_brokerside(harness.base_config(harness.free_port(), [alone]), name="alone")
        r = harness.kcat("127.0.0.1:%d" % ports[1], ["-L", "-m", "5"], self.certs, timeout=30)
        self.assert_no_leak(db, r.stdout.decode() + r.stderr.decode())
        lone.wait_log(r"node [23] has no advertised address \(kafka\.advertise\)")
        lone.stop()
        # The fleet: each sidecar maps the other two nodes and derives its own.
        sidecars = {}
        for b in (1, 2, 3):
            lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[b], db.listen_addr(b),
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

    def test_brokers_advertising_one_address_need_broker_id(self):
        # Every broker advertises the same loopback address (each its own, on its own
        # host, in a real fleet): the address cannot tell the nodes apart. Without
        # broker_id nothing is derived (refused, never misrouted to this sidecar); with
        # broker_id only that node is, and the others come from the map.
        db0 = self.start_devbroker(brokers=1)
        shared = db0.listen_addr(1)
        db0.stop()
        db = self.start_devbroker(brokers=3, topics=["same:3:3"],
                                  advertise={1: shared, 2: shared, 3: shared})
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % port, shared, protocol="kafka",
                                   name="self")
        # (the listener fronts `shared`, which no broker listens on: Metadata goes to
        # the real broker 1 via a second listener below, the one clients bootstrap from)
        boot = harness.free_port()
        entry = harness.tls_listener(self.certs, "127.0.0.1:%d" % boot, db.listen_addr(1),
                                     protocol="kafka", name="entry")
        bs = self.start_brokerside(harness.base_config(harness.free_port(), [entry, lst]),
                                   name="no-id")
        r = harness.kcat("127.0.0.1:%d" % boot, ["-L", "-m", "5"], self.certs, timeout=30)
        self.assertNotIn("broker 2 at 127.0.0.1:%d" % port, r.stdout.decode())
        self.assert_no_leak(db, r.stdout.decode() + r.stderr.decode())
        bs.wait_log(r"node [123] has no advertised address")
        bs.stop()
        lst["broker_id"] = 2
        cfg = harness.base_config(harness.free_port(), [entry, lst], kafka={"advertise": {
            "1": "127.0.0.1:%d" % boot, "3": "127.0.0.1:%d" % boot}})
        bs = self.start_brokerside(cfg, name="with-id")
        r = harness.kcat("127.0.0.1:%d" % boot, ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("broker 2 at 127.0.0.1:%d" % port, out)
        self.assertIn("broker 1 at 127.0.0.1:%d" % boot, out)
        self.assertIn("broker 3 at 127.0.0.1:%d" % boot, out)
        self.assert_no_leak(db, out)

    def test_one_sidecar_fronting_every_broker(self):
        # One brokerside with a listener per broker: every node is derived, no map at all.
        db = self.start_devbroker(brokers=3, topics=["all:3:3"])
        ports = {b: harness.free_port() for b in (1, 2, 3)}
        lsts = [harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[b], db.listen_addr(b),
                                     protocol="kafka", name="b%d" % b) for b in (1, 2, 3)]
        self.start_brokerside(harness.base_config(harness.free_port(), lsts))
        r = harness.kcat("127.0.0.1:%d" % ports[2], ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        for b in (1, 2, 3):
            self.assertIn("broker %d at 127.0.0.1:%d" % (b, ports[b]), out)
        self.assert_no_leak(db, out)


class RealKafkaZeroConfigTest(harness.IntegrationTest):
    """Against real Apache Kafka: each node's client listener advertises itself."""

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=3, sidecar=False)

    def real_ports(self):
        return [str(p) for n in self.kc.nodes for p in n.ports.values()]

    def assert_no_leak(self, text):
        for p in self.real_ports():
            self.assertNotIn(":" + p, text, "a real broker port leaked:\n" + text)

    def test_fleet_of_three_sidecars(self):
        # One sidecar per node; each maps the other two and derives its own (broker_id).
        self.kc.reset_topics(["zc-real:3:3"])
        ports = {b: harness.free_port() for b in (1, 2, 3)}
        for b in (1, 2, 3):
            self.assertEqual(self.kc.node(b).client.rsplit(":", 1)[0], "127.0.0.1")
            lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % ports[b],
                                       self.kc.node(b).client, protocol="kafka", name="b%d" % b)
            lst["broker_id"] = b
            others = {str(o): "127.0.0.1:%d" % ports[o] for o in (1, 2, 3) if o != b}
            cfg = harness.base_config(harness.free_port(), [lst], kafka={"advertise": others})
            self.start_brokerside(cfg, name="sidecar%d" % b)
        for b in (1, 2, 3):
            r = harness.kcat("127.0.0.1:%d" % ports[b], ["-L"], self.certs)
            self.assertEqual(r.returncode, 0, r.stderr)
            out = r.stdout.decode()
            for o in (1, 2, 3):
                self.assertIn("broker %d at 127.0.0.1:%d" % (o, ports[o]), out)
            self.assert_no_leak(out)
        boot = ",".join("127.0.0.1:%d" % ports[b] for b in (1, 2, 3))
        msgs = ["real-%d" % i for i in range(60)]
        harness.kcat_produce(boot, "zc-real", msgs, self.certs)
        got = harness.kcat_consume(boot, "zc-real", len(msgs), self.certs, timeout=90)
        self.assertEqual(sorted(got), sorted(msgs))

    def test_lone_sidecar_refuses_the_other_nodes(self):
        port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % port, self.kc.node(1).client,
                                   protocol="kafka", name="alone")
        bs = self.start_brokerside(harness.base_config(harness.free_port(), [lst]), name="alone")
        r = harness.kcat("127.0.0.1:%d" % port, ["-L", "-m", "5"], self.certs, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assert_no_leak(r.stdout.decode() + r.stderr.decode())
        bs.wait_log(r"node [23] has no advertised address \(kafka\.advertise\)")
        self.assertNotIn("node 1 has no advertised address", bs.log_text())


if __name__ == "__main__":
    harness.main()
