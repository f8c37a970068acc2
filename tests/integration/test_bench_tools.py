"""Integration test of the `make bench` tools (tests/bench/bs_bench_sink.c, bs_bench_load.c).

The benchmark's numbers are only as good as these tools, so they are checked here with
real sockets: the sink counts exactly the bytes the load generator reports, the echo
server returns every byte (also for requests larger than its buffer), idle mode holds its
connections until SIGTERM, TLS goes through a real stunnel4 with certificate verification,
and bad input (bad options, refused connection, untrusted server certificate, bulk against
a peer that never reads) fails with a clear message and a non-zero exit, never a result.
Runs with Debian's /usr/bin/python3; needs BS_BUILD_DIR and BS_SOURCE_DIR (set by ctest).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import unittest

BUILD = os.environ.get("BS_BUILD_DIR", "build")
SOURCE = os.environ.get("BS_SOURCE_DIR", ".")
LOAD = os.path.join(BUILD, "bs_bench_load")
SINK = os.path.join(BUILD, "bs_bench_sink")
TIMEOUT = 60  # generous: only against hangs


def free_port():
    """A loopback TCP port that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    """Wait until something accepts on 127.0.0.1:port; fail if proc exits first."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{what} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{what} not listening on {port}")


def result_fields(line):
    """The key=value pairs of a RESULT/READY line as a dict of strings."""
    return dict(re.findall(r"(\w+)=([0-9.]+)", line))


class Sink:
    """A bs_bench_sink process in `mode`; stop() returns its final byte counts."""

    def __init__(self, mode):
        self.proc = subprocess.Popen([SINK, "--mode", mode], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.match(r"PORT (\d+)", line)
        if not m:
            self.proc.kill()
            raise AssertionError(f"sink did not announce its port: {line!r}")
        self.port = int(m.group(1))

    def open_sockets(self):
        """How many sockets the sink process holds now (its listener is one)."""
        fd_dir = "/proc/%d/fd" % self.proc.pid
        n = 0
        for fd in os.listdir(fd_dir):
            try:
                n += os.readlink(os.path.join(fd_dir, fd)).startswith("socket:")
            except OSError:
                pass  # closed while we looked
        return n

    def stop(self):
        """SIGTERM the sink; return {'bytes_in': n, 'bytes_out': n, 'conns': n}."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=TIMEOUT)
        m = re.search(r"bytes_in (\d+) bytes_out (\d+) conns (\d+)", err)
        if not m:
            raise AssertionError(f"sink printed no counts: {err!r}")
        return {"bytes_in": int(m.group(1)), "bytes_out": int(m.group(2)), "conns": int(m.group(3))}

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def run_load(*args):
    """Run bs_bench_load to completion; return (exit code, stdout, stderr)."""
    p = subprocess.run([LOAD, *map(str, args)], capture_output=True, text=True, timeout=TIMEOUT)
    return p.returncode, p.stdout, p.stderr


