"""Issue 16: audit.format (cloudtrail and ocsf) and the sidecar's own actions, end to end.

One scenario, run once per format, against a real Apache Kafka broker (harness.module_kafka:
KRaft with a SASL listener), real TLS, real clients (confluent-kafka, the raw Kafka client)
and moto's KMS (SigV4 checked) behind a TCP forwarder the test takes away:

- a `kafka` listener with mutual TLS: a producer writes to an encrypted topic (API calls,
  connection open/close, the client certificate accepted, DEK creation, and rotation with
  `encryption.dek.max_records` 2), a denied Produce (the authorization policy), a client with
  a certificate from another CA (rejected) and a TLS 1.1 client (handshake failed);
- a plaintext `kafka` listener in front of the broker's SASL listener: PLAIN success and
  failure;
- a `proxy_protocol` listener that trusts only 127.0.0.3: a connection from 127.0.0.1
  (untrusted_source) and a malformed v1 header from 127.0.0.3 (ProxyProtocolRejected);
- SIGHUP with a changed `audit.digest_every_events`, a changed `aws.secret_access_key` (the
  old and the new secret must appear nowhere in the trail) and a new authorization rule;
  the TLS material is rebuilt;
- the KMS taken away (KmsUnavailable, once) and back (KmsRecovered);
- a second file sink whose 1024-byte batches cannot take the events (dead letters);
- the spool's filesystem (a small tmpfs) filled by the test, then freed (SpoolFull,
  SpoolRecovered);
- SIGTERM (SidecarStopping, final digest), a restart (previousRun "stopped"), SIGTERM.

Then every event type is looked for in the trail; in the OCSF run every line is validated
against the OCSF 1.8.0 schema (tests/ocsf_validate.py); `brokerside audit verify --key`
passes, and fails on a copy with one byte changed.

The validator's own negative test (broken events must fail) runs without a daemon.
"""
import copy
import json
import os
import signal
import ssl
import socket
import subprocess
import sys
import time
import unittest
import uuid
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import harness  # noqa: E402
import kafka_raw  # noqa: E402
import ocsf_validate  # noqa: E402
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402
from test_kms_keyring import Forwarder  # noqa: E402

REGION = "eu-west-1"
SCHEMA_DIR = os.environ.get("BS_OCSF_SCHEMA") or os.path.join(
    os.path.dirname(os.path.dirname(HERE)), "..", "shared", "spec", "ocsf-schema-1.8.0")
NEW_SECRET = "RELOADED-SECRET-Zq9w"
PP_LB = "127.0.0.3"  # the one trusted PROXY protocol source of the `pp` listener


def load_schema():
    if not os.path.exists(os.path.join(SCHEMA_DIR, "dictionary.json")):
        raise AssertionError("the OCSF 1.8.0 schema is not at %s (shared/spec; or set "
                             "BS_OCSF_SCHEMA)" % SCHEMA_DIR)
    return ocsf_validate.Schema(SCHEMA_DIR)


def mount_tmpfs(path, size):
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size, "tmpfs", path],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError("this test needs to mount a small tmpfs (run as root): %s" %
                             r.stderr.strip())


