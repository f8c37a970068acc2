"""The authorization policy enforced by the sidecar (docs/authorization.md),
with the certificate principal (mapped by identity.principal_mapping_rules)
against the dev broker: Produce split per topic with the broker read
directly, Fetch and Metadata filtering, whole-request denials, audit facts,
metrics, SIGHUP revocation on an open connection, --check-config and
`brokerside policy explain`.
"""

import json
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import kafka_raw  # noqa: E402

TOPIC_AUTH = 29
GROUP_AUTH = 30

PRINCIPAL = "User:dev-client"


def rules(write_allowed=True):
    r = [
        {"principal": PRINCIPAL, "operations": ["Read"], "resource_type": "Topic",
         "resource_name": "allowed", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": PRINCIPAL, "operation": "Describe", "resource_type": "Topic",
         "resource_name": "denied", "permission": "ALLOW"},
        {"principal": "User:*", "operation": "Write", "resource_type": "Topic",
         "resource_name": "denied", "permission": "DENY"},
        {"principal": PRINCIPAL, "operation": "Read", "resource_type": "Group",
         "resource_name": "good-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
    ]
    if write_allowed:
        r.append({"principal": PRINCIPAL, "operation": "Write", "resource_type": "Topic",
                  "resource_name": "allowed", "pattern_type": "PREFIXED", "permission": "ALLOW"})
    return {"default": "deny", "rules": r}


class AuthorizationTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.audit_dir = os.path.join(self.tmp, "audit")
        self.extra = {
            "identity": {"principal_mapping_rules": ["RULE:^CN=([^,]*),.*$/$1/", "DEFAULT"]},
            "authorization": rules(),
            "audit": {"data_events": "each", "sinks": ["files"]},
            "sinks": {"files": {"type": "file", "dir": self.audit_dir}},
            "spool": {"dir": os.path.join(self.tmp, "spool")},
        }
        self.port = harness.free_port()
        self.db = self.start_devbroker(brokers=1, topics=("allowed-a:2", "denied:2", "hidden:1"),
                                       advertise={1: "127.0.0.1:%d" % self.port})
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.port, self.db.listen_addr(1),
                                   protocol="kafka", client_auth="required")
        self.extra["kafka"] = {"advertise": {"1": "127.0.0.1:%d" % self.port}}
        self.bs = self.start_brokerside(harness.base_config(harness.free_port(), [lst], **self.extra))
        self.broker_port = int(self.db.listen_addr(1).rsplit(":", 1)[1])

    def conn(self):
        c = kafka_raw.Conn(self.port, self.certs)
        self.addCleanup(c.close)
        return c

    def audit_events(self):
        out = []
        for root, _, files in os.walk(self.audit_dir):
            for f in files:
                path = os.path.join(root, f)
                if f.endswith(".gz"):
                    continue
                with open(path, "rb") as fh:
                    for line in fh.read().decode().splitlines():
                        try:
                            out.append(json.loads(line))
                        except ValueError:
                            pass
        return out

    def authz_events(self):
        return [e for e in self.audit_events()
                if isinstance(e, dict) and e.get("eventType") == "KafkaAuthorization"]

    def broker_values(self, topic, partition):
        """What the broker holds, read directly (not through the sidecar)."""
        direct = kafka_raw.Conn(self.broker_port)
        try:
            got = direct.fetch({topic: [partition]})
        finally:
            direct.close()
        return got[(topic, partition)]

    def test_mixed_produce_delivers_exactly_the_allowed_partitions(self):
        c = self.conn()
        res = c.produce({"allowed-a": {0: [b"a0-1", b"a0-2"], 1: [b"a1"]},
                         "denied": {0: [b"secret-0"], 1: [b"secret-1"]}})
        self.assertEqual(res[("allowed-a", 0)], 0)
        self.assertEqual(res[("allowed-a", 1)], 0)
        self.assertEqual(res[("denied", 0)], TOPIC_AUTH)
        self.assertEqual(res[("denied", 1)], TOPIC_AUTH)
        # the broker itself: allowed data arrived, nothing of the denied topic
        self.assertEqual(self.broker_values("allowed-a", 0)[0], 0)
        self.assertGreater(self.broker_values("allowed-a", 0)[1], 0)
        self.assertGreater(self.broker_values("allowed-a", 1)[1], 0)
        self.assertEqual(self.broker_values("denied", 0)[1], 0)
        self.assertEqual(self.broker_values("denied", 1)[1], 0)
        # the connection goes on: a second request on it still works
        self.assertEqual(c.produce({"allowed-a": {0: [b"again"]}})[("allowed-a", 0)], 0)
        # all denied: answered by the sidecar, nothing reaches the broker
        res = c.produce({"denied": {0: [b"x"]}})
        self.assertEqual(res, {("denied", 0): TOPIC_AUTH})
        self.assertEqual(self.broker_values("denied", 0)[1], 0)
        # acks=0 with everything denied: dropped, and the connection still answers
        self.assertIsNone(c.produce({"denied": {1: [b"y"]}}, acks=0))
        self.assertEqual(c.metadata(["allowed-a"], version=1), {"allowed-a": 0})
        self.assertEqual(self.broker_values("denied", 1)[1], 0)
        # audit: the mixed request's decisions in one event, with the deciding rule
        harness.wait_until(lambda: any(
            e["eventName"] == "Produce" and e["decision"] == "DENY" and
            {a["name"] for a in e["authorization"]} == {"allowed-a", "denied"}
            for e in self.authz_events()), what="the Produce authorization event")
        ev = [e for e in self.authz_events() if e["eventName"] == "Produce" and
              len(e["authorization"]) == 2][0]
        by_name = {a["name"]: a for a in ev["authorization"]}
        self.assertEqual(by_name["denied"]["decision"], "DENY")
        self.assertEqual(by_name["denied"]["rule"], "rules[2]")
        self.assertEqual(by_name["allowed-a"]["decision"], "ALLOW")
        self.assertEqual(by_name["allowed-a"]["rule"], "rules[4]")
        # the decisions are links of the hash chain like every other event
        self.bs.stop()
        files = sorted(os.path.join(self.audit_dir, f) for f in os.listdir(self.audit_dir)
                       if f.startswith("audit") and ".ndjson" in f)
        r = subprocess.run([harness.BROKERSIDE, "audit", "verify"] + files, capture_output=True)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return

    def test_denial_metrics(self):
        c = self.conn()
        c.produce({"allowed-a": {0: [b"a"]}, "denied": {0: [b"d"]}})
        c.produce({"denied": {1: [b"d"]}})
        c.produce({"denied": {1: [b"d"]}})
        # metrics: denials per principal, operation, resource type
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_authz_denied_total",
                                               principal=PRINCIPAL, operation="Write",
                                               resource_type="Topic"), 3)

    def test_fetch_split_and_metadata_filter(self):
        c = self.conn()
        c.produce({"allowed-a": {0: [b"v"]}})
        got = c.fetch({"allowed-a": [0], "denied": [0], "hidden": [0]})
        self.assertEqual(got[("allowed-a", 0)][0], 0)
        self.assertGreater(got[("allowed-a", 0)][1], 0)
        self.assertEqual(got[("denied", 0)], (TOPIC_AUTH, 0))
        self.assertEqual(got[("hidden", 0)], (TOPIC_AUTH, 0))
        # all topics: the ones without Describe are left out
        md = c.metadata(None, version=1)
        self.assertIn("allowed-a", md)
        self.assertIn("denied", md)
        self.assertNotIn("hidden", md)
        # asked by name: TOPIC_AUTHORIZATION_FAILED
        self.assertEqual(c.metadata(["hidden", "allowed-a"], version=1), {"hidden": TOPIC_AUTH, "allowed-a": 0})

    def test_kcat_denied_and_allowed(self):
        addr = "127.0.0.1:%d" % self.port
        harness.kcat_produce(addr, "allowed-a", ["k1", "k2"], self.certs)
        r = harness.kcat(addr, ["-P", "-t", "denied", "-X", "message.timeout.ms=10000"], self.certs,
                         input=b"nope\n")
        self.assertIn(b"authoriz", r.stderr.lower() + r.stdout.lower())
        self.assertEqual(self.broker_values("denied", 0)[1] + self.broker_values("denied", 1)[1], 0)
        r = harness.kcat(addr, ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b'"hidden"', r.stdout)
        self.assertNotIn(b"topic \"hidden\"", r.stdout)
        # a consumer group the principal may not use
        r = harness.kcat(addr, ["-G", "bad-group", "allowed-a", "-c", "1", "-e", "-q"], self.certs,
                         timeout=60)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"authoriz", r.stderr.lower())

    def test_reload_revokes_on_the_open_connection(self):
        c = self.conn()
        self.assertEqual(c.produce({"allowed-a": {0: [b"before"]}})[("allowed-a", 0)], 0)
        before = self.broker_values("allowed-a", 0)[1]
        cfg = dict(self.bs.config)
        cfg["authorization"] = rules(write_allowed=False)
        self.bs.write_config(cfg)
        mark = self.bs.log_mark()
        self.bs.signal(signal.SIGHUP)
        self.bs.wait_log(r"reload: authorization policy applied", since=mark)
        # same socket, next request: refused
        self.assertEqual(c.produce({"allowed-a": {0: [b"after"]}})[("allowed-a", 0)], TOPIC_AUTH)
        self.assertEqual(self.broker_values("allowed-a", 0)[1], before)

    def test_check_config_and_explain(self):
        bad = dict(self.bs.config)
        bad["authorization"] = {"default": "maybe", "rules": [{"principal": "alice",
                                                               "operation": "Wrte"}]}
        path = os.path.join(self.tmp, "bad.json")
        with open(path, "w") as f:
            json.dump(bad, f)
        r = subprocess.run([harness.BROKERSIDE, "--check-config", path], capture_output=True)
        self.assertEqual(r.returncode, 1)
        err = r.stderr.decode()
        for key in ("authorization.default", "authorization.rules[0].principal",
                    "authorization.rules[0].operation", "authorization.rules[0].resource_type"):
            self.assertIn(key, err)
        r = subprocess.run([harness.BROKERSIDE, "--check-config", self.bs.config_path],
                           capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = subprocess.run([harness.BROKERSIDE, "policy", "explain", "--config", self.bs.config_path,
                            PRINCIPAL, "Write", "Topic:denied"], capture_output=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"DENY by rules[2]", r.stdout)
        r = subprocess.run([harness.BROKERSIDE, "policy", "explain", "--config", self.bs.config_path,
                            PRINCIPAL, "Describe", "Topic:allowed-x"], capture_output=True)
        self.assertEqual(r.returncode, 0)
        self.assertIn(b"implies", r.stdout)
        r = subprocess.run([harness.BROKERSIDE, "policy", "explain", "--config", self.bs.config_path,
                            "User:bob", "Read", "Group:g"], capture_output=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn(b"default decision is deny", r.stdout)


if __name__ == "__main__":
    harness.main()
