"""KIP-951 fail-over through one sidecar per broker: three real Kafka 4.4.0 nodes, a topic
with replication factor 3, and the leader of its partition stopped while the Java client
produces through the sidecars.

The clients must recover through the sidecars (every acknowledged record readable, nothing
lost or duplicated) and no real broker address may ever reach them: every node address the
Java client learned (partition leaders and replicas as it sampled them during the run,
describeCluster, the group coordinator) is a sidecar's, the client's own debug log of its
metadata updates and connections (org.apache.kafka.clients.Metadata and NetworkClient: every
Metadata, FindCoordinator, DescribeCluster answer and KIP-951 NodeEndpoints leader hint ends
up there) names no real broker port, and each sidecar's unmapped-node and rewrite-error
counters stay 0.
"""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import java_client  # noqa: E402

DEBUG = ("org.apache.kafka.clients.Metadata", "org.apache.kafka.clients.NetworkClient",
         "org.apache.kafka.clients.producer.internals.Sender")


class FailoverTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        why = java_client.available()
        if why:
            self.fail(why)
        self.kc = self.kafka(nodes=3, sidecar=False)
        self.ports = {n.id: harness.free_port() for n in self.kc.nodes}
        advertise = {str(i): "127.0.0.1:%d" % p for i, p in self.ports.items()}
        self.sidecars = {}
        for n in self.kc.nodes:
            lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.ports[n.id], n.client,
                                       protocol="kafka", name="broker%d" % n.id)
            cfg = harness.base_config(harness.free_port(), [lst], kafka={"advertise": advertise})
            self.sidecars[n.id] = self.start_brokerside(cfg, name="sidecar%d" % n.id)
        self.addrs = set(advertise.values())
        self.bootstrap = ",".join(sorted(self.addrs))

    def real_ports(self):
        return {int(a.rsplit(":", 1)[1]) for n in self.kc.nodes
                for a in (n.client, n.sasl, n.internal, n.controller)}

    def leader_of(self, topic, partition=0):
        for n in self.kc.nodes:
            if not n.alive():
                continue
            with harness.KafkaWire(n.internal) as w:
                _, _, topics = w.metadata([topic])
            err, leader = topics[topic][1][partition]
            if err == 0 and leader >= 0:
                return leader
        return None

    def check_no_leak(self, res):
        self.assertTrue(res["nodes"], "the client reported no node addresses")
        self.assertLessEqual(set(res["nodes"]), self.addrs, res["nodes"])
        log = res["_stderr"]
        seen = set(int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", log))
        self.assertTrue(seen & set(self.ports.values()), "no sidecar address in the client's debug log")
        self.assertEqual(seen & self.real_ports(), set(),
                         "a real broker address reached the client:\n" +
                         "\n".join(l for l in log.splitlines()
                                   if any(":%d" % p in l for p in self.real_ports()))[:3000])

    def check_counters(self):
        for i, bs in self.sidecars.items():
            m = bs.metrics()
            self.assertEqual(harness.metric(m, "brokerside_kafka_unmapped_node_total"), 0, i)
            self.assertEqual(harness.metric(m, "brokerside_kafka_rewrite_errors_total"), 0, i)

    def test_leader_stopped_while_producing(self):
        self.kc.create_topic("failover", 1, 3, config={"min.insync.replicas": "2"})
        props = java_client.write_props(os.path.join(self.tmp, "client.properties"), self.bootstrap,
                                        self.certs)
        count = 400
        proc, out, err = java_client.start_scenario(self, "failover", props, debug=DEBUG,
                                                    topic="failover", count=count, pace_ms=25)
        harness.wait_until(lambda: any(l.get("acked", 0) >= 80 for l in java_client.lines(out))
                           or proc.poll() is not None, 180, "80 records acknowledged")
        self.assertIsNone(proc.poll(), "the producer ended before the fail-over")
        leader = self.leader_of("failover")
        self.assertIsNotNone(leader)
        self.kc.stop_node(leader)
        new_leader = None
        deadline = time.monotonic() + 60
        while new_leader in (None, leader) and time.monotonic() < deadline:
            new_leader = self.leader_of("failover")
            time.sleep(0.2)
        self.assertNotIn(new_leader, (None, leader))
        res = java_client.finish(proc, out, err, timeout=300)
        java_client.assert_ok(self, res, "failover")
        self.assertEqual(res["acked"], count)
        # the client itself saw the partition move from the stopped leader to the new one
        self.assertIn("0@%d" % leader, res["leaders_seen"])
        self.assertIn("0@%d" % new_leader, res["leaders_seen"])
        # KIP-951: the old leader answered a Produce with NOT_LEADER_OR_FOLLOWER and the new
        # leader (CurrentLeader + NodeEndpoints, rewritten by its sidecar), and the producer
        # moved on from that hint without waiting for a Metadata refresh
        hints = [l for l in res["_stderr"].splitlines() if "updating leader information" in l]
        self.assertTrue(hints, "the producer applied no KIP-951 leader hint")
        self.assertTrue(any("leader=Optional[%d]" % new_leader in l for l in hints), hints)
        self.check_no_leak(res)

        # A consumer group (FindCoordinator, group coordinators on the survivors) through the
        # sidecars while the old leader is still down.
        res = java_client.run_scenario(self, "group", props, debug=DEBUG, topic="after-failover",
                                       group="g-failover", protocol="consumer", partitions=3,
                                       rf=2, count=60)
        java_client.assert_ok(self, res, "group after fail-over")
        self.check_no_leak(res)
        self.check_counters()
        self.kc.start_node(leader)


if __name__ == "__main__":
    harness.main()