class AuditFormatScenario(harness.IntegrationTest):
    FORMAT = None  # set by the subclasses

    def setUp(self):
        super().setUp()
        moto, py = moto_server_path(), python_with_boto3()
        if not moto or not py:
            self.fail("moto_server and a python3 with boto3 are required (make deps)")
        moto_port = harness.free_port()
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        mp = harness.Proc([moto, "-H", "127.0.0.1", "-p", str(moto_port)],
                          log_path=os.path.join(self.tmp, "moto.log"), env=env)
        self.addCleanup(mp.kill)
        harness.wait_port("127.0.0.1", moto_port, proc=mp)
        out = subprocess.run([py, os.path.join(HERE, "aws_moto_setup.py"),
                              "http://127.0.0.1:%d/" % moto_port, REGION],
                             capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.creds = json.loads(out.stdout.strip().splitlines()[-1])
        self.fwd = Forwarder(moto_port)
        self.fwd.start()
        self.addCleanup(self.fwd.stop)

        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["enc-a", "enc-b", "plain", "forbidden"])
        self.fs = os.path.join(self.tmp, "smallfs")
        os.makedirs(self.fs)
        mount_tmpfs(self.fs, "48m")
        self.addCleanup(lambda: subprocess.run(["umount", "-l", self.fs], capture_output=True))

        self.key = os.path.join(self.tmp, "audit.key")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32).hex().encode() + b"\n")
        os.close(fd)
        self.tls_port, self.sasl_port = harness.free_port(), harness.free_port()
        self.pp_port = harness.free_port()
        node = self.kc.node(1)
        tls = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.tls_port, node.client,
                                   protocol="kafka", client_auth="required", name="tls")
        tls["broker_id"] = 1
        sasl = {"name": "sasl", "bind": "127.0.0.1:%d" % self.sasl_port, "upstream": node.sasl,
                "protocol": "kafka", "broker_id": 1}
        # behind a load balancer at 127.0.0.3 (only refusals are exercised here)
        pp = {"name": "pp", "bind": "127.0.0.1:%d" % self.pp_port, "upstream": node.sasl,
              "protocol": "kafka", "broker_id": 1, "proxy_protocol": True,
              "proxy_protocol_sources": [PP_LB + "/32"]}
        self.events_dir = os.path.join(self.tmp, "events")
        self.cfg = harness.base_config(
            harness.free_port(), [tls, sasl, pp],
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.tls_port}},
            aws={"region": REGION, "max_attempts": 1, "connect_timeout_s": 2,
                 "request_timeout_s": 5,
                 "credentials": {"access_key_id": self.creds["access_key_id"],
                                 "secret_access_key": self.creds["secret_access_key"]}},
            encryption={"kms": {"type": "aws", "region": REGION,
                                "endpoint": "http://127.0.0.1:%d/" % self.fwd.port},
                        "topics": [{"match": "enc-*", "key": self.creds["key_id"]}],
                        "unmatched_topics": "plaintext", "dek": {"max_records": 2}},
            authorization={"default": "allow", "rules": [
                {"principal": "User:*", "operation": "Write", "resource_type": "Topic",
                 "resource_name": "forbidden", "permission": "DENY"}]},
            audit={"format": self.FORMAT, "data_events": "each", "signing_key_file": self.key,
                   "sinks": ["files", "small"]},
            sinks={"files": {"type": "file", "dir": self.events_dir},
                   "small": {"type": "file", "dir": os.path.join(self.tmp, "small"),
                             "max_bytes": 1024}},
            spool={"dir": os.path.join(self.fs, "spool")})
        self.audit_path = os.path.join(self.events_dir, "audit.ndjson")

    # ------------------------------------------------------------ helpers

    def events(self):
        return harness.read_ndjson(self.audit_path)

    def record(self, e):
        """The brokerside record fields: the line (cloudtrail) or its `unmapped` (ocsf)."""
        return e["unmapped"] if self.FORMAT == "ocsf" else e

    def named(self, name, evs=None):
        return [e for e in (evs if evs is not None else self.events())
                if self.record(e).get("eventName") == name]

    def wait_event(self, name, pred=lambda e: True):
        return harness.wait_for(lambda: [e for e in self.named(name) if pred(e)],
                                "%s in %s" % (name, self.audit_path), timeout=120)

    def conf(self):
        return {"bootstrap.servers": "127.0.0.1:%d" % self.tls_port, "security.protocol": "SSL",
                "ssl.ca.location": self.certs["ca_crt"],
                "ssl.certificate.location": self.certs["client_crt"],
                "ssl.key.location": self.certs["client_key"]}

    def produce(self, topic, values, timeout_ms=60000):
        """One request per value; the delivery error of each (None = delivered).
        Retries are 1 s apart: each attempt is an audit event."""
        from confluent_kafka import Producer
        p = Producer(dict(self.conf(), acks="all", **{"message.timeout.ms": timeout_ms,
                                                      "linger.ms": 0, "retry.backoff.ms": 1000}))
        results = []
        for v in values:
            p.produce(topic, value=v, on_delivery=lambda err, msg: results.append(err))
            p.flush(timeout_ms / 1000 + 30)
        self.assertEqual(len(results), len(values))
        return results

    def tls_client(self, cert=None, tls11=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.certs["ca_crt"])
        ctx.check_hostname = False
        if cert:
            ctx.load_cert_chain(self.certs[cert + "_crt"], self.certs[cert + "_key"])
        if tls11:
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point here
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        raw = socket.create_connection(("127.0.0.1", self.tls_port), timeout=20)
        try:
            s = ctx.wrap_socket(raw)
            s.sendall(harness.kafka_api_versions_request())
            s.recv(4)
            s.close()
        except (ssl.SSLError, OSError):
            pass
        finally:
            raw.close()

    def pp_refused(self, src, payload=b""):
        """A connection from `src` to the PROXY protocol listener, `payload` sent, that the
        sidecar closes; returns its source port."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(20)
        try:
            s.bind((src, 0))
            s.connect(("127.0.0.1", self.pp_port))
            port = s.getsockname()[1]
            if payload:
                s.sendall(payload)
            try:
                self.assertEqual(s.recv(4096), b"")
            except ConnectionResetError:
                pass
            return port
        finally:
            s.close()

    def make_crl(self):
        """A fresh, empty CRL of the dev CA (valid for 30 days)."""
        ca_dir = os.path.join(self.tmp, "ca")
        os.makedirs(ca_dir)
        open(os.path.join(ca_dir, "index.txt"), "w").close()
        cnf = os.path.join(ca_dir, "ca.cnf")
        with open(cnf, "w") as f:
            f.write("[ca]\ndefault_ca=d\n[d]\ndatabase=%s/index.txt\ndefault_md=sha256\n"
                    "crlnumber=%s/crlnumber\n" % (ca_dir, ca_dir))
        with open(os.path.join(ca_dir, "crlnumber"), "w") as f:
            f.write("01\n")
        crl = os.path.join(self.tmp, "ca.crl")
        r = subprocess.run(["openssl", "ca", "-batch", "-config", cnf, "-gencrl", "-keyfile",
                            self.certs["ca_key"], "-cert", self.certs["ca_crt"], "-crldays", "30",
                            "-out", crl], capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        return crl

    def fill_disk(self):
        """Fill the spool's filesystem to the last byte; returns the filler's path."""
        path = os.path.join(self.fs, "filler")
        # Unbuffered: a short write at the end stays short, instead of leaving bytes in a
        # buffer whose flush at close raises ENOSPC once more (whether it did depended on
        # how many bytes the trail had used on the filesystem before).
        with open(path, "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
        return path

    # ------------------------------------------------------------ the scenario

    def test_every_event_type_and_verify(self):
        bs = self.start_brokerside(self.cfg)
        # Kafka API calls through mutual TLS; 5 records on enc-a: a DEK made, then rotated
        self.assertEqual(self.produce("enc-a", [b"a-%d" % i for i in range(5)]), [None] * 5)
        self.assertEqual(self.produce("plain", [b"p-1"]), [None])
        # the policy denies this Produce (TOPIC_AUTHORIZATION_FAILED, not retriable)
        errs = self.produce("forbidden", [b"no"], timeout_ms=20000)
        self.assertIsNotNone(errs[0])
        # client certificates: one from another CA, and a TLS 1.1 client
        self.tls_client("untrusted_client")
        self.tls_client(tls11=True)
        # PROXY protocol refusals: an unlisted source, and a malformed header from the balancer
        pp_untrusted = self.pp_refused("127.0.0.1", b"PROXY TCP4 10.9.8.7 127.0.0.1 1 2\r\n")
        pp_malformed = self.pp_refused(PP_LB, b"PROXY TCP5 10.9.8.7 127.0.0.1 1 2\r\n")
        for port in (pp_untrusted, pp_malformed):
            self.wait_event("ProxyProtocolRejected",
                            lambda e, port=port: self.record(e).get("sourcePort") == port)
        # SASL PLAIN through the sidecar to the broker's SASL listener
        ok = kafka_raw.Conn(self.sasl_port)
        self.assertEqual(ok.plain("alice", "alice-secret"), 0)
        ok.close()
        bad = kafka_raw.Conn(self.sasl_port)
        self.assertNotEqual(bad.plain("alice", "wrong-password-xyz"), 0)
        bad.close()
        self.wait_event("DataKeyRotated")
        self.wait_event("SinkEventsDeadLettered")

        # SIGHUP: a plain key, a secret and the policy change
        new = copy.deepcopy(self.cfg)
        new["audit"]["digest_every_events"] = 7
        crl = self.make_crl()
        new["listeners"][0]["tls"]["crl"] = crl
        new["aws"]["credentials"]["secret_access_key"] = NEW_SECRET
        new["authorization"]["rules"].append(
            {"principal": "User:*", "operation": "Read", "resource_type": "Topic",
             "resource_name": "forbidden", "permission": "DENY"})
        bs.write_config(new)
        bs.signal(signal.SIGHUP)
        reload_ev = self.wait_event("ConfigurationReloaded")[0]
        self.wait_event("AuthorizationPolicyChanged")
        tls_ev = self.record(self.wait_event("TlsMaterialReloaded")[0])
        self.assertEqual(tls_ev["component"]["name"], "tls")
        self.assertEqual(tls_ev["component"]["details"]["crlFile"], crl)
        self.assertEqual(tls_ev["component"]["details"]["crls"], "1")
        self.assertEqual(tls_ev["component"]["details"]["certificateChanged"], "false")
        self.assertEqual(len(tls_ev["component"]["details"]["certificateSha256"]), 64)

        # the KMS goes away: a new topic needs a key (one KmsUnavailable), then comes back
        self.fwd.stop()
        errs = self.produce("enc-b", [b"b-0"], timeout_ms=8000)
        self.assertIsNotNone(errs[0])
        self.wait_event("KmsUnavailable")
        self.fwd.start()
        self.assertEqual(self.produce("enc-b", [b"b-late"]), [None])
        self.wait_event("KmsRecovered")

        # the spool's disk fills up, then frees
        filler = self.fill_disk()
        self.tls_client("client")  # connection events that cannot be spooled now
        harness.wait_for(lambda: json.loads(bs.get("/status")[1])["events"]["audit_blocked"],
                         "audit_blocked in /status", timeout=60)
        os.unlink(filler)
        self.wait_event("SpoolRecovered")
        self.wait_event("SpoolFull")

        # stop, restart (the new chain links to the sealed one), stop
        bs.signal(signal.SIGTERM)
        self.assertEqual(bs.proc.wait(60), 0, harness.tail(bs.log_path))
        bs2 = self.start_brokerside(new, name="brokerside2")
        self.tls_client("client")
        bs2.signal(signal.SIGTERM)
        self.assertEqual(bs2.proc.wait(60), 0, harness.tail(bs2.log_path))

        evs = self.events()
        raw = open(self.audit_path, "rb").read()
        # ---- no secret anywhere; the secret change is there by path only
        self.assertNotIn(self.creds["secret_access_key"].encode(), raw)
        self.assertNotIn(NEW_SECRET.encode(), raw)
        changes = {c["path"]: c for c in self.record(reload_ev)["changes"]}
        self.assertEqual(changes["aws.credentials.secret_access_key"],
                         {"path": "aws.credentials.secret_access_key", "change": "changed",
                          "secret": True})
        self.assertEqual(changes["audit.digest_every_events"],
                         {"path": "audit.digest_every_events", "change": "added", "new": "7"})
        self.assertEqual(changes["authorization.rules[1]"]["change"], "added")
        self.assertEqual(changes["listeners[0].tls.crl"],
                         {"path": "listeners[0].tls.crl", "change": "added", "new": crl})
        self.assertNotIn("audit.data_events", changes)
        # ---- every event type of the scenario is in the trail
        for name in ("AuditChainStart", "ConnectionAccepted", "ClientCertificateAccepted",
                     "ClientCertificateRejected", "TlsHandshakeFailed", "ConnectionClosed",
                     "ProxyProtocolRejected",
                     "Produce", "Metadata", "ApiVersions", "SaslHandshake", "SaslAuthenticate",
                     "DataKeyCreated", "DataKeyRotated", "ConfigurationReloaded",
                     "AuthorizationPolicyChanged", "TlsMaterialReloaded", "KmsUnavailable",
                     "KmsRecovered", "SinkEventsDeadLettered", "SpoolFull", "SpoolRecovered",
                     "SidecarStopping", "AuditDigest"):
            self.assertTrue(self.named(name, evs), name + " missing")
        self.assertEqual(len(self.named("KmsUnavailable", evs)), 1, "edge-triggered")
        starts = self.named("AuditChainStart", evs)
        self.assertEqual([self.record(s)["previousRun"] for s in starts], ["none", "stopped"])
        sasl = [self.record(e) for e in self.named("SaslAuthenticate", evs)]
        self.assertEqual(sorted(a["authentication"]["result"] for a in sasl),
                         ["failure", "success"])
        denied = [e for e in evs if self.record(e).get("eventType") == "KafkaAuthorization"
                  and self.record(e)["decision"] == "DENY"]
        self.assertTrue(denied)
        # ---- the PROXY refusals: reason, listener, the socket's peer (never the header's)
        pp = {self.record(e)["sourcePort"]: self.record(e)
              for e in self.named("ProxyProtocolRejected", evs)}
        self.assertEqual((pp[pp_untrusted]["reason"], pp[pp_untrusted]["sourceIPAddress"]),
                         ("untrusted_source", "127.0.0.1"))
        self.assertEqual((pp[pp_malformed]["reason"], pp[pp_malformed]["sourceIPAddress"]),
                         ("malformed_v1", PP_LB))
        self.assertIn("TCP5", pp[pp_malformed]["detail"])
        self.assertTrue(all(r["listener"] == "pp" and r["eventType"] == "KafkaConnection"
                            for r in pp.values()))
        self.assertNotIn(b"10.9.8.7", raw)
        if self.FORMAT == "ocsf":
            self.check_ocsf(evs)
        else:
            self.check_cloudtrail(evs)
        # ---- the chain verifies, and a changed byte is found
        r = harness.run_cli("audit", "verify", "--key", self.key, self.audit_path)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = raw.decode().splitlines()
        i = next(n for n, line in enumerate(lines) if '"DataKeyRotated"' in line)
        lines[i] = lines[i].replace('"reason":"records"', '"reason":"age"')
        self.assertIn('"age"', lines[i])
        bad_path = os.path.join(self.tmp, "tampered.ndjson")
        with open(bad_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        r = harness.run_cli("audit", "verify", "--key", self.key, bad_path)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn("%s:%d: event sequence" % (bad_path, i + 1), r.stdout)
        self.assertIn("edited", r.stdout)

    def check_cloudtrail(self, evs):
        for e in evs:
            self.assertEqual(e["eventVersion"], "1.0")
            self.assertIn("eventID", e)
            self.assertNotIn("class_uid", e)
        rej = self.named("ClientCertificateRejected", evs)[0]
        self.assertIn(rej["reason"], ("unknown_ca", "bad_certificate"))
        acc = self.named("ClientCertificateAccepted", evs)[0]
        self.assertIn("CN=dev-client", acc["userIdentity"]["principal"])
        st = self.named("SidecarStopping", evs)[0]
        self.assertEqual(st["eventType"], "SidecarAction")

    def check_ocsf(self, evs):
        schema = load_schema()
        problems = []
        for n, e in enumerate(evs, 1):
            problems += ["line %d (%s): %s" % (n, self.record(e).get("eventName"), p)
                         for p in schema.validate(e)]
        self.assertEqual(problems, [])

        def classes(name):
            return {(e["class_uid"], e["activity_id"], e.get("status_id"))
                    for e in self.named(name, evs)}
        self.assertIn((6002, 3, 1), classes("AuditChainStart"))
        self.assertIn((6002, 4, 1), classes("SidecarStopping"))
        self.assertIn((4001, 1, 1), classes("ConnectionAccepted"))
        self.assertIn((4001, 2, 1), classes("ConnectionClosed"))
        self.assertIn((4001, 4, 2), classes("TlsHandshakeFailed"))
        self.assertEqual(classes("ProxyProtocolRejected"), {(4001, 4, 2)})
        for e in self.named("ProxyProtocolRejected", evs):
            self.assertEqual(e["status_detail"], e["unmapped"]["reason"])
            self.assertEqual(e["message"], e["unmapped"]["detail"])
            self.assertEqual(e["src_endpoint"]["ip"], e["unmapped"]["sourceIPAddress"])
            self.assertEqual(e["dst_endpoint"]["name"], "pp")
            self.assertEqual(e["type_uid"], 400104)
        self.assertIn((3002, 1, 1), classes("ClientCertificateAccepted"))
        self.assertIn((3002, 1, 2), classes("ClientCertificateRejected"))
        self.assertEqual({c[:2] for c in classes("SaslAuthenticate")}, {(3002, 1)})
        self.assertEqual({c[2] for c in classes("SaslAuthenticate")}, {1, 2})
        self.assertIn((6003, 1, 1), classes("Produce"))
        self.assertIn((3004, 1, 1), classes("DataKeyCreated"))
        self.assertIn((3004, 11, 1), classes("DataKeyRotated"))
        self.assertIn((3004, 3, 1), classes("ConfigurationReloaded"))
        self.assertIn((3004, 3, 1), classes("AuthorizationPolicyChanged"))
        self.assertIn((3004, 3, 1), classes("TlsMaterialReloaded"))
        self.assertIn((6008, 1, 2), classes("KmsUnavailable"))
        self.assertIn((6008, 99, 1), classes("KmsRecovered"))
        self.assertIn((6008, 1, 2), classes("SinkEventsDeadLettered"))
        self.assertIn((6008, 1, 2), classes("SpoolFull"))
        self.assertIn((6008, 99, 1), classes("SpoolRecovered"))
        self.assertIn((1008, 99, 1), classes("AuditDigest"))
        # a Produce: actor, endpoints, api with the correlation id, the topic, the status
        p = next(e for e in self.named("Produce", evs)
                 if e["unmapped"]["eventType"] == "KafkaApiCall" and e.get("resources")
                 and e["resources"][0]["name"] == "enc-a")
        self.assertIn("CN=dev-client", p["actor"]["user"]["name"])
        self.assertEqual(p["src_endpoint"]["ip"], "127.0.0.1")
        self.assertEqual(p["dst_endpoint"]["name"], "tls")
        self.assertEqual(p["api"]["request"]["uid"], str(p["unmapped"]["requestID"].split("-")[1]))
        self.assertEqual(p["api"]["response"]["code"], 0)
        self.assertEqual(p["type_uid"], 600301)
        self.assertEqual(p["metadata"]["product"]["name"], "brokerside")
        # the denied Produce's decision
        d = next(e for e in evs if e["unmapped"].get("eventType") == "KafkaAuthorization"
                 and e["unmapped"]["decision"] == "DENY")
        self.assertEqual(d["actor"]["authorizations"][0]["decision"], "Deny")
        self.assertEqual(d["status_id"], 2)
        # SASL: the attempted user, the mechanism
        s = [e for e in self.named("SaslAuthenticate", evs)]
        self.assertEqual({e["user"]["name"] for e in s}, {"User:alice"})
        self.assertTrue(all(e["auth_protocol"] == "SASL/PLAIN" for e in s))


class AuditCloudTrailTest(AuditFormatScenario):
    FORMAT = "cloudtrail"


class AuditOcsfTest(AuditFormatScenario):
    FORMAT = "ocsf"


del AuditFormatScenario  # only the two formats run


class OcsfValidatorTest(unittest.TestCase):
    """The validator itself: a valid event passes, each kind of breakage fails."""

    GOOD = {
        "class_uid": 6003, "class_name": "API Activity", "category_uid": 6,
        "category_name": "Application Activity", "activity_id": 2, "activity_name": "Read",
        "type_uid": 600302, "type_name": "API Activity: Read", "time": 1764000000123,
        "timezone_offset": 0, "severity_id": 1, "severity": "Informational", "status_id": 1,
        "status": "Success",
        "metadata": {"version": "1.8.0", "uid": str(uuid.uuid4()),
                     "product": {"name": "brokerside", "vendor_name": "brokerside",
                                 "version": "0.1.0"}},
        "actor": {"user": {"name": "User:alice"}, "session": {"uid": "7"}},
        "src_endpoint": {"ip": "127.0.0.1", "port": 40000},
        "api": {"operation": "Metadata", "request": {"uid": "3"}, "response": {"code": 0}},
        "resources": [{"type": "topic", "name": "orders", "data": {"partitions": [0]}}],
        "unmapped": {"anything": {"goes": [1, "x"]}},
    }

    @classmethod
    def setUpClass(cls):
        cls.schema = load_schema()

    def broken(self, mutate):
        e = copy.deepcopy(self.GOOD)
        mutate(e)
        return self.schema.validate(e)

    def test_valid_event_passes(self):
        self.assertEqual(self.schema.validate(copy.deepcopy(self.GOOD)), [])

    def test_broken_events_fail(self):
        cases = {
            "required attribute missing": lambda e: e.pop("api"),
            "nested required missing": lambda e: e["api"].pop("operation"),
            "metadata.version missing": lambda e: e["metadata"].pop("version"),
            "wrong type (string for int)": lambda e: e.update(severity_id="1"),
            "wrong nested type": lambda e: e["src_endpoint"].update(port="40000"),
            "port out of range": lambda e: e["src_endpoint"].update(port=70000),
            "bad IP": lambda e: e["src_endpoint"].update(ip="300.1.1.1"),
            "timestamp not an integer": lambda e: e.update(time="2025-11-24T16:00:00Z"),
            "array expected": lambda e: e.update(resources={"name": "x"}),
            "bad enum activity_id": lambda e: e.update(activity_id=7, type_uid=600307),
            "bad enum status_id": lambda e: e.update(status_id=5),
            "bad enum severity_id": lambda e: e.update(severity_id=9),
            "type_uid inconsistent": lambda e: e.update(type_uid=600301),
            "category inconsistent": lambda e: e.update(category_uid=3),
            "unknown class": lambda e: e.update(class_uid=6999),
            "attribute outside the class": lambda e: e.update(chainId="abc"),
            "attribute outside a nested object": lambda e: e["actor"]["user"].update(x=1),
            "profile attribute without the profile": lambda e: e.update(
                cloud={"provider": "aws"}),
            "object constraint (at_least_one)": lambda e: e.update(src_endpoint={"port": 1}),
            "null value": lambda e: e.update(message=None),
        }
        for what, mutate in cases.items():
            with self.subTest(what):
                self.assertNotEqual(self.broken(mutate), [], what + " passed validation")


if __name__ == "__main__":
    harness.main()
