"""The consumer-lag monitor (`lag`, docs/observability.md "Consumer lag") and `metrics.level`
against a real Apache Kafka broker: OffsetLag = produced - committed per partition with the
MSK aggregates, EstimatedTimeLag against known produce times and growing while a consumer is
stopped, a deleted group's series disappear, a broker restart shows no bogus lag, hostile
group names are counted, a KIP-848 group (Java client, group.protocol=consumer) is reported,
and the level decides the label sets on /metrics and in the EMF documents (MSK names)."""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import java_client  # noqa: E402

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

INTERVAL = 1


def lag_series(m, name, **labels):
    """{(group, topic[, partition]): value} of one lag family, filtered by labels."""
    out = {}
    for (n, lbl), v in m.items():
        if n != name:
            continue
        d = dict(lbl)
        if any(d.get(k) != v2 for k, v2 in labels.items()):
            continue
        key = (d["group"], d["topic"]) + ((int(d["partition"]),) if "partition" in d else ())
        out[key] = v
    return out


class ConsumerLagTest(harness.IntegrationTest):
    _real_kafka = True

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = harness.module_kafka(nodes=1)

    # ---------------------------------------------------------------- helpers

    def sidecar(self, level="per_topic_per_partition", emf_dir=None, name="brokerside", **lag):
        """A sidecar in front of the module's broker with a lag section (`lag` keys); its
        state (spool, EMF files) under <tmp>/<name>."""
        node = self.kafka.nodes[0]
        os.makedirs(os.path.join(self.tmp, name), exist_ok=True)
        admin = harness.free_port()
        listener = {"name": "clients", "bind": "127.0.0.1:%d" % harness.free_port(),
                    "upstream": node.client, "protocol": "kafka"}
        cfg = harness.base_config(admin, [listener])
        cfg["lag"] = dict({"interval_s": INTERVAL}, **lag)
        cfg["metrics"] = {"level": level, "interval_s": 1, "sinks": ["f"]}
        cfg["sinks"] = {"f": {"type": "file", "dir": emf_dir or os.path.join(self.tmp, name, "events")}}
        cfg["spool"] = {"dir": os.path.join(self.tmp, name, "spool")}
        return self.start_brokerside(cfg, name=name)

    def polls(self, bs):
        return harness.metric(bs.metrics(), "brokerside_lag_monitor_polls_total", result="ok") or 0

    def next_poll(self, bs, after=None):
        """Wait for a successful poll that started after this call; returns the metrics."""
        start = self.polls(bs) if after is None else after
        # a poll may be running now: two more successes guarantee one started after us
        harness.wait_for(lambda: self.polls(bs) >= start + 2, "two more lag polls")
        return bs.metrics()

    def produce(self, topic, per_partition, bootstrap=None):
        """per_partition: {partition: count}. Returns (wall time before, wall time after)."""
        p = KafkaProducer(bootstrap_servers=bootstrap or self.kafka.bootstrap, acks="all")
        t0 = time.time()
        futs = [p.send(topic, value=b"v%d" % i, partition=part)
                for part, n in per_partition.items() for i in range(n)]
        for f in futs:
            f.get(timeout=60)
        p.flush()
        t1 = time.time()
        p.close()
        return t0, t1

    def consume_commit(self, group, topic, upto, bootstrap=None):
        """A classic-protocol consumer (kafka-python) reads each partition p from the start up to
        offset upto[p] and commits exactly that."""
        c = KafkaConsumer(bootstrap_servers=bootstrap or self.kafka.bootstrap, group_id=group,
                          enable_auto_commit=False, auto_offset_reset="earliest")
        tps = [TopicPartition(topic, p) for p in upto]
        c.assign(tps)
        c.seek_to_beginning(*tps)
        got = {p: 0 for p in upto}
        deadline = time.monotonic() + 60
        while any(got[p] < upto[p] for p in upto) and time.monotonic() < deadline:
            for tp, recs in c.poll(timeout_ms=500).items():
                got[tp.partition] += len(recs)
        self.assertTrue(all(got[p] >= upto[p] for p in upto), got)
        c.commit({TopicPartition(topic, p): OffsetAndMetadata(n, "") for p, n in upto.items()})
        c.close()

    def topic(self, name, partitions):
        self.kafka.reset_topics(["%s:%d" % (name, partitions)])

    # ---------------------------------------------------------------- tests

    def test_offset_lag_sum_max_and_time_lag(self):
        topic, group = "lag-basic", "g-basic"
        self.topic(topic, 3)
        bs = self.sidecar()
        self.next_poll(bs)  # the monitor has a sample of the empty partitions
        t_before, t_after = self.produce(topic, {0: 10, 1: 10, 2: 10})
        self.consume_commit(group, topic, {0: 3, 1: 5, 2: 10})
        self.next_poll(bs)
        time.sleep(2 * INTERVAL)  # the unconsumed records age
        m = self.next_poll(bs)
        per = lag_series(m, "brokerside_consumer_lag_offsets", group=group)
        self.assertEqual(per, {(group, topic, 0): 7, (group, topic, 1): 5, (group, topic, 2): 0})
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets", group=group),
                         {(group, topic): 12})
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_max_offsets", group=group),
                         {(group, topic): 7})
        # EstimatedTimeLag: now minus the append time of the first unconsumed record,
        # interpolated between two samples of the log-end offset one interval apart: within
        # one interval (+1 s for the whole-second poll timestamp) of the known produce time.
        t_poll = harness.metric(m, "brokerside_lag_monitor_last_success_timestamp_seconds")
        est = lag_series(m, "brokerside_consumer_lag_estimated_time_seconds", group=group)
        for p in (0, 1):
            lo = t_poll - t_after - INTERVAL - 1
            hi = t_poll + 1 - t_before + INTERVAL + 1
            self.assertGreater(est[(group, topic, p)], 0)
            self.assertTrue(lo <= est[(group, topic, p)] <= hi,
                            "partition %d: %.3f not in [%.3f, %.3f]" % (p, est[(group, topic, p)], lo, hi))
        self.assertEqual(est[(group, topic, 2)], 0, "no lag, no time lag")
        mx = lag_series(m, "brokerside_consumer_lag_estimated_max_time_seconds", group=group)
        self.assertEqual(mx[(group, topic)], max(est[(group, topic, 0)], est[(group, topic, 1)]))
        self.assertGreaterEqual(harness.metric(m, "brokerside_lag_monitor_groups"), 1)
        code, body = bs.get("/status")
        st = json.loads(body)["lag"]
        self.assertEqual(st["bootstrap"], self.kafka.nodes[0].client)
        self.assertEqual(st["broker_id"], self.kafka.nodes[0].id)
        self.assertFalse(st["stale"])
        self.assertGreaterEqual(st["rows"], 3)

        # The consumer stays stopped: the same first unconsumed records only get older.
        m2 = self.next_poll(bs)
        est2 = lag_series(m2, "brokerside_consumer_lag_estimated_time_seconds", group=group)
        for p in (0, 1):
            self.assertGreater(est2[(group, topic, p)], est[(group, topic, p)])
        self.assertEqual(lag_series(m2, "brokerside_consumer_lag_sum_offsets", group=group),
                         {(group, topic): 12})

        # The consumer catches up: lag and time lag drop to 0.
        self.consume_commit(group, topic, {0: 10, 1: 10, 2: 10})
        m3 = self.next_poll(bs)
        self.assertEqual(lag_series(m3, "brokerside_consumer_lag_sum_offsets", group=group),
                         {(group, topic): 0})
        self.assertEqual(lag_series(m3, "brokerside_consumer_lag_estimated_max_time_seconds",
                                    group=group), {(group, topic): 0})

    def test_deleted_group_series_disappear(self):
        topic = "lag-delete"
        self.topic(topic, 2)
        bs = self.sidecar()
        self.produce(topic, {0: 4, 1: 4})
        self.consume_commit("g-del", topic, {0: 1, 1: 2})
        self.consume_commit("g-keep", topic, {0: 4, 1: 0})
        m = self.next_poll(bs)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets", topic=topic),
                         {("g-del", topic): 5, ("g-keep", topic): 4})
        a = KafkaAdminClient(bootstrap_servers=self.kafka.bootstrap)
        a.delete_consumer_groups(["g-del"])
        a.close()
        m = self.next_poll(bs)
        for fam in ("brokerside_consumer_lag_sum_offsets", "brokerside_consumer_lag_max_offsets",
                    "brokerside_consumer_lag_estimated_max_time_seconds",
                    "brokerside_consumer_lag_offsets",
                    "brokerside_consumer_lag_estimated_time_seconds"):
            self.assertEqual(lag_series(m, fam, group="g-del"), {}, fam)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets", group="g-keep"),
                         {("g-keep", topic): 4})

    def test_hostile_group_names(self):
        topic = "lag-names"
        self.topic(topic, 1)
        bs = self.sidecar()
        self.produce(topic, {0: 5})
        quoted = 'q"u\\o\'te {x}'
        for g in (quoted, "gr\u00fcppe", "x" * 300, "   "):
            self.consume_commit(g, topic, {0: 2})
        before = harness.metric(bs.metrics(), "brokerside_lag_groups_skipped_total",
                                reason="unlabelable") or 0
        m = self.next_poll(bs)
        # printable ASCII is reported, escaped on the wire and read back intact
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets", topic=topic),
                         {(quoted, topic): 3})
        # non-ASCII, 300 bytes, only spaces: counted at every poll, never exported
        after = harness.metric(m, "brokerside_lag_groups_skipped_total", reason="unlabelable")
        self.assertGreaterEqual(after - before, 3)
        self.assertEqual((after - before) % 3, 0, "three such groups per poll")

    def test_group_cap_is_counted(self):
        topic = "lag-cap"
        self.topic(topic, 1)
        bs = self.sidecar(max_groups=1)
        self.produce(topic, {0: 3})
        self.consume_commit("cap-a", topic, {0: 1})
        self.consume_commit("cap-b", topic, {0: 1})
        m = self.next_poll(bs)
        self.assertEqual(harness.metric(m, "brokerside_lag_monitor_groups"), 1)
        self.assertGreaterEqual(harness.metric(m, "brokerside_lag_groups_skipped_total",
                                               reason="cap"), 1)
        reported = lag_series(m, "brokerside_consumer_lag_sum_offsets")
        self.assertEqual(len(reported), 1, "only the first group by name: %r" % reported)

    def test_levels_decide_label_sets_prometheus_and_emf(self):
        topic, group = "lag-levels", "g-levels"
        self.topic(topic, 2)
        emf_dir = os.path.join(self.tmp, "events")
        bs = self.sidecar(level="default", emf_dir=emf_dir)
        # per-topic traffic through the sidecar so brokerside_topic_* series exist
        port = int(bs.config["listeners"][0]["bind"].rsplit(":", 1)[1])
        harness.kcat_produce("127.0.0.1:%d" % port, topic, ["through-%d" % i for i in range(6)])
        self.consume_commit(group, topic, {0: 0, 1: 0})
        m = self.next_poll(bs)
        names = harness.metric_names(m)
        self.assertIn("brokerside_consumer_lag_sum_offsets", names)
        self.assertNotIn("brokerside_consumer_lag_offsets", names)
        self.assertNotIn("brokerside_consumer_lag_estimated_time_seconds", names)
        self.assertFalse([n for n in names if n.startswith("brokerside_topic_")], names)
        self.assertIn("brokerside_kafka_requests_total", names)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets", group=group),
                         {(group, topic): 6})

        # EMF: MSK's names and dimensions; per-partition documents only at the finest level
        def docs():
            out = []
            for f in sorted(os.listdir(emf_dir)) if os.path.isdir(emf_dir) else []:
                if f.startswith("metrics"):
                    out += harness.read_ndjson(os.path.join(emf_dir, f))
            return out
        harness.wait_for(lambda: any("SumOffsetLag" in d and d.get("Consumer Group") == group
                                     for d in docs()), "SumOffsetLag documents at level default")

        # SIGHUP to the finest level: per-partition lag and per-topic series appear
        bs.config["metrics"]["level"] = "per_topic_per_partition"
        bs.write_config(bs.config)
        bs.signal(signal.SIGHUP)
        harness.wait_for(lambda: "brokerside_consumer_lag_offsets" in harness.metric_names(bs.metrics()),
                         "per-partition lag after the reload")
        m = bs.metrics()
        names = harness.metric_names(m)
        self.assertIn("brokerside_topic_bytes_in_total", names)
        self.assertEqual(sum(lag_series(m, "brokerside_consumer_lag_offsets", group=group).values()), 6)

        harness.wait_for(lambda: any("OffsetLag" in d and d.get("Consumer Group") == group
                                     for d in docs()), "OffsetLag documents")
        ds = docs()
        agg = [d for d in ds if "SumOffsetLag" in d and d.get("Consumer Group") == group]
        part = [d for d in ds if "OffsetLag" in d and d.get("Consumer Group") == group]
        self.assertTrue(agg)
        first_part_ts = min(d["_aws"]["Timestamp"] for d in part)
        # before the reload (level default) there was no per-partition document
        self.assertTrue(any(d["_aws"]["Timestamp"] < first_part_ts for d in agg),
                        "aggregate documents from before the reload")
        for d in agg:
            dims = d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
            self.assertEqual(dims, ["Consumer Group", "Topic"])
            self.assertEqual(d["SumOffsetLag"], 6)
            self.assertEqual(d["Topic"], topic)
            units = {x["Name"]: x["Unit"] for x in d["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
            self.assertEqual(units, {"SumOffsetLag": "Count", "MaxOffsetLag": "Count",
                                     "EstimatedMaxTimeLag": "Seconds"})
        for d in part:
            self.assertEqual(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0],
                             ["Consumer Group", "Topic", "Partition"])
            self.assertIn(d["Partition"], ("0", "1"))
            self.assertIn("EstimatedTimeLag", d)
        # per-topic registry series never went to EMF at level default
        early = [d for d in ds if d["_aws"]["Timestamp"] < first_part_ts - 1500]
        self.assertFalse([d for d in early if "topic" in d], "per-topic EMF at level default")

    def test_broker_restart_no_bogus_lag(self):
        topic, group = "lag-restart", "g-restart"
        self.topic(topic, 2)
        bs = self.sidecar()
        self.produce(topic, {0: 6, 1: 6})
        self.consume_commit(group, topic, {0: 2, 1: 5})
        m = self.next_poll(bs)
        want = {(group, topic, 0): 4, (group, topic, 1): 1}
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_offsets", group=group), want)
        seen = []
        errors_before = harness.metric(m, "brokerside_lag_monitor_polls_total", result="error") or 0
        self.kafka.stop_node(1)
        self.addCleanup(self.kafka.start_node, 1)
        # while the broker is down: polls fail; whatever is exported is the last good result
        harness.wait_for(lambda: (harness.metric(bs.metrics(), "brokerside_lag_monitor_polls_total",
                                                 result="error") or 0) > errors_before,
                         "a failed poll while the broker is down")
        seen.append(lag_series(bs.metrics(), "brokerside_consumer_lag_offsets", group=group))
        self.kafka.start_node(1)
        ok_after = self.polls(bs)
        for _ in range(4):
            m = self.next_poll(bs, after=ok_after)
            ok_after = self.polls(bs)
            seen.append(lag_series(m, "brokerside_consumer_lag_offsets", group=group))
        for s in seen:
            self.assertIn(s, ({}, want), "bogus lag around the restart: %r" % (s,))
        self.assertEqual(seen[-1], want)

    def test_bootstrap_through_another_broker_listener(self):
        """lag.bootstrap: the monitor reaches the cluster through the broker's inter-broker
        listener (advertising reachable addresses) while clients use the upstream."""
        topic, group = "lag-bootstrap", "g-bootstrap"
        self.topic(topic, 1)
        bs = self.sidecar(bootstrap=self.kafka.nodes[0].internal)
        self.produce(topic, {0: 5})
        self.consume_commit(group, topic, {0: 1})
        m = self.next_poll(bs)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_offsets", group=group),
                         {(group, topic, 0): 4})
        self.assertIn("through %s" % self.kafka.nodes[0].internal, bs.log_text())

    def test_sasl_towards_the_cluster(self):
        """lag.sasl_*: the monitor logs in with its own user (PLAIN) on the broker's SASL
        listener; a wrong password fails every poll and exports no lag. (PLAIN: librdkafka
        2.0.2's SCRAM-SHA-512 login is refused by this cluster, kcat's as well.)"""
        topic, group = "lag-sasl", "g-sasl"
        self.topic(topic, 1)
        self.produce(topic, {0: 4})
        self.consume_commit(group, topic, {0: 1})
        node = self.kafka.nodes[0]

        def pw_file(name, text):
            path = os.path.join(self.tmp, name)
            with open(path, "w") as f:
                f.write(text + "\n")
            os.chmod(path, 0o600)
            return path
        ok = self.sidecar(bootstrap=node.sasl, sasl_mechanism="PLAIN",
                          sasl_username="admin", sasl_password_file=pw_file("pw", "admin-secret"))
        m = self.next_poll(ok)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_offsets", group=group),
                         {(group, topic, 0): 3})
        self.assertNotIn("admin-secret", ok.log_text())

        bad = self.sidecar(name="bad-password", bootstrap=node.sasl, sasl_mechanism="PLAIN",
                           sasl_username="admin", sasl_password_file=pw_file("bad", "wrong"))
        harness.wait_for(lambda: harness.metric(bad.metrics(), "brokerside_lag_monitor_polls_total",
                                                result="error") >= 1, "a failed poll (bad password)")
        m = bad.metrics()
        self.assertEqual(harness.metric(m, "brokerside_lag_monitor_polls_total", result="ok"), 0)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets"), {})
        self.assertIn("SASL authentication error", bad.log_text())

    def test_bad_lag_config_is_refused(self):
        node = self.kafka.nodes[0]
        listener = {"name": "clients", "bind": "127.0.0.1:%d" % harness.free_port(),
                    "upstream": node.client, "protocol": "tcp"}
        cases = [({"listener": "nope"}, 'lag.listener: "nope" names no listener'),
                 ({"listener": "clients"}, 'lag.listener: "clients" is not a kafka listener'),
                 ({}, "lag: needs a kafka listener"),
                 ({"bootstrap": "host-without-port"}, "lag.bootstrap"),
                 ({"interval_s": 0}, "lag.interval_s"),
                 ({"max_groups": 0}, "lag.max_groups"),
                 ({"sasl_mechanism": "PLAIN"}, "lag.sasl_mechanism: needs sasl_username and sasl_password_file"),
                 ({"sasl_username": "u"}, "lag.sasl_username: needs sasl_mechanism"),
                 ({"sasl_mechanism": "GSSAPI"}, "lag.sasl_mechanism")]
        for lag, want in cases:
            cfg = harness.base_config(harness.free_port(), [listener], lag=lag)
            path = os.path.join(self.tmp, "bad.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            r = harness.run([harness.BROKERSIDE, "--check-config", path])
            out = (r.stdout + r.stderr).decode(errors="replace")
            self.assertNotEqual(r.returncode, 0, out)
            self.assertIn(want, out)

    def test_tls_origination_to_the_upstream(self):
        """The monitor honours the listener's upstream_tls: a broker whose client listener is
        reached only through TLS (a brokerside `tcp` TLS terminator on the advertised port) is
        monitored with the right CA, and refused with a wrong one (polls fail, no lag)."""
        kafka = harness.module_kafka(nodes=1, sidecar=True)
        node = kafka.nodes[0]
        tls_port = kafka.sidecar_ports[1]
        term = harness.tls_listener(self.certs, "127.0.0.1:%d" % tls_port, node.client,
                                    protocol="tcp", name="tls")
        terminator = self.start_brokerside(harness.base_config(harness.free_port(), [term]),
                                           name="terminator")
        topic, group = "lag-tls", "g-tls"
        kafka.reset_topics(["%s:1" % topic])
        # clients of this test use the plaintext inter-broker listener
        self.produce(topic, {0: 5}, bootstrap=node.internal)
        self.consume_commit(group, topic, {0: 2}, bootstrap=node.internal)

        def monitor(name, ca):
            listener = {"name": "clients", "bind": "127.0.0.1:%d" % harness.free_port(),
                        "upstream": "127.0.0.1:%d" % tls_port, "protocol": "kafka",
                        "upstream_tls": {"ca": ca}}
            cfg = harness.base_config(harness.free_port(), [listener])
            cfg["lag"] = {"interval_s": INTERVAL, "timeout_s": 3}
            cfg["metrics"] = {"level": "per_topic_per_partition", "interval_s": 60, "sinks": ["f"]}
            cfg["sinks"] = {"f": {"type": "file", "dir": os.path.join(self.tmp, name, "ev")}}
            cfg["spool"] = {"dir": os.path.join(self.tmp, name, "spool")}
            os.makedirs(os.path.join(self.tmp, name), exist_ok=True)
            return self.start_brokerside(cfg, name=name)

        good = monitor("good-ca", self.certs["ca_crt"])
        m = self.next_poll(good)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_offsets", group=group),
                         {(group, topic, 0): 3})
        self.assertGreater(harness.metric(terminator.metrics(), "brokerside_tls_handshakes_total"), 0)

        bad = monitor("wrong-ca", self.certs["other_ca_crt"])
        harness.wait_for(lambda: harness.metric(bad.metrics(), "brokerside_lag_monitor_polls_total",
                                                result="error") >= 1, "a failed poll with the wrong CA")
        m = bad.metrics()
        self.assertEqual(harness.metric(m, "brokerside_lag_monitor_polls_total", result="ok"), 0)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_offsets"), {})
        self.assertGreater(harness.metric(terminator.metrics(), "brokerside_tls_handshake_failures_total"), 0)

    def test_interval_applies_on_sighup(self):
        bs = self.sidecar(interval_s=3600)
        harness.wait_for(lambda: self.polls(bs) >= 1, "the first poll (at start)")
        before = self.polls(bs)
        bs.config["lag"]["interval_s"] = 1
        bs.write_config(bs.config)
        bs.signal(signal.SIGHUP)
        # without the new interval the next poll would come in an hour
        harness.wait_for(lambda: self.polls(bs) >= before + 3, "polls every second after SIGHUP")
        self.assertNotIn("requires restart", bs.log_text())

    def test_kip848_consumer_group(self):
        why = java_client.available()
        if why:
            self.skipTest(why)
        topic, group = "lag-kip848", "g-kip848"
        self.topic(topic, 2)
        bs = self.sidecar()
        props = java_client.write_props(os.path.join(self.tmp, "client.properties"),
                                        self.kafka.bootstrap)
        res = java_client.run_scenario(self, "group", props, topic=topic, group=group,
                                       protocol="consumer", count=40, partitions=2, members=1)
        java_client.assert_ok(self, res, "KIP-848 group")
        m = self.next_poll(bs)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_sum_offsets", group=group),
                         {(group, topic): 0})
        self.produce(topic, {0: 3, 1: 4})
        m = self.next_poll(bs)
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_offsets", group=group),
                         {(group, topic, 0): 3, (group, topic, 1): 4})
        self.assertEqual(lag_series(m, "brokerside_consumer_lag_max_offsets", group=group),
                         {(group, topic): 4})


if __name__ == "__main__":
    harness.main()
