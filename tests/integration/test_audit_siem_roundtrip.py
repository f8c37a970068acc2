"""The SIEM-style round trip: real Kafka 4.4.0 traffic (kafka-python producer and consumer
group, kcat, a raw Metadata request) through a brokerside `kafka` listener, whose audit
trail (every request, HMAC-signed digests) goes at once to three places an auditor loads it
from:

- the file sink (NDJSON files),
- S3 on moto_server (SigV4 checked, gzip objects), read back with boto3,
- CloudTrail Lake (tests/integration/cloudtrail_lake_server.py), read back from its store,
  each event's line taken from additionalEventData.auditRecord.

Each read-back is put in chain order (duplicates by eventID dropped: delivery is at least
once) and must pass `brokerside audit verify` with the signing key, holding exactly the
lines the file sink wrote; an edited line read back from S3 and one from the Lake fail it.
Run for both audit formats (`audit.format`: the CloudTrail-like records and OCSF 1.8.0)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from lake_common import ACCOUNT, LakeTest, chain_order, fields, verify  # noqa: E402
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402

FORMATS = ["cloudtrail", "ocsf"]
BUCKET = "audit-roundtrip"


class SiemRoundTrip(LakeTest):

    def setUp(self):
        super().setUp()
        self.py = python_with_boto3()
        if not moto_server_path() or not self.py:
            raise RuntimeError("moto_server and a python3 with boto3 are required (make deps)")
        self.moto_port = harness.free_port()
        self.moto_url = "http://127.0.0.1:%d" % self.moto_port
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        moto = self.proc([moto_server_path(), "-H", "127.0.0.1", "-p", str(self.moto_port)],
                         "moto", env=env)
        harness.wait_http(self.moto_url + "/moto-api/", proc=moto)
        out = subprocess.run([self.py, os.path.join(harness.HERE, "aws_moto_setup.py"),
                              self.moto_url + "/", "eu-west-1"], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.creds = json.loads(out.stdout.strip().splitlines()[-1])
        self.boto("create-bucket", BUCKET)
        # One credential chain serves every AWS sink: the Lake endpoint knows moto's key too.
        self.ep.stop()
        self.ep.keys.append("%s:%s:%s" % (self.creds["access_key_id"],
                                          self.creds["secret_access_key"], ACCOUNT))
        self.ep.start()

    def boto(self, *args):
        out = subprocess.run([self.py, os.path.join(harness.HERE, "aws_sinks_boto.py"),
                              self.moto_url, "eu-west-1", self.creds["access_key_id"],
                              self.creds["secret_access_key"], *args],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        return json.loads(out.stdout) if out.stdout.strip() else None

    def traffic(self, fmt):
        """Produce with kafka-python and kcat, consume in a group, ask for Metadata."""
        from kafka import KafkaConsumer, KafkaProducer
        bootstrap = "127.0.0.1:%d" % self.port
        topic = "siem-%s" % fmt
        self.kc.reset_topics([topic + ":2:1"])
        p = KafkaProducer(bootstrap_servers=bootstrap, client_id="siem-producer", acks="all")
        for i in range(10):
            p.send(topic, value=b"order %d" % i).get(60)
        p.close(10)
        r = harness.kcat(bootstrap, ["-P", "-t", topic, "-X", "client.id=siem-kcat"],
                         input=b"a\nb\nc\n")
        self.assertEqual(r.returncode, 0, r.stderr)
        c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id="siem-group",
                          client_id="siem-consumer", auto_offset_reset="earliest",
                          enable_auto_commit=False, consumer_timeout_ms=20000)
        got = 0
        try:
            for _ in c:
                got += 1
                if got == 13:
                    break
            c.commit()
        finally:
            c.close()
        self.assertEqual(got, 13)
        self.metadata_requests(5, topics=3, tag="siem")

    def round_trip(self, fmt):
        cfg = self.config(sinks={"s3": {"type": "s3", "bucket": BUCKET, "region": "eu-west-1",
                                        "endpoint": self.moto_url, "prefix": "audit/%Y/%m/%d/",
                                        "object_max_age_s": 1}},
                          audit_sinks=("f", "s3", "lake"))
        cfg["aws"]["credentials"] = {"access_key_id": self.creds["access_key_id"],
                                     "secret_access_key": self.creds["secret_access_key"]}
        if fmt != "cloudtrail":
            cfg["audit"]["format"] = fmt
        bs = self.start_brokerside(cfg)
        self.traffic(fmt)
        bs.stop()  # SIGTERM: the chain is sealed and the final digest shipped everywhere
        lines = self.file_lines()
        self.assertIn('"AuditDigest"', lines[-1])
        names = {fields(ln)[4] for ln in lines}
        self.assertTrue({"Produce", "Fetch", "JoinGroup", "OffsetCommit", "Metadata",
                         "ConnectionAccepted", "AuditChainStart", "AuditDigest"} <= names, names)

        def s3_lines():
            return [ln for o in self.boto("read-s3", BUCKET, "audit/") for ln in o["lines"]]
        harness.wait_until(lambda: set(lines) <= set(s3_lines()), harness.START_TIMEOUT * 2,
                           "every audit line in S3")
        self.wait_file_lines_in_lake("every audit line in the Lake", at_least=len(lines))
        read_back = {"file": lines, "s3": chain_order(s3_lines()),
                     "lake": chain_order(self.lake_records().values())}
        for where, back in read_back.items():
            self.assertEqual(sorted(back), sorted(lines), where)
            rc, out = verify(self.tmp, "%s-%s.ndjson" % (fmt, where), back, self.key)
            self.assertEqual(rc, 0, "%s: %s" % (where, out))
            self.assertRegex(out, r"OK: %d line\(s\), 1 chain\(s\), [1-9]\d* digest\(s\) verified"
                             % len(lines))
            if where == "file":
                continue
            # the check can fail: an auditor's copy with one edited event
            bad = list(back)
            i = next(k for k, ln in enumerate(bad) if '"Produce"' in ln)
            bad[i] = bad[i].replace('"siem-', '"siex-', 1)
            self.assertNotEqual(bad[i], back[i])
            rc, out = verify(self.tmp, "%s-%s-edited.ndjson" % (fmt, where), bad, self.key)
            self.assertEqual(rc, 1, "%s: %s" % (where, out))
            self.assertIn("edited", out)



# one test per format (each with its own endpoint store, moto, spool and files)
for _fmt in FORMATS:
    setattr(SiemRoundTrip, "test_round_trip_" + _fmt, lambda self, f=_fmt: self.round_trip(f))


if __name__ == "__main__":
    harness.main()
