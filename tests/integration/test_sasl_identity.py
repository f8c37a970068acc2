"""SASL identities and the authorization policy against a real Apache Kafka cluster
(harness.module_kafka: KRaft, SASL_PLAINTEXT listener, SCRAM-SHA-512 and PLAIN users alice,
bob and admin created at format time). brokerside fronts the SASL listener without
terminating SASL (docs/authorization.md):

- kcat with SCRAM as alice and bob: allowed produce/consume/group work, denied ones fail with
  Kafka's authorization errors; the principal appears in the audit trail and the
  per-principal metrics; a failed login is audited with the attempted name; no password is
  in any log line, audit file, spool file or metric.
- a raw SCRAM client (tests/integration/kafka_raw.py): a Produce naming an allowed and a
  denied topic delivers exactly the allowed partitions (the broker's segment files are read
  directly); SIGHUP revokes on the open connection; KIP-368 re-authentication as the same
  principal works and as another one closes the connection.
- hostile input: SaslAuthenticate without SaslHandshake, malformed SASL bytes, requests after
  a failed authentication; an unsigned (`alg: none`) OAUTHBEARER token the broker accepts but
  the sidecar does not trust.
- the Java client (tests/java) with SCRAM: allowed produce/group/admin scenarios work, denied
  ones fail with TopicAuthorizationException, GroupAuthorizationException and
  ClusterAuthorizationException.
"""

import json
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import kafka_raw  # noqa: E402

TOPIC_AUTH = 29
PASSWORDS = ("alice-secret", "bob-secret", "admin-secret", "wrong-password-xyz")


def policy(alice_write=True):
    rules = [
        {"principal": "User:alice", "operations": ["Read", "Describe"], "resource_type": "Topic",
         "resource_name": "alice-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": "User:alice", "operation": "Read", "resource_type": "Group",
         "resource_name": "alice-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": "User:bob", "operation": "Read", "resource_type": "Topic",
         "resource_name": "alice-orders", "permission": "ALLOW"},
        {"principal": "User:bob", "operation": "Read", "resource_type": "Group",
         "resource_name": "bob-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": "User:*", "operation": "Describe", "resource_type": "Topic",
         "resource_name": "secret", "permission": "ALLOW"},
    ]
    if alice_write:
        rules.append({"principal": "User:alice", "operation": "Write", "resource_type": "Topic",
                      "resource_name": "alice-", "pattern_type": "PREFIXED",
                      "permission": "ALLOW"})
    return {"default": "deny", "super_users": ["User:admin"], "rules": rules}


class SaslIdentityTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = harness.module_kafka(nodes=1, broker_config={
            "connections.max.reauth.ms": 600000})

    def setUp(self):
        super().setUp()
        self.kafka.reset_topics(["alice-orders:2", "secret:2"])
        self.port = harness.free_port()
        self.audit_dir = os.path.join(self.tmp, "audit")
        self.spool_dir = os.path.join(self.tmp, "spool")
        node = self.kafka.node(1)
        lst = {"name": "sasl", "bind": "127.0.0.1:%d" % self.port, "upstream": node.sasl,
               "protocol": "kafka"}
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            authorization=policy(),
            audit={"data_events": "each", "sinks": ["files"]},
            sinks={"files": {"type": "file", "dir": self.audit_dir}},
            spool={"dir": self.spool_dir})
        self.bs = self.start_brokerside(cfg)
        self.addr = "127.0.0.1:%d" % self.port

    # ---- helpers

    def kcat(self, user, password, args, input=None, timeout=90):
        # PLAIN: librdkafka 2.0.2 (Debian 12) cannot do SCRAM against Kafka 4.x (see
        # test_kafka_cluster.py); SCRAM is exercised with kafka-python and the raw client.
        return harness.run(["kcat", "-b", self.addr, "-X", "security.protocol=SASL_PLAINTEXT",
                            "-X", "sasl.mechanisms=PLAIN", "-X", "sasl.username=" + user,
                            "-X", "sasl.password=" + password] + list(args),
                           timeout=timeout, input=input)

    def raw(self, user=None, password="", mechanism="SCRAM-SHA-512"):
        c = kafka_raw.Conn(self.port)
        self.addCleanup(c.close)
        if user:
            err = c.scram(user, password, mechanism) if mechanism.startswith("SCRAM") else c.plain(user, password)
            self.assertEqual(err, 0, "login as %s failed (%d)" % (user, err))
        return c

    def audit(self):
        out = []
        for root, _, files in os.walk(self.audit_dir):
            for f in files:
                if f.endswith(".gz"):
                    continue
                with open(os.path.join(root, f), "rb") as fh:
                    for line in fh.read().decode(errors="replace").splitlines():
                        try:
                            e = json.loads(line)
                        except ValueError:
                            continue
                        if isinstance(e, dict):
                            out.append(e)
        return out

    def segments(self, topic):
        return self.kafka.read_segments(topic)

    # ---- tests

    def test_kcat_alice_and_bob(self):
        r = self.kcat("alice", "alice-secret", ["-P", "-t", "alice-orders", "-X",
                                                "message.timeout.ms=20000"],
                      input=b"order-1\norder-2\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn(b"ERROR", r.stderr)
        # bob may read alice-orders with a bob- group, not write it
        r = self.kcat("bob", "bob-secret", ["-P", "-t", "alice-orders", "-X",
                                            "message.timeout.ms=15000"], input=b"intrusion\n")
        self.assertIn(b"authorization", r.stderr.lower())
        r = self.kcat("bob", "bob-secret", ["-G", "bob-readers", "alice-orders", "-c", "2", "-e",
                                            "-q", "-o", "beginning",
                                            "-X", "auto.offset.reset=earliest"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(r.stdout.split()), [b"order-1", b"order-2"])
        r = self.kcat("bob", "bob-secret", ["-G", "alice-group", "alice-orders", "-c", "1", "-e",
                                            "-q"])
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"authoriz", r.stderr.lower())
        self.assertNotIn(b"intrusion", self.segments("alice-orders"))
        # a failed login: audited with the attempted name
        r = self.kcat("bob", "wrong-password-xyz", ["-L"], timeout=30)
        self.assertNotEqual(r.returncode, 0)
        harness.wait_until(lambda: any(
            e.get("eventName") == "SaslAuthenticate" and
            e.get("authentication", {}).get("result") == "failure" and
            e["authentication"].get("attemptedPrincipal") == "User:bob" for e in self.audit()),
            what="the failed SaslAuthenticate audit event")
        # alice with SCRAM-SHA-512 through kafka-python
        from kafka import KafkaProducer
        prod = KafkaProducer(bootstrap_servers=self.addr, security_protocol="SASL_PLAINTEXT",
                             sasl_mechanism="SCRAM-SHA-512", sasl_plain_username="alice",
                             sasl_plain_password="alice-secret", request_timeout_ms=20000,
                             api_version_auto_timeout_ms=20000)
        try:
            prod.send("alice-orders", b"order-scram").get(timeout=30)
        finally:
            prod.close(timeout=10)
        self.assertIn(b"order-scram", self.segments("alice-orders"))
        # principals in the audit trail and the metrics
        for mech in ("PLAIN", "SCRAM-SHA-512"):
            harness.wait_until(lambda: any(
                e.get("eventName") == "Produce" and e.get("eventType") == "KafkaApiCall" and
                e["userIdentity"] == {"type": "SASL", "principal": "User:alice",
                                      "mechanism": mech} for e in self.audit()),
                what="alice's %s Produce in the audit trail" % mech)
        denied = [e for e in self.audit() if e.get("eventType") == "KafkaAuthorization" and
                  e.get("decision") == "DENY" and e["userIdentity"].get("principal") == "User:bob"]
        self.assertTrue(denied, "no denial of bob audited")
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_principal_requests_total",
                                               principal="User:alice", api="Produce"), 1)
        self.assertGreaterEqual(harness.metric(m, "brokerside_authz_denied_total",
                                               principal="User:bob", operation="Write",
                                               resource_type="Topic"), 1)
        self.assertGreaterEqual(harness.metric(m, "brokerside_sasl_authentications_total",
                                               listener="sasl", result="failed"), 1)
        # no password anywhere: log, audit files, spool, metrics
        code, metrics_text = self.bs.get("/metrics")
        blobs = [self.bs.log_text().encode(), metrics_text.encode()]
        for d in (self.audit_dir, self.spool_dir):
            for root, _, files in os.walk(d):
                for f in files:
                    with open(os.path.join(root, f), "rb") as fh:
                        blobs.append(fh.read())
        for pw in PASSWORDS:
            for b in blobs:
                self.assertNotIn(pw.encode(), b)

    def test_mixed_produce_delivers_exactly_the_allowed_partitions(self):
        c = self.raw("alice", "alice-secret")
        res = c.produce({"alice-orders": {0: [b"ok-0"], 1: [b"ok-1"]},
                         "secret": {0: [b"leak-0"], 1: [b"leak-1"]}})
        self.assertEqual(res, {("alice-orders", 0): 0, ("alice-orders", 1): 0,
                               ("secret", 0): TOPIC_AUTH, ("secret", 1): TOPIC_AUTH})
        data = self.segments("alice-orders")
        self.assertIn(b"ok-0", data)
        self.assertIn(b"ok-1", data)
        self.assertNotIn(b"leak", self.segments("secret"))
        # the same connection goes on; Metadata asked by name for an undescribable topic
        self.assertEqual(c.metadata(["alice-orders"]), {"alice-orders": 0})
        md = c.metadata(None)
        self.assertIn("alice-orders", md)
        self.assertIn("secret", md)  # Describe is allowed to everyone
        # admin is a super user
        a = self.raw("admin", "admin-secret", mechanism="PLAIN")
        self.assertEqual(a.produce({"secret": {0: [b"by-admin"]}}), {("secret", 0): 0})
        self.assertIn(b"by-admin", self.segments("secret"))

    def test_reload_revokes_and_reauthentication(self):
        c = self.raw("alice", "alice-secret")
        self.assertEqual(c.produce({"alice-orders": {0: [b"before"]}}), {("alice-orders", 0): 0})
        # KIP-368: re-authenticating as alice on the same connection works
        self.assertEqual(c.scram("alice", "alice-secret"), 0)
        self.assertEqual(c.produce({"alice-orders": {0: [b"after-reauth"]}}),
                         {("alice-orders", 0): 0})
        cfg = dict(self.bs.config)
        cfg["authorization"] = policy(alice_write=False)
        self.bs.write_config(cfg)
        mark = self.bs.log_mark()
        self.bs.signal(signal.SIGHUP)
        self.bs.wait_log(r"reload: authorization policy applied", since=mark)
        self.assertEqual(c.produce({"alice-orders": {0: [b"revoked"]}}),
                         {("alice-orders", 0): TOPIC_AUTH})
        self.assertNotIn(b"revoked", self.segments("alice-orders"))
        # re-authenticating as someone else closes the connection (a fresh connection: the
        # broker allows one re-authentication per session lifetime)
        c = self.raw("alice", "alice-secret")
        self.assertEqual(c.sasl_handshake("SCRAM-SHA-512"), 0)
        with self.assertRaises((ConnectionError, OSError)):
            c.sasl_authenticate(b"n,,n=bob,r=abcdefgh")
        self.bs.wait_log(r"re-authentication names another principal")

    def test_hostile_sasl(self):
        # SaslAuthenticate without SaslHandshake
        c = self.raw()
        with self.assertRaises((ConnectionError, OSError)):
            c.sasl_authenticate(b"\0alice\0alice-secret")
        self.bs.wait_log(r"SaslAuthenticate without a successful SaslHandshake")
        # malformed SCRAM client-first bytes
        c = self.raw()
        self.assertEqual(c.sasl_handshake("SCRAM-SHA-512"), 0)
        with self.assertRaises((ConnectionError, OSError)):
            c.sasl_authenticate(b"\xff\xfe garbage")
        self.bs.wait_log(r"malformed SASL client message")
        # bytes after a failed authentication never reach the broker
        c = self.raw()
        self.assertNotEqual(c.scram("alice", "wrong-password-xyz"), 0)
        try:
            c.produce({"alice-orders": {0: [b"after-failure"]}})
        except (ConnectionError, OSError):
            pass
        self.assertTrue(c.closed())
        self.assertNotIn(b"after-failure", self.segments("alice-orders"))
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_sasl_authentications_total",
                                               listener="sasl", result="failed"), 1)
        self.assertNotIn(b"wrong-password-xyz", self.bs.log_text().encode())



