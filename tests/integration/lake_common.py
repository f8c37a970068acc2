"""Shared by the CloudTrail Lake sink tests and the SIEM round trip: a brokerside `kafka`
listener in front of the module's real Kafka broker, auditing every request (data_events
"each", HMAC-signed digests) to a file sink and to a `cloudtrail_lake` sink on the test
endpoint (cloudtrail_lake_server.py); Kafka traffic made with raw Metadata requests; the
audit lines read back from each place."""
import json
import os
import struct

import harness
import cloudtrail_lake_server as lake

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ARN = "arn:aws:cloudtrail:%s:%s:channel/brokerside-test" % (REGION, ACCOUNT)
AKID, SECRET = "AKIDBROKERSIDE", "brokerside-lake-secret"


def fields(line):
    """(eventID, chainId, sequence, time, eventName) of an audit line in either format
    (audit.format: the CloudTrail-like record, or OCSF with the record's own members in
    `unmapped` and the id in metadata.uid)."""
    e = json.loads(line)
    r = e["unmapped"] if "class_uid" in e else e
    eid = e["eventID"] if "eventID" in e else e["metadata"]["uid"]
    return eid, r["chainId"], r["sequence"], e.get("eventTime", e.get("time")), r["eventName"]


class LakeTest(harness.IntegrationTest):
    """Per test: the endpoint (its own store), a signing key, and a config builder."""

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.ep = lake.Endpoint(self.tmp, ["%s:%s:%s" % (AKID, SECRET, ACCOUNT)], [ARN],
                                REGION).start()
        self.addCleanup(self.ep.stop)
        self.logs.append(os.path.join(self.tmp, "lake-endpoint.log"))
        self.key = harness.write_hmac_key(os.path.join(self.tmp, "audit.key"))
        self.events_dir = os.path.join(self.tmp, "events")
        self.spool_dir = os.path.join(self.tmp, "spool")
        self.port = harness.free_port()

    def config(self, sinks=None, audit_sinks=("f", "lake"), **lake_keys):
        """The sidecar's config: sink "f" (file) and "lake" (cloudtrail_lake) plus `sinks`."""
        lst = {"name": "b1", "bind": "127.0.0.1:%d" % self.port,
               "upstream": self.kc.node(1).client, "protocol": "kafka", "broker_id": 1}
        lk = {"type": "cloudtrail_lake", "region": REGION, "endpoint": self.ep.url,
              "channel_arn": ARN, "backoff_initial_ms": 100, "backoff_max_ms": 400,
              "max_age_ms": 300}
        lk.update(lake_keys)
        all_sinks = {"f": {"type": "file", "dir": self.events_dir}, "lake": lk}
        all_sinks.update(sinks or {})
        return harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.port}},
            audit={"data_events": "each", "signing_key_file": self.key,
                   "sinks": list(audit_sinks)},
            sinks=all_sinks, spool={"dir": self.spool_dir},
            aws={"region": REGION, "max_attempts": 1, "connect_timeout_s": 1,
                 "request_timeout_s": 10,
                 "credentials": {"access_key_id": AKID, "secret_access_key": SECRET}})

    # ---- traffic

    def metadata_requests(self, n, topics=0, name_len=100, tag="t"):
        """n Metadata v4 requests through the sidecar (one audit event each), each naming
        `topics` topics that do not exist (allow_auto_topic_creation false): the broker
        answers UNKNOWN_TOPIC_OR_PARTITION for each, so the event lists them twice."""
        with harness.KafkaWire("127.0.0.1:%d" % self.port) as w:
            for i in range(n):
                names = [("%s%06d-%d-" % (tag, i, j)).ljust(name_len, "x").encode()
                         for j in range(topics)]
                body = struct.pack(">i", len(names)) + b"".join(
                    struct.pack(">h", len(b)) + b for b in names) + b"\x00"
                w.request(3, 4, body)

    # ---- reading back

    def file_lines(self):
        """The audit lines of the file sink (every file of the stream, oldest first)."""
        out = []
        if not os.path.isdir(self.events_dir):
            return out
        for name in sorted(os.listdir(self.events_dir)):
            if name.startswith("audit") and name.endswith(".ndjson"):
                with open(os.path.join(self.events_dir, name)) as f:
                    out += f.read().splitlines()
        return out

    def lake_records(self, state=None):
        """{id: audit line} of the events the endpoint stored (from eventData's
        additionalEventData.auditRecord)."""
        st = state or self.ep.state()
        return {e["id"]: json.loads(e["eventData"])["additionalEventData"]["auditRecord"]
                for e in st["events"]}

    def wait_file_lines_in_lake(self, what, at_least=1):
        """Wait until the file sink has at least `at_least` lines and every one is stored in the
        Lake under its eventID; returns the file lines."""
        def pred():
            lines = self.file_lines()
            if len(lines) < at_least:
                return False
            got = self.lake_records()
            return all(got.get(fields(ln)[0]) == ln for ln in lines)
        harness.wait_until(pred, harness.START_TIMEOUT * 3, what)
        return self.file_lines()

    def sink_status(self, bs, name="lake"):
        code, body = bs.get("/status")
        self.assertEqual(code, 200)
        return {s["name"]: s for s in json.loads(body)["sinks"]}[name]


def chain_order(lines):
    """Audit lines read back from a store without order (the Lake, S3 objects), put back in
    chain order for `brokerside audit verify`: duplicates (same eventID, at-least-once) dropped,
    each chain by sequence, chains one after the other by the time their first event was
    written."""
    seen, chains = set(), {}
    for ln in lines:
        eid, chain, seq, t, _ = fields(ln)
        if eid in seen:
            continue
        seen.add(eid)
        chains.setdefault(chain, []).append((seq, t, ln))
    ordered = sorted(chains.values(), key=lambda c: min(c)[1])
    return [ln for c in ordered for _, _, ln in sorted(c)]


def verify(tmp, name, lines, key):
    """`brokerside audit verify --key KEY` on `lines` written to <tmp>/<name>; (rc, output)."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write("".join(ln + "\n" for ln in lines))
    p = harness.run([harness.BROKERSIDE, "audit", "verify", "--key", key, path])
    return p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace")
