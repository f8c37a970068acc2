"""Integration test of the `audit verify` command-line behaviour.

tests/tools/audit_tool writes real hash-chained, signed audit files (the same
library code the daemon uses) and runs bs_audit_verify_main, which the lead
wires into `brokerside audit verify`. Checks exit codes and the report lines
(`FILE:LINE: event sequence N: KIND (...)`) for intact files, each kind of
tampering, HMAC and Ed25519 keys (Ed25519 keys made by the openssl CLI),
restarted chains, and usage/I/O errors.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

BUILD = os.environ.get("BS_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))
TOOL = os.path.join(BUILD, "audit_tool")
TIMEOUT = 60  # seconds; only to avoid hangs


def run(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


class AuditVerifyCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="bs_audit_cli_")
        self.key = os.path.join(self.dir, "hmac.key")
        fd = os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, os.urandom(32))
        os.close(fd)
        self.log = os.path.join(self.dir, "audit.ndjson")
        rc, _, err = run("write", self.log, "--key", self.key, "--events", "30", "--digest-every", "6")
        self.assertEqual(rc, 0, err)
        with open(self.log) as f:
            self.lines = f.read().splitlines()

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, lines, name="t.ndjson", tail="\n"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + tail)
        return path

    def verify(self, *files, key=None):
        return run("verify", "--key", key or self.key, *files)

    def index_of(self, pred):
        for i, line in enumerate(self.lines):
            if pred(json.loads(line)):
                return i
        self.fail("no such line")

    def test_intact_file_and_schema(self):
        rc, out, _ = self.verify(self.log)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"^OK: %d line\(s\), 1 chain\(s\), \d+ digest\(s\) verified, 0 warning\(s\)$"
                         % len(self.lines))
        events = [json.loads(line) for line in self.lines]
        self.assertEqual(events[0]["eventName"], "AuditChainStart")
        self.assertEqual(events[0]["previousHash"], "0" * 64)
        self.assertEqual(events[-1]["eventName"], "AuditDigest")
        self.assertEqual([e["sequence"] for e in events], list(range(len(events))))
        self.assertEqual(len({e["eventID"] for e in events}), len(events))
        names = {e["eventName"] for e in events}
        self.assertTrue({"CreateTopics", "Produce", "ConnectionClosed", "AuditDigest"} <= names)

    def test_edited_event(self):
        i = self.index_of(lambda e: e["eventName"] == "DescribeConfigs")
        lines = list(self.lines)
        lines[i] = lines[i].replace('"orders-', '"ordert-', 1)
        path = self.write(lines)
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:%d: event sequence %d: edited (hash mismatch" % (path, i + 1, i), out)

    def test_removed_event(self):
        i = self.index_of(lambda e: e["eventName"] == "Fetch")
        lines = self.lines[:i] + self.lines[i + 1:]
        path = self.write(lines)
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:%d: event sequence %d: removed (sequence gap: %d..%d missing)"
                      % (path, i + 1, i + 1, i, i), out)

    def test_swapped_events(self):
        i = self.index_of(lambda e: e["eventName"] == "CreateAcls")
        lines = list(self.lines)
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
        path = self.write(lines)
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:%d: event sequence %d: reordered" % (path, i + 1, i + 1), out)

    def test_inserted_event(self):
        lines = list(self.lines)
        lines.insert(10, self.lines[3])
        path = self.write(lines)
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:11: event sequence 3: inserted" % path, out)

    def test_truncated_file(self):
        path = self.write(self.lines, tail="")
        with open(path, "r+") as f:
            f.truncate(os.path.getsize(path) - 20)
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:%d: malformed (truncated: last line has no newline)" % (path, len(self.lines)), out)
        self.assertIn("unsealed", out)

    def test_unsealed_tail_warns_and_strict_fails(self):
        path = self.write(self.lines[:-1])  # the final digest gone
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 0, out)
        self.assertIn("warning:", out)
        self.assertIn("after the last digest are unsealed", out)
        rc, _, _ = run("verify", "--strict", "--key", self.key, path)
        self.assertEqual(rc, 1)

    def test_edited_digest(self):
        i = self.index_of(lambda e: e["eventName"] == "AuditDigest")
        d = json.loads(self.lines[i])
        sig = d["digest"]["signature"]
        lines = list(self.lines)
        lines[i] = lines[i].replace(sig, ("0" if sig[0] != "0" else "1") + sig[1:])
        path = self.write(lines)
        rc, out, _ = self.verify(path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:%d: event sequence %d: bad signature" % (path, i + 1, i), out)

    def test_wrong_key_and_no_key(self):
        other = os.path.join(self.dir, "other.key")
        fd = os.open(other, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, os.urandom(40))
        os.close(fd)
        rc, out, _ = self.verify(self.log, key=other)
        self.assertEqual(rc, 1)
        self.assertIn("bad signature", out)
        rc, out, _ = run("verify", self.log)
        self.assertEqual(rc, 0)
        self.assertIn("digest signatures not checked: no key given", out)

    def test_key_file_permissions(self):
        os.chmod(self.key, 0o644)
        rc, out, err = self.verify(self.log)
        self.assertEqual(rc, 2)
        self.assertIn("grants group/other access", err)
        self.assertEqual(out, "")

    def test_ed25519_and_restart(self):
        priv = os.path.join(self.dir, "ed.pem")
        pub = os.path.join(self.dir, "ed.pub")
        subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", priv],
                       check=True, timeout=TIMEOUT, capture_output=True)
        os.chmod(priv, 0o600)
        subprocess.run(["openssl", "pkey", "-in", priv, "-pubout", "-out", pub],
                       check=True, timeout=TIMEOUT, capture_output=True)
        log = os.path.join(self.dir, "ed.ndjson")
        for _ in range(2):  # the second run is a restart: a new chain linked to the first
            rc, _, err = run("write", log, "--key", priv, "--events", "12", "--digest-every", "4")
            self.assertEqual(rc, 0, err)
        rc, out, _ = run("verify", "--public-key", pub, log)
        self.assertEqual(rc, 0, out)
        self.assertIn("2 chain(s)", out)
        with open(log) as f:
            lines = f.read().splitlines()
        starts = [i for i, line in enumerate(lines) if '"AuditChainStart"' in line]
        self.assertEqual(len(starts), 2)
        link = json.loads(lines[starts[1]])["previousChain"]
        self.assertEqual(link["lastSequence"], starts[1] - 1)
        self.assertTrue(link["sealed"])
        # Dropping the first chain's final digest breaks the link.
        del lines[starts[1] - 1]
        path = self.write(lines, "ed2.ndjson")
        rc, out, _ = run("verify", "--public-key", pub, path)
        self.assertEqual(rc, 1)
        self.assertIn("%s:%d: event sequence 0: broken chain link" % (path, starts[1]), out)
        # A public key is not a signing key: --key refuses it.
        rc, _, err = run("verify", "--key", pub, log)
        self.assertEqual(rc, 2)

    def test_usage_and_io_errors(self):
        self.assertEqual(run("verify")[0], 2)
        self.assertEqual(run("verify", "--frobnicate", self.log)[0], 2)
        self.assertEqual(run("verify", "--key")[0], 2)
        self.assertEqual(run("verify", "--key", self.key, "--public-key", self.key, self.log)[0], 2)
        rc, _, err = self.verify(os.path.join(self.dir, "missing.ndjson"))
        self.assertEqual(rc, 2)
        self.assertIn("No such file", err)
        rc, out, _ = run("verify", "--help")
        self.assertEqual(rc, 0)
        self.assertIn("usage: brokerside audit verify", out)

    def test_multiple_files_are_one_stream(self):
        half = len(self.lines) // 2
        a = self.write(self.lines[:half], "a.ndjson")
        b = self.write(self.lines[half:], "b.ndjson")
        rc, out, _ = self.verify(a, b)
        self.assertEqual(rc, 0, out)
        rc, out, _ = self.verify(b, a)  # wrong order
        self.assertEqual(rc, 1)
        self.assertTrue(re.search(r"b\.ndjson:1: warning: input starts in the middle", out), out)


if __name__ == "__main__":
    unittest.main()