def java_policy():
    return {"default": "deny", "rules": [
        {"principal": "User:alice", "operation": "All", "resource_type": "Topic",
         "resource_name": "alice-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": "User:alice", "operation": "All", "resource_type": "Group",
         "resource_name": "alice-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": "User:alice", "operation": "Describe", "resource_type": "Cluster",
         "permission": "ALLOW"},
        {"principal": "User:bob", "operation": "All", "resource_type": "Topic",
         "resource_name": "bob-", "pattern_type": "PREFIXED", "permission": "ALLOW"},
        {"principal": "User:bob", "operations": ["Read", "Describe"], "resource_type": "Topic",
         "resource_name": "alice-java-produce", "permission": "ALLOW"},
    ]}


class JavaClientPolicyTest(harness.IntegrationTest):
    """The Java client (tests/java) with SCRAM-SHA-512 through the enforcing sidecar: allowed
    produce (idempotent), consumer group and admin operations work; denied ones fail with the
    client's own authorization exceptions."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        import java_client
        cls.java = java_client
        why = java_client.available()
        if why:
            raise AssertionError(why)
        cls.kafka = harness.module_kafka(nodes=1, broker_config={
            "connections.max.reauth.ms": 600000})

    def setUp(self):
        super().setUp()
        self.kafka.delete_topics(["alice-java-produce", "alice-java-group", "alice-java-admin",
                                  "bob-java-group"])
        self.port = harness.free_port()
        lst = {"name": "sasl", "bind": "127.0.0.1:%d" % self.port,
               "upstream": self.kafka.node(1).sasl, "protocol": "kafka"}
        self.bs = self.start_brokerside(harness.base_config(
            harness.free_port(), [lst], kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            authorization=java_policy()))

    def props(self, user):
        return self.java.write_props(os.path.join(self.tmp, user + ".properties"),
                                     "127.0.0.1:%d" % self.port,
                                     sasl=("SCRAM-SHA-512", user, user + "-secret"))

    def test_alice_allowed(self):
        res = self.java.run_scenario(self, "produce", self.props("alice"),
                                     topic="alice-java-produce", count=50)
        self.java.assert_ok(self, res, "alice produce")
        res = self.java.run_scenario(self, "group", self.props("alice"), topic="alice-java-group",
                                     group="alice-g", partitions=2, members=2, count=40)
        self.java.assert_ok(self, res, "alice group")
        res = self.java.run_scenario(self, "admin", self.props("alice"), topic="alice-java-admin")
        self.java.assert_ok(self, res, "alice admin")
        self.assertEqual(res["nodes"], ["127.0.0.1:%d" % self.port])
        m = self.bs.metrics()
        self.assertGreater(harness.metric(m, "brokerside_principal_requests_total",
                                          principal="User:alice", api="Produce"), 0)

    def test_bob_denied(self):
        # bob writing alice's topic: TopicAuthorizationException (the scenario's CreateTopics
        # or its producer, whichever comes first)
        self.java.run_scenario(self, "produce", self.props("alice"), topic="alice-java-produce",
                               count=5)
        res = self.java.run_scenario(self, "produce", self.props("bob"),
                                     topic="alice-java-produce", count=5)
        self.assertFalse(res["ok"])
        self.assertIn("TopicAuthorizationException", json.dumps(res.get("errors")) + res["_stderr"])
        # bob joining alice's group on his own topic: GroupAuthorizationException
        res = self.java.run_scenario(self, "group", self.props("bob"), topic="bob-java-group",
                                     group="alice-g", partitions=1, members=1, count=5)
        self.assertFalse(res["ok"])
        self.assertIn("GroupAuthorizationException", res["_stderr"])
        # bob's admin calls on the cluster: ClusterAuthorizationException
        res = self.java.run_scenario(self, "admin", self.props("bob"), topic="bob-java-admin")
        self.assertFalse(res["ok"])
        self.assertIn("ClusterAuthorizationException", json.dumps(res.get("errors")) + res["_stderr"])
        m = self.bs.metrics()
        def denied(op, rt):
            return harness.metric(m, "brokerside_authz_denied_total", principal="User:bob",
                                  operation=op, resource_type=rt)
        self.assertGreater(denied("Create", "Topic") + denied("Write", "Topic"), 0)
        # FindCoordinator (Describe) or the group heartbeat (Read), whichever the client sent
        self.assertGreater(denied("Describe", "Group") + denied("Read", "Group"), 0)
        self.assertGreater(denied("Describe", "Cluster"), 0)



class OAuthBearerTest(harness.IntegrationTest):
    """OAUTHBEARER against a real broker that accepts unsecured tokens (Kafka's default
    validator): the broker lets an `alg: none` token in, the sidecar does not trust it for
    identity (no JWKS signature), so the policy sees User:ANONYMOUS and refuses the request."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.kafka = harness.module_kafka(nodes=1, broker_config={
            "listener.name.sasl.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN,OAUTHBEARER",
            "listener.name.sasl.oauthbearer.sasl.jaas.config":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"})

    def test_unsigned_token_is_not_trusted(self):
        import base64
        import time

        def b64(d):
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b"=")
        now = int(time.time())
        token = b".".join([b64({"alg": "none"}), b64({"sub": "alice", "iat": now,
                                                       "exp": now + 600}), b""])
        jwks = os.path.join(self.tmp, "jwks.json")
        with open(jwks, "w") as f:  # a real key the token is not signed with
            f.write(json.dumps({"keys": [{"kty": "EC", "crv": "P-256",
                                          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))
        self.kafka.reset_topics(["alice-orders:1"])
        port = harness.free_port()
        lst = {"name": "sasl", "bind": "127.0.0.1:%d" % port, "upstream": self.kafka.node(1).sasl,
               "protocol": "kafka"}
        audit_dir = os.path.join(self.tmp, "audit")
        bs = self.start_brokerside(harness.base_config(
            harness.free_port(), [lst], kafka={"advertise": {"1": "127.0.0.1:%d" % port}},
            identity={"oauthbearer": {"jwks_file": jwks, "issuer": "https://idp.example"}},
            authorization=policy(),
            audit={"data_events": "each", "sinks": ["files"]},
            sinks={"files": {"type": "file", "dir": audit_dir}},
            spool={"dir": os.path.join(self.tmp, "spool")}))
        c = kafka_raw.Conn(port)
        self.addCleanup(c.close)
        self.assertEqual(c.sasl_handshake("OAUTHBEARER"), 0)
        err, _ = c.sasl_authenticate(b"n,,\x01auth=Bearer " + token + b"\x01\x01")
        self.assertEqual(err, 0, "the broker itself accepts unsecured tokens")
        # the broker authenticated "alice", the sidecar does not believe it: refused
        self.assertEqual(c.produce({"alice-orders": {0: [b"unsigned"]}}),
                         {("alice-orders", 0): TOPIC_AUTH})
        self.assertNotIn(b"unsigned", self.kafka.read_segments("alice-orders"))
        bs.wait_log(r"authenticated as \(unknown\) \(OAUTHBEARER, not verified")

        def audited():
            for root, _, files in os.walk(audit_dir):
                for f in files:
                    with open(os.path.join(root, f), "rb") as fh:
                        data = fh.read()
                    if b"unsigned token (alg none)" in data:
                        self.assertNotIn(token, data)  # the token itself never is
                        return True
            return False
        harness.wait_until(audited, what="the SaslAuthenticate event with the token's verdict")
        m = bs.metrics()
        self.assertGreater(harness.metric(m, "brokerside_authz_denied_total",
                                          principal="User:ANONYMOUS", operation="Write",
                                          resource_type="Topic"), 0)


if __name__ == "__main__":
    harness.main()
