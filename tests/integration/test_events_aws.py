"""Audit events from the running daemon to CloudWatch Logs on moto_server
(SigV4 checked), with an outage in the middle, read back with boto3:

- a hung endpoint (moto frozen with SIGSTOP: requests time out, its state
  survives): every line of the local audit file also arrives in CloudWatch;
- a real restart (moto killed, the port refuses connections for several retry
  rounds while events keep coming, then a new moto_server on the same port):
  the new server knows nothing (no log group, no IAM user), so the operator's
  part is redone as it would be after a real account reset: a new IAM user and
  access key, written to the shared credentials file the sidecar reads. The
  sidecar must recover by itself (credentials rejected -> re-resolved from the
  file, group and stream gone -> auto_create) and every audit line must be in
  CloudWatch before the restart (read back just before the kill) or after it,
  nothing else, duplicates only as the same line (same eventID)."""
import json
import os
import signal
import socket
import subprocess
import sys
import unittest
import urllib.request

import harness

sys.path.insert(0, harness.HERE)
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402

REGION = "eu-west-1"
GROUP = "/brokerside/test-audit"
STREAM = "audit-stream"


class AuditToCloudWatch(harness.DaemonTest):
    def setUp(self):
        super().setUp()
        self.py = python_with_boto3()
        if not moto_server_path() or not self.py:
            raise RuntimeError("moto_server and a python3 with boto3 are required (make deps)")
        self.port = harness.free_port()
        self.endpoint = "http://127.0.0.1:%d" % self.port
        self.addCleanup(self.stop_moto)
        self.start_moto()
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID=self.creds["access_key_id"],
                        AWS_SECRET_ACCESS_KEY=self.creds["secret_access_key"])
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            self.env.pop(k, None)

    def start_moto(self):
        """Start moto_server on self.port (auth on after 3 setup calls) and create
        the IAM user, access key and KMS key. Sets self.moto and self.creds."""
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        log = open(os.path.join(self.tmp, "moto.log"), "a")
        self.moto = subprocess.Popen([moto_server_path(), "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def up():
            if self.moto.poll() is not None:
                raise AssertionError("moto_server exited")
            try:
                urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2).read()
                return True
            except OSError:
                return False
        harness.wait_for(up, "moto_server", interval=0.3)
        out = subprocess.run([self.py, os.path.join(harness.HERE, "aws_moto_setup.py"),
                              self.endpoint + "/", REGION], capture_output=True, text=True,
                             timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        self.creds = json.loads(out.stdout.strip().splitlines()[-1])

    def stop_moto(self):
        if self.moto.poll() is None:
            self.moto.send_signal(signal.SIGCONT)
            self.moto.kill()
            self.moto.wait()

    def cw_config(self, up, backoff_max_ms):
        """Audit of a TCP listener in front of `up` to the file sink "f" and to
        CloudWatch Logs "cw" on moto (short timeouts and backoff)."""
        cfg = self.base_config(up.port, streams=("audit",))
        cfg["audit"]["sinks"] = ["f", "cw"]
        cfg["aws"] = {"region": REGION, "request_timeout_s": 2, "connect_timeout_s": 1,
                      "max_attempts": 1}
        cfg["sinks"]["cw"] = {"type": "cloudwatch_logs", "endpoint": self.endpoint,
                              "log_group": GROUP, "log_stream": STREAM, "auto_create": True,
                              "backoff_initial_ms": 100, "backoff_max_ms": backoff_max_ms}
        return cfg

    def connect(self, port, n):
        """n TCP connections through the listener, one echo each (2 audit events each)."""
        for i in range(n):
            with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
                s.sendall(b"x%d" % i)
                s.recv(10)

    def audit_lines(self):
        """Lines of the file sink's audit.ndjson ([] before it exists)."""
        path = os.path.join(self.tmp, "events", "audit.ndjson")
        if not os.path.exists(path):
            return []
        with open(path) as f:
            return f.read().splitlines()

    def cw_messages(self):
        """Messages of the audit stream in CloudWatch Logs ([] while it does not exist)."""
        out = subprocess.run([self.py, os.path.join(harness.HERE, "aws_sinks_boto.py"),
                              self.endpoint, REGION, self.creds["access_key_id"],
                              self.creds["secret_access_key"], "read-logs", GROUP, STREAM],
                             capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            return []  # the group may not exist yet
        return [e["message"] for e in json.loads(out.stdout)]

    def test_audit_reaches_cloudwatch_across_an_outage(self):
        up = harness.EchoServer()
        self.addCleanup(up.close)
        cfg = self.cw_config(up, backoff_max_ms=1000)
        port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        d = self.daemon(cfg).start(env=self.env)

        self.connect(port, 3)
        harness.wait_for(lambda: len(self.audit_lines()) >= 7, "7 audit lines in the file")
        harness.wait_for(lambda: set(self.audit_lines()) <= set(self.cw_messages()),
                         "the first audit events in CloudWatch")
        # Outage: moto stops answering; events keep coming and must wait.
        self.moto.send_signal(signal.SIGSTOP)
        self.connect(port, 4)
        harness.wait_for(lambda: len(self.audit_lines()) >= 15, "15 audit lines in the file")
        harness.wait_for(lambda: d.status()["sinks"][1]["retried"] > 0 or
                         d.status()["sinks"][0]["retried"] > 0, "a retried delivery in /status")
        st = {s["name"]: s for s in d.status()["sinks"]}
        self.assertGreater(st["cw"]["retried"], 0)
        self.assertIsNotNone(st["cw"]["last_error"])
        self.assertGreater(st["cw"]["lag_bytes"], 0)
        self.moto.send_signal(signal.SIGCONT)
        harness.wait_for(lambda: set(self.audit_lines()) <= set(self.cw_messages()),
                         "every audit event in CloudWatch after the outage")
        # SIGTERM: the final digest is flushed to both sinks before exit.
        self.assertEqual(d.stop(), 0)
        lines = self.audit_lines()
        self.assertIn('"AuditDigest"', lines[-1])
        cw = self.cw_messages()
        self.assertLessEqual(set(lines), set(cw))
        self.assertEqual(len(set(cw)), len(lines), "CloudWatch holds nothing but the audit lines")
        # At-least-once: a request that timed out in the outage may have landed
        # too; a duplicate is the same line (same eventID), which readers drop.
        events = [json.loads(m) for m in set(cw)]
        self.assertEqual(sum(e["eventName"] == "ConnectionClosed" for e in events), 7)

    def test_audit_reaches_cloudwatch_across_a_restart_of_the_endpoint(self):
        up = harness.EchoServer()
        self.addCleanup(up.close)
        cfg = self.cw_config(up, backoff_max_ms=500)
        cfg["audit"]["digest_interval_s"] = 3600  # no timed events between read-back and kill
        port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        cred_file = os.path.join(self.tmp, "aws-credentials")

        def write_credentials():
            with open(cred_file + ".tmp", "w") as f:
                f.write("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                        % (self.creds["access_key_id"], self.creds["secret_access_key"]))
            os.replace(cred_file + ".tmp", cred_file)
        write_credentials()
        env = dict(os.environ, AWS_SHARED_CREDENTIALS_FILE=cred_file,
                   AWS_CONFIG_FILE=os.path.join(self.tmp, "no-aws-config"),
                   AWS_EC2_METADATA_DISABLED="true")
        for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                  "AWS_PROFILE"):
            env.pop(k, None)
        d = self.daemon(cfg).start(env=env)

        def cw_delivered():
            return {s["name"]: s for s in d.status()["sinks"]}["cw"]["delivered"]

        self.connect(port, 3)
        harness.wait_for(lambda: len(self.audit_lines()) >= 7, "7 audit lines in the file")
        harness.wait_for(lambda: set(self.audit_lines()) <= set(self.cw_messages()),
                         "the first audit events in CloudWatch")
        # What the first server holds, read just before it is killed; the
        # sink's delivered counter proves nothing reached it in between.
        delivered = cw_delivered()
        before = set(self.cw_messages())
        self.moto.kill()
        self.moto.wait()
        self.assertEqual(cw_delivered(), delivered, "a delivery slipped in before the kill")
        self.assertTrue(before)

        # Outage: connections refused; events keep coming and wait in the spool.
        self.connect(port, 4)
        harness.wait_for(lambda: len(self.audit_lines()) >= 15, "15 audit lines in the file")
        retried = {s["name"]: s for s in d.status()["sinks"]}["cw"]["retried"]
        harness.wait_for(lambda: {s["name"]: s for s in d.status()["sinks"]}["cw"]["retried"]
                         >= retried + 3, "three more retry rounds while the endpoint is down")
        st = {s["name"]: s for s in d.status()["sinks"]}["cw"]
        self.assertIsNotNone(st["last_error"])
        self.assertGreater(st["lag_bytes"], 0)

        # A new, empty server on the same port, with new credentials. The
        # sidecar is paused meanwhile only because moto's unauthenticated setup
        # budget (INITIAL_NO_AUTH_ACTION_COUNT) counts every request, the
        # sidecar's retries included.
        d.proc.send_signal(signal.SIGSTOP)
        try:
            self.start_moto()
            write_credentials()
        finally:
            d.proc.send_signal(signal.SIGCONT)
        harness.wait_for(lambda: set(self.audit_lines()) - before <= set(self.cw_messages()),
                         "every audit event of the outage in the new CloudWatch")
        self.assertEqual(d.stop(), 0)
        lines = self.audit_lines()
        self.assertIn('"AuditDigest"', lines[-1])
        after = set(self.cw_messages())
        self.assertEqual(before | after, set(lines),
                         "CloudWatch (both servers) holds every audit line and nothing else")
        events = [json.loads(m) for m in before | after]
        self.assertEqual(sum(e["eventName"] == "ConnectionClosed" for e in events), 7)
        with open(d.log_path) as f:
            log = f.read()
        self.assertIn("credentials rejected", log)


if __name__ == "__main__":
    unittest.main()
