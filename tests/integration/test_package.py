"""The Debian package, installed on this machine: `make package`'s .deb is
built with cpack from this build tree, installed with dpkg -i, checked (the
`brokerside` system user, directory ownership, the conffile, the man page, the
unit: `systemd-analyze verify` and its `security` exposure score), the
installed binary is run as the brokerside user with the packaged config
adjusted to test ports (TLS, in front of a real Kafka broker, encryption, audit; READY=1 through
a socket standing in for systemd; kcat produces and consumes through it), a
reinstall keeps the edited conffile, and a purge removes everything but the
keys an admin put into /etc/brokerside.

Needs root (dpkg): the CI runs as root. As another user it uses `sudo -n`, and
fails (never skips) if that is not possible.
"""

import grp
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_systemd import FakeSystemd  # noqa: E402

PKG = "brokerside"
UNIT = "/lib/systemd/system/brokerside.service"
ETC = "/etc/brokerside"
CONF = ETC + "/brokerside.json"
SBIN = "/usr/sbin/brokerside"
SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]


def sh(argv, check=True, **kw):
    """Run argv (as root); returns the CompletedProcess with text output."""
    r = subprocess.run(SUDO + list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, timeout=300, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(argv), r.returncode, r.stdout,
                                                      r.stderr))
    return r


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", PKG], stdout=subprocess.PIPE,
                       stderr=subprocess.DEVNULL, text=True)
    return r.returncode == 0 and "installed" in r.stdout


def build_deb():
    """cpack over the current build tree; returns the .deb path."""
    r = subprocess.run(["cpack", "-G", "DEB"], cwd=harness.BUILD_DIR, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=600)
    m = re.search(r"package: (\S+\.deb) generated", r.stdout)
    if r.returncode != 0 or not m:
        raise AssertionError("cpack failed:\n" + r.stdout)
    return m.group(1)


class PackageTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        if SUDO and subprocess.run(["sudo", "-n", "true"], stderr=subprocess.DEVNULL).returncode:
            self.fail("installing a package needs root (or passwordless sudo)")
        if installed():  # a leftover of an interrupted run
            sh(["dpkg", "--purge", PKG])

    def purge_if_installed(self):
        if installed():
            sh(["dpkg", "--purge", PKG], check=False)
        for extra in ("tls", "master.key", "audit.key"):
            p = os.path.join(ETC, extra)
            if os.path.isdir(p):
                shutil.rmtree(p)
            elif os.path.exists(p):
                os.unlink(p)
        if os.path.isdir(ETC) and not os.listdir(ETC):
            os.rmdir(ETC)

    def test_install_run_purge(self):
        deb = build_deb()
        self.addCleanup(self.purge_if_installed)
        sh(["dpkg", "-i", deb])
        self.assertTrue(installed())

        # -- what the package put in place
        pw = pwd.getpwnam("brokerside")
        self.assertLess(pw.pw_uid, 1000, "a system user")
        self.assertEqual(pw.pw_dir, "/var/lib/brokerside")
        self.assertEqual(pw.pw_shell, "/usr/sbin/nologin")
        gid = grp.getgrnam("brokerside").gr_gid
        for d in ("/var/lib/brokerside", "/var/log/brokerside"):
            st = os.stat(d)
            self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, gid, 0o750), d)
        st = os.stat(CONF)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)), (0, gid, 0o640))
        conffiles = sh(["dpkg-query", "-W", "-f=${Conffiles}", PKG]).stdout
        self.assertIn(CONF, conffiles)
        self.assertEqual(sh([SBIN, "--version"]).stdout.strip(), "brokerside 0.1.0")
        man = subprocess.run(["zcat", "/usr/share/man/man8/brokerside.8.gz"], stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        self.assertIn('.TH BROKERSIDE "8"', man)
        self.assertIn("check\\-config", man)      # from --help: the same source
        self.assertIn("NOTIFY_SOCKET", man)       # from packaging/brokerside.h2m
        self.assertTrue(os.path.exists("/usr/share/doc/brokerside/examples/fleet-member-tls.json"))

        # -- the unit: systemd-analyze verify, and how exposed it is
        man_opt = [] if shutil.which("man") else ["--man=no"]
        r = sh(["systemd-analyze", "verify"] + man_opt + [UNIT], check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = sh(["systemd-analyze", "security", "--offline=true", UNIT], check=False)
        m = re.search(r"Overall exposure level for brokerside.service: ([0-9.]+) (\S+)", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        sys.stderr.write("systemd-analyze security: %s %s\n" % (m.group(1), m.group(2)))
        self.assertLessEqual(float(m.group(1)), 2.0, "the unit should rate OK or better:\n" + r.stdout)
        unit = open(UNIT).read()
        for line in ("Type=notify", "ExecReload=/bin/kill -HUP $MAINPID", "WatchdogSec=",
                     "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "PrivateTmp=yes", "CapabilityBoundingSet=\n", "SystemCallFilter=@system-service",
                     "MemoryDenyWriteExecute=yes", "RestrictAddressFamilies=", "LimitNOFILE=65536",
                     "ReadWritePaths=/var/lib/brokerside /var/log/brokerside", "User=brokerside"):
            self.assertIn(line, unit)

        # -- the packaged config, adjusted to test ports, run by the installed binary
        kc = self.kafka(nodes=1, sidecar=False)   # real Apache Kafka, advertising itself
        kc.reset_topics(["pkg:1"])
        port, admin = harness.free_port(), harness.free_port()
        tls = os.path.join(ETC, "tls")
        os.makedirs(tls, exist_ok=True)
        os.chown(tls, 0, gid)
        os.chmod(tls, 0o750)
        for src, name in ((self.certs["server_crt"], "server.crt"), (self.certs["server_key"], "server.key")):
            shutil.copy(src, os.path.join(tls, name))
            os.chown(os.path.join(tls, name), pw.pw_uid, gid)
            os.chmod(os.path.join(tls, name), 0o600)
        sh([SBIN, "keygen", ETC + "/master.key"])
        fd = os.open(ETC + "/audit.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        for k in ("master.key", "audit.key"):
            os.chown(os.path.join(ETC, k), pw.pw_uid, gid)
        text = open(CONF).read()
        for old, new in (("0.0.0.0:9094", "127.0.0.1:%d" % port),
                         ("kafka-1.example.com:9094", "localhost:%d" % port),
                         ("127.0.0.1:9092", kc.node(1).client),
                         ("127.0.0.1:9644", "127.0.0.1:%d" % admin),
                         ('"workers": 0', '"workers": 1')):
            self.assertIn(old, text)
            text = text.replace(old, new)
        with open(CONF, "w") as f:
            f.write(text)
        r = sh(["setpriv", "--reuid=brokerside", "--regid=brokerside", "--init-groups",
                SBIN, "--check-config", CONF], check=False)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertNotIn("no address to announce", r.stderr)
        self.assertNotIn("encryption at rest is OFF", r.stderr)

        sysd = FakeSystemd()
        self.addCleanup(sysd.close)
        env = dict(os.environ, NOTIFY_SOCKET=sysd.name)
        env.pop("JOURNAL_STREAM", None)
        proc = self.proc(SUDO + ["setpriv", "--reuid=brokerside", "--regid=brokerside", "--init-groups",
                                 SBIN, "--config", CONF], "installed", env=env, cwd="/")
        sysd.next(lambda f: f.get("READY") == "1", what="READY=1 from the installed daemon")
        boot = "127.0.0.1:%d" % port
        r = harness.kcat(boot, ["-L"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("broker 1 at localhost:%d" % port, r.stdout.decode())   # zero-config
        msgs = ["pkg-%d" % i for i in range(10)]
        harness.kcat_produce(boot, "pkg", msgs, self.certs)
        self.assertEqual(sorted(harness.kcat_consume(boot, "pkg", len(msgs), self.certs)), sorted(msgs))
        code, body = harness.http_get("http://127.0.0.1:%d/readyz" % admin)
        self.assertEqual(code, 200, body)
        spool = "/var/lib/brokerside/spool"
        self.assertEqual(os.stat(spool).st_uid, pw.pw_uid, "the spool belongs to the service user")
        proc.send_signal(signal.SIGTERM)
        sysd.next(lambda f: f.get("STOPPING") == "1", what="STOPPING=1")
        self.assertEqual(proc.wait(90), 0)
        events = "/var/log/brokerside/events"
        self.assertTrue(os.path.isdir(events) and os.listdir(events), "audit events were written")

        # -- a reinstall keeps the edited conffile
        sh(["dpkg", "-i", deb])
        self.assertIn("127.0.0.1:%d" % port, open(CONF).read())

        # -- purge: everything of the package goes; the admin's keys stay
        sh(["dpkg", "--purge", PKG])
        self.assertFalse(installed())
        for gone in (SBIN, UNIT, CONF, "/var/lib/brokerside", "/var/log/brokerside",
                     "/usr/share/man/man8/brokerside.8.gz", "/usr/share/doc/brokerside"):
            self.assertFalse(os.path.exists(gone), gone + " is left after purge")
        self.assertRaises(KeyError, pwd.getpwnam, "brokerside")
        self.assertRaises(KeyError, grp.getgrnam, "brokerside")
        self.assertTrue(os.path.exists(ETC + "/master.key"), "purge must not delete the master key")
        shutil.rmtree(tls)
        os.unlink(ETC + "/master.key")
        os.unlink(ETC + "/audit.key")
        os.rmdir(ETC)


if __name__ == "__main__":
    harness.main()