class PlaintextTools(unittest.TestCase):
    def setUp(self):
        self.sinks = []

    def tearDown(self):
        for s in self.sinks:
            s.kill()

    def sink(self, mode):
        s = Sink(mode)
        self.sinks.append(s)
        return s

    def test_bulk_bytes_match_the_sink(self):
        s = self.sink("sink")
        rc, out, err = run_load("--mode", "bulk", "--port", s.port, "--conns", 4, "--seconds", 0.5,
                                "--chunk", 1000)
        self.assertEqual(rc, 0, err)
        r = result_fields(out)
        self.assertGreater(int(r["bytes"]), 0)
        self.assertGreater(float(r["mbps"]), 0)
        # The load generator has closed its connections, but the sink may still be
        # reading the last bytes from the socket buffers: it closes each connection
        # once it reads EOF, so wait until it holds no socket but its listener.
        deadline = time.monotonic() + TIMEOUT
        while s.open_sockets() > 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(s.open_sockets(), 1, "the sink never read EOF on every connection")
        counts = s.stop()
        self.assertEqual(counts["bytes_in"], int(r["bytes"]))
        self.assertEqual(counts["conns"], 4)

    def test_rtt_small_and_larger_than_the_echo_buffer(self):
        s = self.sink("echo")
        for size in (1024, 200000):
            rc, out, err = run_load("--mode", "rtt", "--port", s.port, "--conns", 2, "--size", size,
                                    "--seconds", 0.5, "--warmup", 0.1)
            self.assertEqual(rc, 0, err)
            r = result_fields(out)
            self.assertGreater(int(r["samples"]), 0)
            self.assertLessEqual(int(r["p50_us"]), int(r["p99_us"]))
            self.assertLessEqual(int(r["p99_us"]), int(r["max_us"]))
        counts = s.stop()
        self.assertEqual(counts["bytes_in"], counts["bytes_out"])

    def test_idle_holds_connections_until_sigterm(self):
        s = self.sink("echo")
        p = subprocess.Popen([LOAD, "--mode", "idle", "--port", str(s.port), "--conns", "200",
                              "--ping", "1024", "--hold", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            self.assertTrue(line.startswith("READY conns=200"), line)
            self.assertIsNone(p.poll())  # still holding
            p.send_signal(signal.SIGTERM)
            out, err = p.communicate(timeout=TIMEOUT)
            self.assertEqual(p.returncode, 0, err)
            self.assertIn("RESULT mode=idle conns=200", out)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
        counts = s.stop()
        self.assertEqual(counts["conns"], 200)
        self.assertEqual(counts["bytes_in"], 200 * 1024)

    def test_bulk_against_a_peer_that_never_reads_fails_not_hangs(self):
        # A listener that accepts (kernel backlog) but never reads: writes stall once
        # the socket buffers are full, and the 15 s send timeout must end the run.
        with socket.socket() as ls:
            ls.bind(("127.0.0.1", 0))
            ls.listen(8)
            rc, out, err = run_load("--mode", "bulk", "--port", ls.getsockname()[1], "--seconds", 0.5)
        self.assertEqual(rc, 1)
        self.assertNotIn("RESULT", out)
        self.assertIn("timed out", err)

    def test_refused_connection(self):
        rc, out, err = run_load("--mode", "rtt", "--port", free_port(), "--seconds", 0.5)
        self.assertEqual(rc, 1)
        self.assertNotIn("RESULT", out)
        self.assertIn("Connection refused", err)

    def test_bad_usage(self):
        cases = [
            (["--mode", "bulk"], "--port"),
            (["--mode", "nope", "--port", "1"], "--mode is bulk, rtt or idle"),
            (["--mode", "bulk", "--port", "70000"], "--port wants an integer"),
            (["--mode", "bulk", "--port", "1", "--seconds", "-1"], "--seconds wants seconds"),
            (["--mode", "bulk", "--port", "1", "--conns", "1000"], "one thread per connection"),
            (["--mode", "bulk", "--port", "1", "--tls"], "--tls needs --ca"),
            (["--mode", "bulk", "--port", "1", "--bogus", "x"], "unknown option"),
        ]
        for args, msg in cases:
            with self.subTest(args=args):
                rc, out, err = run_load(*args)
                self.assertEqual(rc, 2)
                self.assertIn(msg, err)
        p = subprocess.run([SINK, "--mode", "drain"], capture_output=True, text=True, timeout=TIMEOUT)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--mode is sink or echo", p.stderr)


@unittest.skipUnless(shutil.which("stunnel4"), "stunnel4 not installed (make deps)")
class TlsThroughStunnel(unittest.TestCase):
    """TLS mode against a real TLS terminator (stunnel4) in front of the echo sink."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bs-bench-tools-")
        subprocess.run([os.path.join(SOURCE, "certs", "make-dev-certs.sh"), cls.tmp], check=True,
                       capture_output=True, timeout=TIMEOUT)
        cls.sink = Sink("echo")
        cls.port = free_port()
        conf = os.path.join(cls.tmp, "stunnel.conf")
        with open(conf, "w") as f:
            f.write(f"foreground = yes\npid =\n[echo]\naccept = 127.0.0.1:{cls.port}\n"
                    f"connect = 127.0.0.1:{cls.sink.port}\ncert = {cls.tmp}/server.crt\n"
                    f"key = {cls.tmp}/server.key\nsslVersionMin = TLSv1.2\n")
        cls.stunnel = subprocess.Popen(["stunnel4", conf], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        try:
            wait_listening(cls.port, cls.stunnel, "stunnel4")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if cls.stunnel.poll() is None:
            cls.stunnel.kill()
        cls.stunnel.wait()
        cls.sink.kill()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tls(self, *extra, ca="ca.crt"):
        return ["--tls", "--ca", os.path.join(self.tmp, ca), *extra]

    def test_rtt_tls13_and_tls12(self):
        # stunnel 5.68 offers no X25519 for TLS 1.2 (P-256 only), hence the group there.
        for extra in (["--tls-version", "1.3"],
                      ["--tls-version", "1.2", "--groups", "P-256",
                       "--ciphers", "ECDHE-ECDSA-AES128-GCM-SHA256"]):
            with self.subTest(extra=extra):
                rc, out, err = run_load("--mode", "rtt", "--port", self.port, "--seconds", 0.3,
                                        "--warmup", 0, *self.tls(*extra))
                self.assertEqual(rc, 0, err)
                self.assertGreater(int(result_fields(out)["samples"]), 0)

    def test_idle_tls(self):
        p = subprocess.Popen([LOAD, "--mode", "idle", "--port", str(self.port), "--conns", "20",
                              "--ping", "100", "--hold", "0", *self.tls()],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=TIMEOUT)
        self.assertEqual(p.returncode, 0, err)
        self.assertIn("READY conns=20", out)

    def test_untrusted_server_certificate_is_refused(self):
        rc, out, err = run_load("--mode", "rtt", "--port", self.port, "--seconds", 0.3,
                                *self.tls(ca="other-ca.crt"))
        self.assertEqual(rc, 1)
        self.assertNotIn("RESULT", out)
        self.assertIn("certificate verify failed", err)

    def test_wrong_server_name_is_refused(self):
        rc, out, err = run_load("--mode", "rtt", "--port", self.port, "--seconds", 0.3,
                                *self.tls("--servername", "kafka.example.com"))
        self.assertEqual(rc, 1)
        self.assertIn("certificate verify failed", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
