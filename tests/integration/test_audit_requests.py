"""Issue 5, per-request audit events end to end: real clients (kcat and
kafka-python) with mTLS through a brokerside `kafka` listener in front of a
real Apache Kafka broker, whose audit stream (data_events "each",
HMAC-signed digests) goes to a file sink; the events in audit.ndjson are
checked field by field, then `brokerside audit verify` passes on the file
and fails after tampering.

The management path is a raw CreateTopics v4 request over mTLS that the
broker answers: the event carries the decoded parameters (topic, config
keys, never config values) and the broker's per-topic error (it rejects
the bogus topic config). The consumer group APIs (FindCoordinator,
JoinGroup, SyncGroup, Heartbeat, OffsetCommit, OffsetFetch, LeaveGroup)
come from a kafka-python consumer group; the failed request is a Produce
the broker really refuses: a record larger than the topic's
max.message.bytes (MESSAGE_TOO_LARGE)."""

import json
import os
import socket
import ssl
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

PRINCIPAL_CN = "CN=dev-client"


def kstr(s):
    """A classic (non-flexible) Kafka string."""
    if s is None:
        return struct.pack(">h", -1)
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def create_topics_v4(corr, topic, configs):
    """CreateTopics v4 request frame (size prefix included)."""
    body = struct.pack(">i", 1) + kstr(topic) + struct.pack(">ihi", 1, 1, 0)
    body += struct.pack(">i", len(configs))
    for k, v in configs:
        body += kstr(k) + kstr(v)
    body += struct.pack(">ib", 5000, 0)
    payload = struct.pack(">hhi", 19, 4, corr) + kstr("raw-admin") + body
    return struct.pack(">i", len(payload)) + payload


class AuditRequestsTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["orders:2:1", "audit-new"])
        self.kc.delete_topics(["audit-new"])
        self.kc.reset_topics(["small"], config={"max.message.bytes": 200})
        self.port = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.port, self.kc.node(1).client,
                                   protocol="kafka", client_auth="required", name="b1")
        lst["broker_id"] = 1
        self.key = os.path.join(self.tmp, "audit.key")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        self.events_dir = os.path.join(self.tmp, "events")
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            audit={"data_events": "each", "signing_key_file": self.key, "sinks": ["files"]},
            sinks={"files": {"type": "file", "dir": self.events_dir}},
            spool={"dir": os.path.join(self.tmp, "spool")})
        self.bs = self.start_brokerside(cfg)
        self.bootstrap = "127.0.0.1:%d" % self.port

    # -------------------------------------------------------------- helpers

    def kafka_ssl(self):
        return dict(security_protocol="SSL", ssl_cafile=self.certs["ca_crt"],
                    ssl_certfile=self.certs["client_crt"], ssl_keyfile=self.certs["client_key"],
                    ssl_check_hostname=False)

    def audit_path(self):
        return os.path.join(self.events_dir, "audit.ndjson")

    def events(self):
        with open(self.audit_path(), encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def stop_and_read(self):
        """SIGTERM (final signed digest, sinks flushed), then the events."""
        self.bs.proc.send_signal(15)
        rc = self.bs.proc.wait(60)
        self.assertEqual(rc, 0, harness.tail(self.bs.log_path))
        return self.events()

    def verify(self, path):
        return subprocess.run([harness.BROKERSIDE, "audit", "verify", "--key", self.key, path],
                              capture_output=True, timeout=60)

    def raw_create_topics(self):
        """Send CreateTopics v4 over mTLS and wait for an answer or EOF."""
        ctx = ssl.create_default_context(cafile=self.certs["ca_crt"])
        ctx.check_hostname = False
        ctx.load_cert_chain(self.certs["client_crt"], self.certs["client_key"])
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as raw:
            with ctx.wrap_socket(raw) as s:
                s.sendall(create_topics_v4(7, "audit-new", [("retention.ms", "1000"),
                                                           ("sasl.jaas.config", "TOPSECRET-JAAS")]))
                try:
                    s.settimeout(5)
                    s.recv(4096)  # the broker's answer
                except (socket.timeout, OSError):
                    pass

    def assert_identity(self, ev):
        self.assertEqual(ev["eventType"], "KafkaApiCall")
        self.assertEqual(ev["userIdentity"]["type"], "mTLS")
        self.assertIn(PRINCIPAL_CN, ev["userIdentity"]["principal"])
        self.assertEqual(ev["sourceIPAddress"], "127.0.0.1")
        self.assertGreater(ev["sourcePort"], 0)
        self.assertEqual(ev["listener"], "b1")
        self.assertEqual(ev["brokerId"], 1)
        self.assertGreater(ev["connectionId"], 0)
        self.assertEqual(ev["requestID"], "%d-%d" % (ev["connectionId"], ev["correlationId"]))

    # -------------------------------------------------------------- tests

    def test_clients_management_groups_failures_and_verify(self):
        from kafka import KafkaConsumer

        msgs = ["audit-%d" % i for i in range(5)]
        r = harness.kcat(self.bootstrap, ["-P", "-t", "orders", "-X", "client.id=audit-producer",
                                          "-p", "0"], self.certs,
                         input="".join(m + "\n" for m in msgs).encode())
        self.assertEqual(r.returncode, 0, r.stderr)
        # a consumer group: FindCoordinator, JoinGroup, SyncGroup, OffsetFetch, Fetch, OffsetCommit, LeaveGroup
        c = KafkaConsumer("orders", bootstrap_servers=self.bootstrap, group_id="audit-group",
                          client_id="audit-consumer", auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=20000,
                          api_version_auto_timeout_ms=20000, **self.kafka_ssl())
        got = []
        try:
            for m in c:
                got.append(m.value.decode())
                if len(got) == len(msgs):
                    break
            c.commit()
        finally:
            c.close()
        self.assertEqual(sorted(got), sorted(msgs))
        # a failed request: the broker refuses a record above the topic's max.message.bytes
        r = harness.kcat(self.bootstrap, ["-P", "-t", "small", "-p", "0", "-X", "client.id=audit-denied",
                                          "-X", "message.timeout.ms=10000"], self.certs,
                         input=b"denied-value" + b"x" * 400 + b"\n")
        self.assertIn(b"Message size too large", r.stderr)
        self.raw_create_topics()

        evs = self.stop_and_read()
        calls = [e for e in evs if e.get("eventType") == "KafkaApiCall"]
        for e in calls:
            self.assert_identity(e)
        names = {e["eventName"] for e in calls}
        for n in ("ApiVersions", "Metadata", "Produce", "FindCoordinator", "JoinGroup",
                  "SyncGroup", "OffsetFetch", "Fetch", "OffsetCommit", "LeaveGroup",
                  "CreateTopics"):
            self.assertIn(n, names)

        # kcat's Produce: client.id and librdkafka's software name, topic, records
        prod = [e for e in calls if e["eventName"] == "Produce"
                and e["clientId"] == "audit-producer"]
        p = prod[0]
        self.assertEqual(p["eventCategory"], "Data")
        self.assertFalse(p["readOnly"])
        self.assertEqual(p["clientId"], "audit-producer")
        self.assertEqual(p["clientSoftwareName"], "librdkafka")
        self.assertIn("(client.id=audit-producer)", p["userAgent"])
        self.assertTrue(p["userAgent"].startswith("librdkafka/"))
        res = p["requestParameters"]["resources"]
        self.assertEqual(res[0]["type"], "topic")
        self.assertEqual(res[0]["name"], "orders")
        self.assertEqual(sum(e["requestParameters"]["resources"][0]["records"] for e in prod),
                         len(msgs))
        self.assertEqual(p["errorCode"], 0)
        self.assertIsNotNone(p["latencyMs"])
        # no record data in any event
        with open(self.audit_path(), encoding="utf-8") as f:
            raw = f.read()
        self.assertNotIn("audit-0", raw)

        # consumer group events name the group; kafka-python's client.id
        join = [e for e in calls if e["eventName"] == "JoinGroup"][0]
        self.assertEqual(join["clientId"], "audit-consumer")
        self.assertEqual(join["eventCategory"], "Data")
        self.assertFalse(join["readOnly"])
        self.assertIn({"type": "group", "name": "audit-group"},
                      [{"type": x["type"], "name": x["name"]}
                       for x in join["requestParameters"]["resources"]])
        commit = [e for e in calls if e["eventName"] == "OffsetCommit"][-1]
        rs = commit["requestParameters"]["resources"]
        self.assertEqual(rs[0], {"type": "group", "name": "audit-group"})
        topic = [x for x in rs if x["type"] == "topic"][0]
        self.assertEqual(topic["name"], "orders")
        self.assertIn(0, topic["partitions"])
        self.assertEqual(commit["errorCode"], 0)
        fc = [e for e in calls if e["eventName"] == "FindCoordinator"]
        self.assertTrue(any(x["name"] == "audit-group" for e in fc
                            for x in e["requestParameters"]["resources"]))
        fetch = [e for e in calls if e["eventName"] == "Fetch"]
        self.assertTrue(any(x["name"] == "orders" and x.get("bytes", 0) > 0 for e in fetch
                            for x in e["requestParameters"]["resources"]))

        # the refused Produce: the partition's error in responseElements. Its clientId is the
        # one the client sent: the record (400 bytes of "x") made the frame be assembled
        # aside, and the audit observer once read the client id from where the frame first
        # arrived, by then overwritten with record bytes ("xxxxxxxxxxxx").
        denied = [e for e in calls if e["eventName"] == "Produce" and e["clientId"] == "audit-denied"]
        self.assertTrue(denied, "no Produce event from the refused producer")
        d = denied[0]
        self.assertEqual(d["errorCode"], 10)
        self.assertEqual(d["errorName"], "MESSAGE_TOO_LARGE")
        out = d["responseElements"]["resources"][0]
        self.assertEqual(out["name"], "small")
        self.assertEqual(out["partitions"], [{"partition": 0, "errorCode": 10,
                                              "errorName": "MESSAGE_TOO_LARGE"}])
        self.assertNotIn("denied-value", raw)

        # CreateTopics: Management, decoded, keys without values, the broker's answer
        ct = [e for e in calls if e["eventName"] == "CreateTopics"][0]
        self.assertEqual(ct["eventCategory"], "Management")
        self.assertFalse(ct["readOnly"])
        self.assertEqual(ct["clientId"], "raw-admin")
        self.assertNotIn("requestDecoded", ct)
        t = ct["requestParameters"]["resources"][0]
        self.assertEqual((t["type"], t["name"]), ("topic", "audit-new"))
        self.assertEqual(t["configKeys"], ["retention.ms", "sasl.jaas.config"])
        self.assertNotIn("TOPSECRET", raw)
        # the broker rejects the bogus topic config; the event carries its per-topic error
        self.assertIsNotNone(ct["latencyMs"])
        self.assertEqual(ct["responseElements"]["resources"],
                         [{"type": "topic", "name": "audit-new", "errorCode": 40,
                           "errorName": "INVALID_CONFIG"}])
        self.assertEqual(ct["errorCode"], 40)

        # the chain verifies; tampering with one request event is caught
        r = self.verify(self.audit_path())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = raw.splitlines(True)
        i = next(k for k, line in enumerate(lines) if '"eventName":"JoinGroup"' in line)
        lines[i] = lines[i].replace('"audit-group"', '"other-group"', 1)
        tampered = os.path.join(self.tmp, "tampered.ndjson")
        with open(tampered, "w", encoding="utf-8") as f:
            f.writelines(lines)
        r = self.verify(tampered)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(b": edited", r.stdout + r.stderr)


if __name__ == "__main__":
    harness.main()
