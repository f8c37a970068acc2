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
import sys
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


RUN_SH = os.path.join(SOURCE, "tests", "bench", "run.sh")


def run_bench(build, parts, out, extra_env=None, script=RUN_SH, timeout=300):
    """Run tests/bench/run.sh on `build` with BENCH_PARTS=parts, results into `out`;
    small sizes so the real tools finish in seconds. Returns the CompletedProcess."""
    env = dict(os.environ, BENCH_PARTS=parts, BENCH_OUT=out, BENCH_REPS="1",
               BENCH_SECONDS="1", BENCH_LOG_LINES="20000", BENCH_AUDIT_EVENTS="2000",
               BENCH_SINK_EVENTS="500")
    env.update(extra_env or {})
    return subprocess.run(["bash", script, build], capture_output=True, text=True,
                          env=env, timeout=timeout)


def write_exe(path, body):
    """Write an executable shell script."""
    with open(path, "w") as f:
        f.write("#!/bin/bash\n" + body)
    os.chmod(path, 0o755)


class RunShParts(unittest.TestCase):
    """The component parts of run.sh (crypto, logtail, audit, sinks) and the bench_part
    hook: real tools give measured verdicts; failing or lying tools, unknown part names
    and failing part scripts are reported, never turned into numbers or silently skipped."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bs-bench-runsh-")
        self.out = os.path.join(self.tmp, "results.md")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def results(self):
        with open(self.out) as f:
            return f.read()

    def test_unknown_part_and_bad_numbers_are_refused(self):
        for env, msg in (({"BENCH_PARTS": "crypto crpto"}, "unknown part 'crpto'"),
                         ({"BENCH_PARTS": " "}, "BENCH_PARTS is empty"),
                         ({"BENCH_REPS": "0"}, "REPS='0' is not a positive integer"),
                         ({"BENCH_LOG_LINES": "1e6"}, "LOG_LINES='1e6'")):
            with self.subTest(env=env):
                p = run_bench(BUILD, "crypto", self.out, env)
                self.assertEqual(p.returncode, 1, p.stderr)
                self.assertIn(msg, p.stderr)
                self.assertFalse(os.path.exists(self.out), "nothing may run before the check")

    def test_real_component_tools_give_verdicts(self):
        p = run_bench(BUILD, "crypto logtail audit", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)
        md = self.results()
        self.assertNotIn("NOTE", md)
        self.assertNotIn("not measured", md)
        self.assertNotIn("n/a", md)
        self.assertNotIn("TLS termination", md, "the proxy part was not asked for")
        self.assertRegex(md, r"\| record encryption >= 60% of openssl AES-256-GCM, one core \| "
                             r"[0-9.]+ % \| >= 60 % \| (PASS|FAIL) \|")
        self.assertRegex(md, r"\| log lines/s on one core \| [0-9]+ \| >= 100000 \| [0-9.]+ \| (PASS|FAIL) \|")
        self.assertRegex(md, r"\| data_events each \(events/s\) \| [0-9]+ \| 0 \|")
        # Every metric row has its value and no failed repetition.
        for row in re.findall(r"^\| [^|]+ \| ([^|]+) \| ([^|]+) \| [^|]+ \|$", md, re.M):
            if row[1].strip() in ("0", "1"):
                self.assertRegex(row[0].strip(), r"^[0-9.]+$")
                self.assertEqual(row[1].strip(), "0")
        self.assertIn(md, p.stdout, "the tables are printed as written")

    def test_failing_or_lying_tools_are_reported_not_counted(self):
        build = os.path.join(self.tmp, "build")
        os.mkdir(build)
        # Prints a plausible figure, then fails: the figure must not be used.
        write_exe(os.path.join(build, "bs_bench_crypto"),
                  "echo encrypt_MBps=999.0; echo encrypt_vs_openssl_pct=99.0; echo boom >&2; exit 1\n")
        # Exit 0 but not every event arrived.
        write_exe(os.path.join(build, "bs_bench_logtail"),
                  "echo 'bench=logtail lines=10 events=9 lines_per_s=900000 lines_per_cpu_s=1 "
                  "events_per_s=1 delivered=8 goal_lines_per_s=100000 MISSING_EVENTS'\n")
        # Exit 0 with output that is not the expected format.
        write_exe(os.path.join(build, "bs_bench_audit"), "echo 'each: fast'\n")
        p = run_bench(build, "crypto logtail audit", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)
        md = self.results()
        self.assertNotIn("PASS", md)
        self.assertNotIn("999", md)
        self.assertNotIn("| 900000", md)
        self.assertIn("NOTE: bs_bench_crypto failed in at least one repetition: boom", md)
        self.assertRegex(md, "NOTE: bs_bench_logtail failed in at least one repetition: .*MISSING_EVENTS")
        self.assertIn("| record encryption >= 60% of openssl AES-256-GCM, one core | n/a % | >= 60 % | not measured |", md)
        self.assertIn("| log lines/s on one core | n/a | >= 100000 | n/a | not measured |", md)
        self.assertIn("| lines/s (wall) | n/a | 1 |  x |", md)
        self.assertIn("| data_events each (events/s) | n/a | 1 |  x |", md)

    def test_bench_part_hook(self):
        # A copy of run.sh in a tree of its own, with three part lines at its end.
        root = os.path.join(self.tmp, "src")
        os.makedirs(os.path.join(root, "tests", "bench"))
        script = os.path.join(root, "tests", "bench", "run.sh")
        with open(RUN_SH) as f:
            text = f.read()
        with open(script, "w") as f:
            f.write(text + 'bench_part good "$SRC/good.sh" "$BUILD" two\nbench_part bad "$SRC/bad.sh"\n'
                    'bench_part gone "$SRC/gone.sh"\n')
        write_exe(os.path.join(root, "good.sh"), 'echo "| good ran on $1 with $2 |"\n')
        write_exe(os.path.join(root, "bad.sh"), "echo half-a-table; echo bad-stderr >&2; exit 3\n")
        p = run_bench(BUILD, "good bad gone", self.out, script=script)
        self.assertEqual(p.returncode, 0, p.stderr)
        line = "| good ran on %s with two |" % os.path.realpath(BUILD)
        self.assertIn(line, p.stdout)
        md = self.results()
        self.assertIn("## Part good\n\n`good.sh %s two`\n\n```text\n%s\n```\n" % (os.path.realpath(BUILD), line), md)
        self.assertIn("## Part bad\n\n`bad.sh`\n\n- NOTE: part bad failed (exit 3); its output may be "
                      "incomplete\n\n```text\nhalf-a-table\n```\n", md)
        self.assertIn("bad-stderr", p.stderr)
        self.assertIn("## Part gone\n\n- NOTE: not run: %s/gone.sh is missing" % root, md)
        self.assertNotIn("## Record encryption", md, "parts not asked for do not run")
        # A part that is not asked for does not run.
        p = run_bench(BUILD, "bad", self.out, script=script)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertNotIn("good ran", self.results())

    def test_sinks_part_against_moto(self):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from test_aws_kms import moto_server_path  # noqa: E402
        if not moto_server_path():
            self.skipTest("moto_server not installed")
        p = run_bench(BUILD, "sinks", self.out)
        self.assertEqual(p.returncode, 0, p.stderr)
        md = self.results()
        self.assertNotIn("NOTE", md)
        for sink in ("firehose", "cloudwatch_logs", "cloudwatch_metrics", "s3"):
            with self.subTest(sink=sink):
                self.assertRegex(md, r"\| %s \| [0-9]+ \| [0-9.]+ \| [0-9.]+ \| [^|]+ \| [0-9.]+ \| 0 \| "
                                     r"(PASS|FAIL|undecided)" % sink)
        self.assertIn("moto_cpu_s_per_10k", p.stdout + md)


if __name__ == "__main__":
    unittest.main(verbosity=2)
