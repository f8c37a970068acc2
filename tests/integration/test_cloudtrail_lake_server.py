"""The CloudTrail Lake test endpoint (cloudtrail_lake_server.py) tested on its own, so the
sink tests can trust it: its SigV4 canonicalisation and verification against the AWS SigV4
test suite, and the official client (boto3's cloudtrail-data, from the same service model)
against it: accepted calls, partial failures with the model's codes, refused signatures,
model validation (limits, id pattern, 1 MB), the model's errors and injected faults."""
import json
import os
import subprocess
import sys
import tempfile
import shutil
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import cloudtrail_lake_server as lake  # noqa: E402
from test_aws_kms import python_with_boto3  # noqa: E402

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ARN = "arn:aws:cloudtrail:%s:%s:channel/ch-test" % (REGION, ACCOUNT)

# Runs under a python with boto3: one call per line of stdin ({"op", ...}), one JSON answer
# per line on stdout ({"ok": response} or {"error": code, "status": http status}).
BOTO = r'''
import base64, hashlib, json, sys
import boto3, botocore.config, botocore.exceptions
url, akid, secret = sys.argv[1:4]
def client(secret):
    return boto3.client("cloudtrail-data", region_name="eu-west-1", endpoint_url=url,
                        aws_access_key_id=akid, aws_secret_access_key=secret,
                        config=botocore.config.Config(retries={"total_max_attempts": 1,
                                                               "mode": "standard"}))
for line in sys.stdin:
    req = json.loads(line)
    c = client(req.pop("secret", secret))
    for e in req.get("auditEvents", []):
        if e.get("eventDataChecksum") == "auto":
            e["eventDataChecksum"] = base64.b64encode(
                hashlib.sha256(e["eventData"].encode()).digest()).decode()
    try:
        r = c.put_audit_events(**req)
        r.pop("ResponseMetadata")
        print(json.dumps({"ok": r}), flush=True)
    except botocore.exceptions.ClientError as e:
        print(json.dumps({"error": e.response["Error"]["Code"],
                          "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}), flush=True)
    except botocore.exceptions.ParamValidationError as e:
        print(json.dumps({"error": "client-side validation: %s" % e}), flush=True)
'''


def event_data(**over):
    d = {"version": "1.0", "userIdentity": {"type": "mTLS", "principalId": "CN=a"},
         "eventSource": "kafka.brokerside", "eventName": "Produce",
         "eventTime": "2026-12-05T10:00:00Z", "UID": "1-1", "recipientAccountId": ACCOUNT}
    d.update(over)
    return json.dumps({k: v for k, v in d.items() if v is not None})


