"""`brokerside --check-config` against careless and hostile config files.

Each case used to pass (or hang) and now fails with exit 1 and a message
naming the problem: a FIFO as the config or as a certificate, a malformed
local master key file (which only failed at start), a file sink that is the
spool through "/." , ".." or a symlink, "\\u0000" inside a string (silently
truncated), an endpoint URL with user:password@ (the password was printed),
a 1e-300 s timeout; and 60,000 keys in one object are checked quickly
enough to finish (the duplicate check was quadratic)."""

import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class CheckConfigHardening(harness.IntegrationTest):

    def base(self, **extra):
        cfg = {"listeners": [{"name": "a", "bind": "127.0.0.1:%d" % harness.free_port(),
                              "upstream": "127.0.0.1:9092", "protocol": "kafka"}],
               "admin": None}
        cfg.update(extra)
        return cfg

    def check(self, cfg_or_text, name="c.json", timeout=30):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(cfg_or_text if isinstance(cfg_or_text, str) else json.dumps(cfg_or_text))
        return self.check_path(path, timeout)

    def check_path(self, path, timeout=30):
        r = subprocess.run([harness.BROKERSIDE, "--check-config", path], capture_output=True,
                           text=True, timeout=timeout)
        return r.returncode, r.stdout + r.stderr

    def test_fifos_refused_without_hanging(self):
        fifo = os.path.join(self.tmp, "fifo.json")
        os.mkfifo(fifo)
        rc, out = self.check_path(fifo, timeout=20)
        self.assertEqual(rc, 1, out)
        self.assertIn("not a regular file", out)
        cert = os.path.join(self.tmp, "cert.pem")
        os.mkfifo(cert)
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % harness.free_port(),
                                   "127.0.0.1:9092", cert=cert)
        rc, out = self.check(self.base(listeners=[lst]), timeout=20)
        self.assertEqual(rc, 1, out)
        self.assertIn("not a regular file", out)

    def test_malformed_master_key(self):
        key = os.path.join(self.tmp, "master.key")
        fd = os.open(key, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, b"not a key at all\n")
        os.close(fd)
        cfg = self.base(encryption={"kms": {"type": "local", "key_file": key},
                                    "topics": [{"match": "*", "key": "k"}]})
        rc, out = self.check(cfg)
        self.assertEqual(rc, 1, out)
        self.assertIn("encryption.kms.key_file", out)
        # a real key passes
        good = os.path.join(self.tmp, "good.key")
        r = harness.run([harness.BROKERSIDE, "keygen", good])
        self.assertEqual(r.returncode, 0, r.stderr)
        cfg["encryption"]["kms"]["key_file"] = good
        rc, out = self.check(cfg)
        self.assertEqual(rc, 0, out)

    def test_sink_dir_is_the_spool_by_another_name(self):
        spool = os.path.join(self.tmp, "spool")
        os.makedirs(spool)
        link = os.path.join(self.tmp, "link")
        os.symlink(spool, link)
        os.makedirs(os.path.join(self.tmp, "x"))
        for d in (spool + "/.", link, os.path.join(self.tmp, "x", "..", "spool")):
            cfg = self.base(spool={"dir": spool}, sinks={"f": {"type": "file", "dir": d}},
                            audit={"sinks": ["f"]})
            rc, out = self.check(cfg)
            self.assertEqual(rc, 1, "%s: %s" % (d, out))
            self.assertIn("is the spool directory", out)

    def test_nul_in_string(self):
        text = json.dumps(self.base()).replace('"name": "a"', '"name": "a\\u0000b"')
        self.assertIn("\\u0000", text)
        rc, out = self.check(text)
        self.assertEqual(rc, 1, out)
        self.assertIn("u0000", out)
        # an escaped backslash followed by u0000 is an ordinary string
        text = json.dumps(self.base()).replace('"name": "a"', '"name": "a\\\\u0000b"')
        rc, out = self.check(text)
        self.assertNotIn("NUL character", out)

    def test_endpoint_password_not_printed(self):
        cfg = self.base(aws={"region": "eu-west-1"}, spool={"dir": os.path.join(self.tmp, "sp")},
                        sinks={"cw": {"type": "cloudwatch_logs", "log_group": "g",
                                      "endpoint": "https://admin:hunter2@logs.example.com"}},
                        audit={"sinks": ["cw"]})
        rc, out = self.check(cfg)
        self.assertEqual(rc, 1, out)
        self.assertIn("user information", out)
        self.assertNotIn("hunter2", out)

    def test_tiny_timeout(self):
        rc, out = self.check(self.base(limits={"handshake_timeout_s": 1e-300}))
        self.assertEqual(rc, 1, out)
        self.assertIn("limits.handshake_timeout_s", out)

    def test_many_keys(self):
        limits = {"k%d" % i: 1 for i in range(60000)}
        rc, out = self.check(self.base(limits=limits), timeout=60)
        self.assertEqual(rc, 1)
        self.assertIn("unknown key", out)
        dup = json.dumps(self.base()).replace('"admin": null', '"admin": null, "admin": null')
        rc, out = self.check(dup)
        self.assertEqual(rc, 1, out)
        self.assertIn("duplicate key", out)


if __name__ == "__main__":
    harness.main()
