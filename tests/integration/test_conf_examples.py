"""Every example configuration in conf/ (one per common deployment shape)
passes `brokerside --check-config --strict`: valid, its TLS material builds,
its keys load, and no warning an operator would regret.

The examples name absolute paths of the package layout (/etc/brokerside,
/var/lib/brokerside, /var/log/brokerside); each is checked in a tree of its
own where those prefixes point into a temp dir holding freshly made dev
certificates, a master key from `brokerside keygen` and an audit HMAC key.
The one warning that depends on the machine rather than the file (the
open-file limit of the checking process against limits.max_connections, which
the unit's LimitNOFILE settles) is tolerated when this machine's hard limit is
below what the example needs; every other warning fails the test.
"""

import os
import resource
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

SHAPES = ("single-broker", "fleet-member-tls", "encryption-aws-kms", "cloudwatch", "behind-nlb")
FD_WARNING = "open files (two per connection)"


class ConfExamplesTest(harness.IntegrationTest):

    def tree(self):
        """A root with etc/brokerside/{tls/*,master.key,audit.key}, var/lib, var/log."""
        root = os.path.join(self.tmp, "root")
        etc = os.path.join(root, "etc", "brokerside")
        tls = os.path.join(etc, "tls")
        os.makedirs(tls)
        os.makedirs(os.path.join(root, "var", "lib", "brokerside"))
        os.makedirs(os.path.join(root, "var", "log", "brokerside"))
        c = self.certs
        for src, name in ((c["server_crt"], "server.crt"), (c["server_key"], "server.key"),
                          (c["ca_crt"], "clients-ca.crt"), (c["ca_crt"], "broker-ca.crt"),
                          (c["client_crt"], "to-broker.crt"), (c["client_key"], "to-broker.key")):
            shutil.copy(src, os.path.join(tls, name))
            os.chmod(os.path.join(tls, name), 0o600)
        r = harness.run([harness.BROKERSIDE, "keygen", os.path.join(etc, "master.key")])
        self.assertEqual(r.returncode, 0, r.stderr)
        fd = os.open(os.path.join(etc, "audit.key"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        return root

    def check(self, shape):
        root = self.tree()
        with open(os.path.join(harness.SOURCE_DIR, "conf", shape + ".json")) as f:
            text = f.read()
        for prefix in ("/etc/brokerside", "/var/lib/brokerside", "/var/log/brokerside"):
            text = text.replace(prefix, root + prefix)
        path = os.path.join(root, "etc", "brokerside", shape + ".json")
        with open(path, "w") as f:
            f.write(text)
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        r = harness.run([harness.BROKERSIDE, "--check-config", "--strict", path], env=env)
        out = r.stdout.decode() if isinstance(r.stdout, bytes) else r.stdout
        err = r.stderr.decode() if isinstance(r.stderr, bytes) else r.stderr
        if r.returncode == 0:
            self.assertIn(path + ": OK", out)
            return
        # Refused: acceptable only for the machine's open-file limit.
        problems = [ln for ln in err.splitlines() if ln.startswith("error: ")]
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        self.assertTrue(problems and all(FD_WARNING in p for p in problems),
                        "%s: --check-config --strict failed:\n%s%s" % (shape, out, err))
        self.assertLess(hard, 2 * 10000 + 100, err)
        r = harness.run([harness.BROKERSIDE, "--check-config", path], env=env)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_single_broker(self):
        self.check("single-broker")

    def test_fleet_member_tls(self):
        self.check("fleet-member-tls")

    def test_encryption_aws_kms(self):
        self.check("encryption-aws-kms")

    def test_cloudwatch(self):
        self.check("cloudwatch")

    def test_behind_nlb(self):
        self.check("behind-nlb")

    def test_every_example_is_checked(self):
        found = sorted(f[:-5] for f in os.listdir(os.path.join(harness.SOURCE_DIR, "conf"))
                       if f.endswith(".json") and f != "brokerside.json")
        # brokerside.json (the dev demo) is checked by test_events_cli
        self.assertEqual(found, sorted(SHAPES))


if __name__ == "__main__":
    harness.main()