class CloudTrailLakeEndpoint(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.py = python_with_boto3()
        if not cls.py:
            raise RuntimeError("a python3 with boto3 is required (make deps)")
        cls.tmp = tempfile.mkdtemp(prefix="bs-lake-ep-")
        cls.ep = lake.Endpoint(cls.tmp, ["AKIDLAKE:lake-secret:" + ACCOUNT,
                                         "AKIDOTHER:other-secret:210987654321"], [ARN],
                               REGION).start()

    @classmethod
    def tearDownClass(cls):
        cls.ep.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def calls(self, *reqs, akid="AKIDLAKE"):
        """Each request through boto3; the answers in order."""
        p = subprocess.run([self.py, "-c", BOTO, self.ep.url, akid,
                            "lake-secret" if akid == "AKIDLAKE" else "other-secret"],
                           input="".join(json.dumps(r) + "\n" for r in reqs),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr[-3000:])
        out = [json.loads(line) for line in p.stdout.splitlines()]
        self.assertEqual(len(out), len(reqs), p.stderr[-3000:])
        return out

    def test_sigv4_suite(self):
        suite = os.path.join(lake.spec_dir(), "aws-sigv4-test-suite", "v4")
        p = subprocess.run([sys.executable, lake.__file__, "--self-test", suite],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout[-3000:])
        self.assertRegex(p.stdout, r"\n?(3\d|[4-9]\d) case\(s\), 0 failure\(s\)")

    def test_accepts_and_stores_by_id(self):
        ok, again = self.calls(
            {"channelArn": ARN, "auditEvents": [
                {"id": "ev-1", "eventData": event_data(), "eventDataChecksum": "auto"},
                {"id": "ev-2", "eventData": event_data(UID="1-2")}]},
            {"channelArn": ARN, "auditEvents": [
                {"id": "ev-1", "eventData": event_data(), "eventDataChecksum": "auto"}]})
        self.assertEqual(sorted(e["id"] for e in ok["ok"]["successful"]), ["ev-1", "ev-2"])
        self.assertEqual(ok["ok"]["failed"], [])
        self.assertEqual([e["id"] for e in again["ok"]["successful"]], ["ev-1"])
        st = self.ep.state()
        self.assertEqual([e["id"] for e in st["events"]].count("ev-1"), 1)
        self.assertGreaterEqual(st["resends"], 1)

    def test_per_event_failures(self):
        (r,) = self.calls({"channelArn": ARN, "auditEvents": [
            {"id": "pf-sum", "eventData": event_data(), "eventDataChecksum": "AAAA"},
            {"id": "pf-extra", "eventData": event_data(extra="x")},
            {"id": "pf-missing", "eventData": event_data(UID=None)},
            {"id": "pf-long", "eventData": event_data(errorCode="E" * 257)},
            {"id": "pf-account", "eventData": event_data(recipientAccountId="999999999999")},
            {"id": "pf-time", "eventData": event_data(eventTime="2026-12-05 10:00")},
            {"id": "pf-ok", "eventData": event_data()}]})
        codes = {f["id"]: f["errorCode"] for f in r["ok"]["failed"]}
        self.assertEqual(codes, {"pf-sum": "InvalidChecksum", "pf-extra": "InvalidData",
                                 "pf-missing": "FieldNotFound", "pf-long": "FieldTooLong",
                                 "pf-account": "InvalidRecipient", "pf-time": "InvalidData"})
        self.assertEqual([e["id"] for e in r["ok"]["successful"]], ["pf-ok"])

    def test_bad_signatures_are_refused(self):
        req = {"channelArn": ARN, "auditEvents": [{"id": "sig-1", "eventData": event_data()}]}
        (r,) = self.calls(dict(req, secret="not-the-secret"))
        self.assertEqual(r, {"error": "InvalidSignatureException", "status": 403})
        (r,) = self.calls(req, akid="AKIDNOBODY")
        self.assertEqual(r, {"error": "UnrecognizedClientException", "status": 403})
        # unsigned
        import urllib.error
        import urllib.request
        u = urllib.request.Request(self.ep.url + "/PutAuditEvents?channelArn=" + ARN,
                                   data=json.dumps({"auditEvents": []}).encode(), method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen(u, timeout=30)
        self.assertEqual(cm.exception.code, 403)
        self.assertIn("MissingAuthenticationToken", cm.exception.headers["x-amzn-ErrorType"])
        self.assertNotIn("sig-1", [e["id"] for e in self.ep.state()["events"]])

    def test_model_validation_and_errors(self):
        ev = {"eventData": event_data()}
        many = [dict(ev, id="n-%d" % i) for i in range(101)]
        big = [dict(id="big-%d" % i, eventData=event_data(UID="x" * 900,
                                                           additionalEventData={"p": "y" * 20000}))
               for i in range(60)]
        r = self.calls(
            {"channelArn": ARN, "auditEvents": many},
            {"channelArn": ARN, "auditEvents": [dict(ev, id="a b")]},
            {"channelArn": ARN, "auditEvents": big},
            {"channelArn": ARN + "-gone", "auditEvents": [dict(ev, id="x1")]},
            {"channelArn": "arn:aws:cloudtrail:eu-west-1:1:trail/x", "auditEvents": [dict(ev, id="x1")]},
            {"channelArn": ARN, "auditEvents": [dict(ev, id="d1"), dict(ev, id="d1")]})
        self.assertEqual(r[0], {"error": "ValidationException", "status": 400})
        self.assertEqual(r[1], {"error": "ValidationException", "status": 400})
        self.assertEqual(r[2], {"error": "ValidationException", "status": 400})
        self.assertEqual(r[3], {"error": "ChannelNotFound", "status": 400})
        self.assertEqual(r[4], {"error": "InvalidChannelARN", "status": 400})
        self.assertEqual(r[5], {"error": "DuplicatedAuditEventId", "status": 400})
        # the channel belongs to another account than the caller's
        (r,) = self.calls({"channelArn": ARN, "auditEvents": [dict(ev, id="o1")]},
                          akid="AKIDOTHER")
        self.assertEqual(r, {"error": "ChannelInsufficientPermission", "status": 400})

    def test_injected_faults(self):
        self.ep.rules({"call_error": "ThrottlingException", "status": 400},
                      {"call_error": "InternalServerError", "status": 500},
                      {"event_error": "Throttling", "every": 2})
        ev = [{"id": "inj-%d" % i, "eventData": event_data()} for i in range(4)]
        r = self.calls(*[{"channelArn": ARN, "auditEvents": ev}] * 4)
        self.assertEqual(r[0], {"error": "ThrottlingException", "status": 400})
        self.assertEqual(r[1], {"error": "InternalServerError", "status": 500})
        self.assertEqual(sorted(f["id"] for f in r[2]["ok"]["failed"]), ["inj-0", "inj-2"])
        self.assertEqual({f["errorCode"] for f in r[2]["ok"]["failed"]}, {"Throttling"})
        self.assertEqual(len(r[3]["ok"]["successful"]), 4)  # the rules were used up


if __name__ == "__main__":
    unittest.main(verbosity=2)
