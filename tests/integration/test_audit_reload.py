"""Issue 5: `audit.data_events` and `digest_every_events` change on SIGHUP.

A brokerside `kafka` listener in front of a real Apache Kafka broker, audit to a file sink
with HMAC-signed digests, kcat producing through it. The mode goes
aggregate -> each -> off by rewriting the file and sending SIGHUP:

- under aggregate, Produce requests are folded (aggregate interval of an
  hour, so only the reload can flush them): no per-request Produce event;
- the reload to each flushes the folded Produce requests as an aggregate
  event (nothing lost), then every Produce request is its own event;
- after the reload to off, no Produce event of any kind is written;
- the chain is unbroken across both reloads: `brokerside audit verify` passes
  on the whole file (and fails on a copy with one line removed).
"""
import copy
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class AuditReloadTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["orders"])
        self.port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.port, self.kc.node(1).client,
                                   protocol="kafka", name="b1")
        self.key = os.path.join(self.tmp, "audit.key")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        self.events_dir = os.path.join(self.tmp, "events")
        self.cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            audit={"data_events": "aggregate", "aggregate_interval_s": 3600,
                   "signing_key_file": self.key, "sinks": ["files"]},
            sinks={"files": {"type": "file", "dir": self.events_dir}},
            spool={"dir": os.path.join(self.tmp, "spool")})
        self.bs = self.start_brokerside(self.cfg)
        self.bootstrap = "127.0.0.1:%d" % self.port

    def events(self):
        path = os.path.join(self.events_dir, "audit.ndjson")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def produce(self, tag, n=5):
        """n messages, one Produce request each (no batching across messages)."""
        for i in range(n):
            harness.kcat(self.bootstrap, ["-P", "-t", "orders", "-X", "client.id=" + tag],
                         certs=self.certs, client_cert=False,
                         input=("%s-%d\n" % (tag, i)).encode())

    def produce_events(self, event_type, client):
        return [e for e in self.events() if e.get("eventName") == "Produce"
                and e.get("eventType") == event_type
                and (client is None or e.get("clientId") == client)]

    def reload(self, mode, reloads_before):
        cfg = copy.deepcopy(self.cfg)
        cfg["audit"]["data_events"] = mode
        self.bs.write_config(cfg)
        self.bs.proc.send_signal(1)
        want = "reload: audit.data_events %s" % mode
        harness.wait_until(lambda: harness.tail(self.bs.log_path, 200000).count(want) >
                           reloads_before, what="the reload to %s in the log" % mode)

    def test_data_events_mode_follows_sighup(self):
        self.produce("agg-phase")
        self.assertEqual(self.produce_events("KafkaApiCall", None), [])

        self.reload("each", 0)
        # The folded requests are flushed at the switch, not lost.
        harness.wait_until(lambda: self.produce_events("KafkaApiCallAggregate", None),
                           what="the aggregate Produce event flushed by the reload")
        agg = self.produce_events("KafkaApiCallAggregate", None)
        self.assertGreaterEqual(sum(e["aggregate"]["requests"] for e in agg), 5)
        self.produce("each-phase")
        harness.wait_until(
            lambda: len(self.produce_events("KafkaApiCall", "each-phase")) >= 5,
            what="one Produce event per request after the reload to each")
        each = self.produce_events("KafkaApiCall", "each-phase")
        self.assertEqual(len(each), 5)

        n_agg = len(self.produce_events("KafkaApiCallAggregate", None))
        self.reload("off", 0)
        closes = len([e for e in self.events() if e.get("eventName") == "ConnectionClosed"])
        self.produce("off-phase")
        # Connection events are recorded in every mode: once the off-phase
        # connections' closes are in the file, their Produce events would be too.
        harness.wait_until(lambda: len([e for e in self.events()
                                        if e.get("eventName") == "ConnectionClosed"]) >= closes + 5,
                           what="the off-phase connections' ConnectionClosed events")
        self.bs.proc.send_signal(15)
        self.assertEqual(self.bs.proc.wait(60), 0)
        evs = self.events()
        self.assertFalse([e for e in evs if e.get("eventName") == "Produce" and
                          e.get("clientId") == "off-phase"])
        # nothing folded under off either: no aggregate beyond the one the switch flushed
        self.assertEqual(len([e for e in evs if e.get("eventName") == "Produce" and
                              e.get("eventType") == "KafkaApiCallAggregate"]), n_agg)
        path = os.path.join(self.events_dir, "audit.ndjson")
        r = subprocess.run([harness.BROKERSIDE, "audit", "verify", "--key", self.key, path],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(path, encoding="utf-8") as f:
            lines = f.readlines()
        cut = os.path.join(self.tmp, "cut.ndjson")
        with open(cut, "w", encoding="utf-8") as f:
            f.writelines(lines[:len(lines) // 2] + lines[len(lines) // 2 + 1:])
        r = subprocess.run([harness.BROKERSIDE, "audit", "verify", "--key", self.key, cut],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)


if __name__ == "__main__":
    import unittest
    unittest.main()
