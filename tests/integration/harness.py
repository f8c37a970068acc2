"""Integration-test harness for brokerside (stdlib only; runs with /usr/bin/python3).

Every integration test starts its own processes on free ephemeral ports:
  - real Apache Kafka clusters (KafkaCluster: the release pinned in
    tests/kafka/pom.xml, 1 or 3 KRaft nodes; one per test module via
    IntegrationTest.kafka() / cluster()),
  - librdkafka's mock cluster (tests/tools/devbroker) only for faults only it
    injects (IntegrationTest.mock_cluster() / start_devbroker()),
  - brokerside with a config written from a dict,
  - clients: kcat over TLS, openssl s_client, sslscan, raw sockets.

Every process is started in its own process group and registered; the group
is killed at test cleanup and again at interpreter exit, so nothing leaks even
when a test fails or the runner is interrupted. When a test fails, the tail of
every log file the test registered (brokerside's stderr, the Kafka brokers'
server.log, devbroker's stderr) is printed with the failure, and the test's
temp dir is kept.

The last section serves the event-path tests (audit, metrics, logs, sinks,
spool): Daemon and DaemonTest run one brokerside per test in its own temp
dir and read what it shipped (read_ndjson, run_cli for the CLI).

Environment: BS_BUILD_DIR (default <source>/build), BS_SOURCE_DIR,
BS_KEEP_TMP=1 keeps every temp dir, BS_KAFKA_HEAP (broker -Xmx),
BS_KAFKA_READY_TIMEOUT (seconds), BS_KAFKA_CACHE (jar cache).
"""

import atexit
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

SOURCE_DIR = os.environ.get("BS_SOURCE_DIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("BS_BUILD_DIR") or os.path.join(SOURCE_DIR, "build")
BROKERSIDE = os.path.join(BUILD_DIR, "brokerside")
DEVBROKER = os.path.join(BUILD_DIR, "devbroker")
MAKE_CERTS = os.path.join(SOURCE_DIR, "certs", "make-dev-certs.sh")

# Generous limits that only exist so a broken build cannot hang the suite;
# no test asserts on how long something took.
START_TIMEOUT = 30.0
CLIENT_TIMEOUT = 60.0

# Metric names the tests rely on (issue 2: connections, bytes each way,
# handshake failures by reason, upstream connect failures).
M_BYTES = "brokerside_bytes_total"
M_HS_FAILURES = "brokerside_tls_handshake_failures_total"
M_CONNECTIONS_PREFIX = "brokerside_connections"

SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak|Memory|Thread)Sanitizer|runtime error: ")

_procs = []          # every live Proc, for the atexit safety net
_procs_lock = threading.Lock()


def _kill_all():
    with _procs_lock:
        procs = list(_procs)
    for p in procs:
        p.kill()


atexit.register(_kill_all)


def _on_sigterm(signum, frame):
    # ctest kills a test that exceeds its TIMEOUT with SIGTERM: still clean up.
    _kill_all()
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _on_sigterm)


class Proc:
    """A child process in its own process group, optionally logging to a file.

    kill() terminates the whole group (SIGTERM, then SIGKILL after a grace
    period) and is idempotent.
    """

    def __init__(self, argv, log_path=None, stdin=subprocess.DEVNULL, stdout=None, env=None,
                 cwd=None):
        self.argv = list(argv)
        self.log_path = log_path
        self._log = open(log_path, "ab") if log_path else subprocess.DEVNULL
        self.popen = subprocess.Popen(
            self.argv, stdin=stdin,
            stdout=stdout if stdout is not None else self._log,
            stderr=self._log, env=env, cwd=cwd, start_new_session=True)
        self.pid = self.popen.pid
        with _procs_lock:
            _procs.append(self)

    def alive(self):
        return self.popen.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.popen.send_signal(sig)

    def wait(self, timeout):
        """Wait for exit; returns the exit code or None on timeout."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self, grace=5.0):
        if self.popen.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(grace) is None:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(grace)
        else:
            # The leader exited; make sure no child it left in the group survives.
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for f in (self.popen.stdin, self.popen.stdout):
            if f:
                try:
                    f.close()
                except OSError:
                    pass
        if self._log is not subprocess.DEVNULL:
            self._log.close()
            self._log = subprocess.DEVNULL
        with _procs_lock:
            if self in _procs:
                _procs.remove(self)


# ---------------------------------------------------------------- basics

_handed_out_ports = set()


def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago (kernel-chosen), and never
    one this process handed out before: a test asks for several ports before it binds
    any, and the kernel may choose a just-closed port again."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out_ports:
            _handed_out_ports.add(port)
            return port
    raise AssertionError("free_port: no new free port in 100 tries")


def wait_port(host, port, timeout=START_TIMEOUT, proc=None):
    """Wait until host:port accepts a TCP connection. Raises on timeout or if
    `proc` exits first."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError("%s exited with %s before %s:%d accepted connections"
                                 % (proc.argv[0], proc.popen.returncode, host, port))
        try:
            with socket.create_connection((host, port), timeout=2):
                return
        except OSError as e:
            last = e
            time.sleep(0.05)
    raise AssertionError("%s:%d did not accept connections within %.0fs: %s"
                         % (host, port, timeout, last))


def http_get(url, timeout=10.0):
    """GET url; returns (status, body text). HTTP errors are returned, not raised."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def wait_http(url, status=200, timeout=START_TIMEOUT, proc=None):
    """Poll url until it answers with `status`; returns the body. Raises with
    the last answer on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError("%s exited with %s while waiting for %s"
                                 % (proc.argv[0], proc.popen.returncode, url))
        try:
            code, body = http_get(url, timeout=5)
            if code == status:
                return body
            last = (code, body.strip()[:200])
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("%s did not answer %d within %.0fs (last: %r)" % (url, status, timeout, last))


def wait_until(pred, timeout=START_TIMEOUT, what="condition"):
    """Poll pred() until true; raise AssertionError naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\d+)?$')
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse_prometheus(text):
    """Parse Prometheus text format into {(name, frozenset(labels)): float}.
    Raises ValueError on a line that is not a valid sample or comment."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if not m:
            raise ValueError("bad metrics line: %r" % line)
        labels = {}
        body = m.group(3) or ""
        pos = 0
        while pos < len(body):
            lm = _LABEL.match(body, pos)
            if not lm:
                raise ValueError("bad labels in line: %r" % line)
            labels[lm.group(1)] = (lm.group(2).replace('\\"', '"').replace("\\n", "\n")
                                   .replace("\\\\", "\\"))
            pos = lm.end()
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(4))
    return out


def metric(metrics, name, **labels):
    """Sum of every sample of `name` whose labels include `labels` (0 if none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in metrics.items() if n == name and want <= set(ls))


def metric_names(metrics):
    return sorted({n for (n, _) in metrics})


def run(argv, timeout=CLIENT_TIMEOUT, input=None, env=None):
    """Run a short-lived client in its own process group; returns
    CompletedProcess with bytes stdout/stderr. A client that outlives
    `timeout` is killed (group) and reported as rc -9."""
    p = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         start_new_session=True)
    try:
        out, err = p.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        out, err = p.communicate()
        return subprocess.CompletedProcess(argv, -9, out, err + b"\n[harness: killed after timeout]")
    return subprocess.CompletedProcess(argv, p.returncode, out, err)


# ---------------------------------------------------------------- certificates

def make_certs(outdir):
    """Create the dev PKI in outdir (certs/make-dev-certs.sh); returns a dict
    name -> path for ca, server, client, other-ca, untrusted-client (.crt/.key)."""
    os.makedirs(outdir, exist_ok=True)
    r = run(["bash", MAKE_CERTS, outdir], timeout=120)
    if r.returncode != 0:
        raise AssertionError("make-dev-certs.sh failed: %s" % r.stderr.decode(errors="replace"))
    names = {}
    for base in ("ca", "server", "client", "other-ca", "untrusted-client"):
        for ext in ("crt", "key"):
            path = os.path.join(outdir, "%s.%s" % (base, ext))
            if not os.path.exists(path):
                raise AssertionError("make-dev-certs.sh did not create " + path)
            names["%s_%s" % (base.replace("-", "_"), ext)] = path
    return names


def cert_serial(pem_path):
    """Serial number (upper-case hex) of a PEM certificate file."""
    r = run(["openssl", "x509", "-noout", "-serial", "-in", pem_path], timeout=30)
    return r.stdout.decode().strip().split("=", 1)[1].upper()


def make_server_cert(certs, outdir, name):
    """Issue another server certificate (SANs localhost, 127.0.0.1) from the
    dev CA in `certs`; returns (crt, key). Used for reload tests."""
    key = os.path.join(outdir, name + ".key")
    csr = os.path.join(outdir, name + ".csr")
    crt = os.path.join(outdir, name + ".crt")
    ext = os.path.join(outdir, name + ".ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    for argv in (["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-keyout", key, "-out", csr, "-subj", "/O=brokerside-dev/CN=localhost"],
                 ["openssl", "x509", "-req", "-in", csr, "-CA", certs["ca_crt"], "-CAkey",
                  certs["ca_key"], "-set_serial", str(int(time.time() * 1000)), "-out", crt,
                  "-days", "30", "-extfile", ext]):
        r = run(argv, timeout=60)
        if r.returncode != 0:
            raise AssertionError("openssl failed: %s" % r.stderr.decode(errors="replace"))
    return crt, key


# ---------------------------------------------------------------- dev broker

class DevBroker:
    """A devbroker process: N mock Kafka brokers plus a command channel.

    Attributes after start: bootstrap ("host:port,..." where they listen),
    brokers {id: {"listen": "h:p", "advertised": "h:p"}}.
    `advertise` maps broker id -> "IPV4:PORT" the broker reports in Metadata
    (how a real broker's advertised.listeners points clients at the sidecar).
    """

    def __init__(self, workdir, brokers=1, topics=(), advertise=None):
        self.workdir = workdir
        argv = [DEVBROKER, "--brokers", str(brokers)]
        for t in topics:
            argv += ["--topic", t]
        for bid, addr in (advertise or {}).items():
            argv += ["--advertise", "%d=%s" % (bid, addr)]
        if not os.access(DEVBROKER, os.X_OK):
            raise AssertionError("devbroker not built: %s" % DEVBROKER)
        self.log_path = os.path.join(workdir, "devbroker.log")
        self.proc = Proc(argv, log_path=self.log_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._lines = queue.Queue()
        t = threading.Thread(target=self._reader, daemon=True)
        t.start()
        self.brokers = {}
        self.bootstrap = None
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            line = self._next_line(deadline - time.monotonic())
            if line is None:
                raise AssertionError("devbroker did not start; log:\n" + tail(self.log_path))
            if line.startswith("BOOTSTRAP "):
                self.bootstrap = line.split()[1]
            elif line.startswith("BROKER "):
                _, bid, listen, adv = line.split()
                self.brokers[int(bid)] = {"listen": listen, "advertised": adv}
            elif line == "READY":
                break

    def _reader(self):
        for raw in self.proc.popen.stdout:
            self._lines.put(raw.decode("utf-8", "replace").rstrip("\n"))
        self._lines.put(None)

    def _next_line(self, timeout):
        try:
            return self._lines.get(timeout=max(timeout, 0.01))
        except queue.Empty:
            return None

    def listen_addr(self, bid=1):
        return self.brokers[bid]["listen"]

    def command(self, line, expect_ok=True):
        """Send one command; returns its answer line. Raises if the answer is
        not OK and expect_ok is true."""
        self.proc.popen.stdin.write((line + "\n").encode())
        self.proc.popen.stdin.flush()
        answer = self._next_line(START_TIMEOUT)
        if answer is None:
            raise AssertionError("devbroker gave no answer to %r" % line)
        if expect_ok and not answer.startswith("OK"):
            raise AssertionError("devbroker %r -> %r" % (line, answer))
        return answer

    def stop(self):
        if self.proc.alive():
            try:
                self.command("quit", expect_ok=False)
            except (OSError, AssertionError):
                pass
            self.proc.wait(10)
        self.proc.kill()


# ---------------------------------------------------------------- brokerside

def tls_listener(certs, bind, upstream, protocol="tcp", client_auth="none", name="clients", **tls):
    """A listener config dict with TLS termination using the dev certs."""
    t = {"cert": certs["server_crt"], "key": certs["server_key"]}
    if client_auth != "none":
        t["client_ca"] = certs["ca_crt"]
    t["client_auth"] = client_auth
    t.update(tls)
    return {"name": name, "bind": bind, "upstream": upstream, "protocol": protocol, "tls": t}


class Brokerside:
    """A brokerside daemon started from a config dict.

    The config is written to <workdir>/<name>.json; stdout and stderr go to
    <workdir>/<name>.log. `admin_port` is taken from config["admin"]["bind"].
    """

    def __init__(self, workdir, config, name="brokerside", wait=True):
        if not os.access(BROKERSIDE, os.X_OK):
            raise AssertionError("brokerside binary not built: %s (set BS_BUILD_DIR)" % BROKERSIDE)
        self.workdir = workdir
        self.config = config
        self.config_path = os.path.join(workdir, name + ".json")
        self.log_path = os.path.join(workdir, name + ".log")
        self.write_config(config)
        self.admin_port = int(config["admin"]["bind"].rsplit(":", 1)[1]) if config.get("admin") else None
        self.proc = Proc([BROKERSIDE, "--config", self.config_path], log_path=self.log_path)
        if wait:
            self.wait_started()

    def write_config(self, config):
        """(Re)write the config file, e.g. before a SIGHUP."""
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(config, f, indent=2)
        os.replace(tmp, self.config_path)

    def wait_started(self):
        """Wait until /healthz answers 200 and every listener accepts TCP."""
        if self.admin_port:
            wait_http(self.url("/healthz"), 200, proc=self.proc)
        for lst in self.config.get("listeners", []):
            host, port = lst["bind"].rsplit(":", 1)
            wait_port("127.0.0.1" if host in ("0.0.0.0", "") else host, int(port), proc=self.proc)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.admin_port, path)

    def get(self, path):
        return http_get(self.url(path))

    def metrics(self):
        code, body = self.get("/metrics")
        if code != 200:
            raise AssertionError("/metrics answered %d: %s" % (code, body[:200]))
        return parse_prometheus(body)

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def log_mark(self):
        """The current length of the log, for wait_log(since=...)."""
        return len(self.log_text())

    def wait_log(self, pattern, timeout=START_TIMEOUT, since=0):
        """Wait until the log (from offset `since`) matches regex `pattern`;
        returns the match."""
        rx = re.compile(pattern)
        found = []

        def pred():
            m = rx.search(self.log_text()[since:])
            if m:
                found.append(m)
            return bool(m)
        wait_until(pred, timeout, "log line matching %r in %s" % (pattern, self.log_path))
        return found[0]

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        self.proc.kill()


def base_config(admin_port, listeners, **extra):
    """A minimal brokerside config: the given listeners, admin on loopback,
    one worker (the machine is shared), debug-friendly log level."""
    cfg = {"workers": 1, "log_level": "info", "listeners": listeners,
           "admin": {"bind": "127.0.0.1:%d" % admin_port, "probe_interval_s": 0.5}}
    cfg.update(extra)
    return cfg


# ---------------------------------------------------------------- clients

def kcat_tls(certs, client_cert=True):
    """kcat/librdkafka options for TLS to brokerside with the dev CA."""
    opts = ["-X", "security.protocol=SSL", "-X", "ssl.ca.location=" + certs["ca_crt"]]
    if client_cert:
        opts += ["-X", "ssl.certificate.location=" + certs["client_crt"],
                 "-X", "ssl.key.location=" + certs["client_key"]]
    return opts


def kcat(broker, args, certs=None, client_cert=True, input=None, timeout=CLIENT_TIMEOUT):
    """Run kcat against `broker`, over TLS when certs is given."""
    argv = ["kcat", "-b", broker] + (kcat_tls(certs, client_cert) if certs else []) + list(args)
    return run(argv, timeout=timeout, input=input)


def kcat_produce(broker, topic, messages, certs=None, timeout=CLIENT_TIMEOUT, client_cert=True):
    """Produce newline-separated messages; raises with kcat's stderr on failure."""
    data = "".join(m + "\n" for m in messages).encode()
    r = kcat(broker, ["-P", "-t", topic, "-X", "message.timeout.ms=30000"], certs,
             client_cert=client_cert, input=data, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("kcat produce failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
    return r


def kcat_consume(broker, topic, count, certs=None, timeout=CLIENT_TIMEOUT, client_cert=True):
    """Consume `count` messages from the beginning; returns them as strings."""
    r = kcat(broker, ["-C", "-t", topic, "-o", "beginning", "-c", str(count), "-e", "-q"],
             certs, client_cert=client_cert, timeout=timeout)
    if r.returncode != 0:
        raise AssertionError("kcat consume failed (%d): %s" % (r.returncode, r.stderr.decode(errors="replace")))
    return r.stdout.decode().splitlines()


def s_client(port, args=(), input=b"", timeout=CLIENT_TIMEOUT, ca=None):
    """openssl s_client to 127.0.0.1:port. Returns (ok, output) where ok means
    the handshake completed (s_client -brief prints the negotiated protocol)."""
    argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-brief",
            "-servername", "localhost"]
    if ca:
        argv += ["-CAfile", ca, "-verify_return_error"]
    argv += list(args)
    r = run(argv, timeout=timeout, input=input)
    out = (r.stdout + r.stderr).decode("utf-8", "replace")
    ok = r.returncode == 0 and "CONNECTION ESTABLISHED" in out
    return ok, out


def peer_cert_serial(port, timeout=CLIENT_TIMEOUT):
    """Serial (upper-case hex) of the certificate served on 127.0.0.1:port."""
    r = run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", "localhost"],
            timeout=timeout, input=b"")
    r2 = run(["openssl", "x509", "-noout", "-serial"], input=r.stdout, timeout=timeout)
    out = r2.stdout.decode().strip()
    if not out.startswith("serial="):
        raise AssertionError("no certificate from port %d: %s" % (port, r.stderr.decode(errors="replace")))
    return out.split("=", 1)[1].upper()


def raw_exchange(port, payload, timeout=15.0):
    """Connect, send `payload`, read until the peer closes. Returns the bytes
    received; raises AssertionError if the peer keeps the connection open
    past `timeout` (a generous bound against hangs, not a timing check)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        if payload:
            s.sendall(payload)
        data = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                raise AssertionError("port %d kept the connection open" % port)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


class EchoServer:
    """A plaintext TCP upstream on 127.0.0.1 (for `tcp` listeners).

    mode "echo": every connection gets its bytes back.
    mode "sink": reads exactly `sink_bytes` bytes, then answers with the
    hex SHA-256 of what it read and closes (an end-to-end integrity check).
    mode "record": waits until `gate` is set, then reads until EOF; the
    byte count and SHA-256 of each connection go to `records` (a list of
    (count, hexdigest)) and `recorded` is set.
    Runs in daemon threads; close() stops it.
    """

    def __init__(self, mode="echo", sink_bytes=0):
        self.gate = threading.Event()
        self.recorded = threading.Event()
        self.records = []
        import hashlib
        self._hashlib = hashlib
        self.mode = mode
        self.sink_bytes = sink_bytes
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.connections = 0
        self.received = 0          # bytes received over all connections
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.mode == "echo":
                while True:
                    d = c.recv(65536)
                    if not d:
                        break
                    self.received += len(d)
                    c.sendall(d)
            elif self.mode == "record":
                self.gate.wait()
                h = self._hashlib.sha256()
                n = 0
                try:
                    while True:
                        d = c.recv(65536)
                        if not d:
                            break
                        h.update(d)
                        n += len(d)
                        self.received += len(d)
                finally:
                    self.records.append((n, h.hexdigest()))
                    self.recorded.set()
            else:
                h = self._hashlib.sha256()
                left = self.sink_bytes
                while left > 0:
                    d = c.recv(min(left, 65536))
                    if not d:
                        break
                    h.update(d)
                    self.received += len(d)
                    left -= len(d)
                if left == 0:
                    c.sendall(h.hexdigest().encode())
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self._closed = True
        self.gate.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def kafka_api_versions_request(correlation_id=1, client_id=b"bs-test"):
    """A complete ApiVersions v0 request frame (size prefix included)."""
    import struct
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def tls_connect(port, certs, client_cert=False, timeout=30.0):
    """A TLS client socket to brokerside on 127.0.0.1:port that verifies the
    server against the dev CA (name: localhost)."""
    import ssl
    ctx = ssl.create_default_context(cafile=certs["ca_crt"])
    if client_cert:
        ctx.load_cert_chain(certs["client_crt"], certs["client_key"])
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except Exception:
        raw.close()
        raise


def recv_exact(sock, n):
    """Read exactly n bytes; raises AssertionError if the peer closes early."""
    data = b""
    while len(data) < n:
        d = sock.recv(n - len(data))
        if not d:
            raise AssertionError("peer closed after %d of %d bytes" % (len(data), n))
        data += d
    return data


def tail(path, lines=60):
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "(cannot read %s: %s)" % (path, e)
    return "\n".join(text.splitlines()[-lines:])


# ---------------------------------------------------------------- test base

class IntegrationTest(unittest.TestCase):
    """Base class: a temp dir per test, dev certs per class, process cleanup,
    and log tails printed with every failure."""

    certs = None

    @classmethod
    def setUpClass(cls):
        cls.class_tmp = tempfile.mkdtemp(prefix="bs-it-%s-" % cls.__name__)
        cls.certs = make_certs(os.path.join(cls.class_tmp, "certs"))

    @classmethod
    def tearDownClass(cls):
        if not os.environ.get("BS_KEEP_TMP") and not getattr(cls, "_keep_tmp", False):
            shutil.rmtree(cls.class_tmp, ignore_errors=True)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="t-", dir=self.class_tmp)
        self.logs = []

    def start_devbroker(self, **kw):
        db = DevBroker(self.tmp, **kw)
        self.logs.append(db.log_path)
        self.addCleanup(db.stop)
        return db

    def start_brokerside(self, config, name="brokerside", wait=True):
        self.logs.append(os.path.join(self.tmp, name + ".log"))
        bs = Brokerside(self.tmp, config, name=name, wait=wait)
        # Cleanups run last-in first-out: stop first, then check the log.
        self.addCleanup(self.check_sanitizer_report, bs.log_path)
        self.addCleanup(bs.stop)
        if getattr(self, "_real_kafka", False):
            self.addCleanup(self.check_protocol_clean, bs)
        return bs

    def check_protocol_clean(self, bs):
        """In front of a real broker, every frame real clients and the broker exchanged must
        decode and every response that needed a rewrite must have been rewritten: fail the
        test on any brokerside_kafka_undecodable_total or brokerside_kafka_rewrite_errors_total
        (run before the daemon stops; skipped if the test stopped it)."""
        if not bs.proc.alive():
            return
        try:
            m = bs.metrics()
        except (OSError, AssertionError):
            return
        bad = {}
        for (name, labels), v in m.items():
            if v > 0 and name in ("brokerside_kafka_undecodable_total",
                                  "brokerside_kafka_rewrite_errors_total"):
                bad["%s%s" % (name, dict(labels))] = v
        if bad:
            raise AssertionError("protocol errors against the real broker: %s" % bad)

    def check_sanitizer_report(self, log_path):
        """Fail the test if an ASan/UBSan/LSan build reported anything in the
        daemon's log (such builds keep running after some reports)."""
        text = tail(log_path, 100000)
        m = SANITIZER_REPORT.search(text)
        if m:
            raise AssertionError("sanitizer report in %s:\n%s" % (log_path, text[m.start():m.start() + 3000]))

    def upstream(self, mode="echo", sink_bytes=0):
        """A plaintext TCP upstream (EchoServer) stopped at cleanup."""
        srv = EchoServer(mode, sink_bytes)
        self.addCleanup(srv.close)
        return srv

    def sidecar(self, upstream, client_auth="none", tls_extra=None, config_extra=None,
                protocol="tcp", listeners_extra=None):
        """brokerside terminating TLS in front of `upstream` ("host:port").
        Returns (brokerside, port)."""
        port = free_port()
        lst = tls_listener(self.certs, "127.0.0.1:%d" % port, upstream, protocol=protocol,
                           client_auth=client_auth, **(tls_extra or {}))
        cfg = base_config(free_port(), [lst] + list(listeners_extra or []), **(config_extra or {}))
        return self.start_brokerside(cfg), port

    def failures(self, bs, reason):
        """brokerside_tls_handshake_failures_total{reason=...} right now."""
        return metric(bs.metrics(), M_HS_FAILURES, reason=reason)

    def wait_failures(self, bs, reason, at_least):
        """Wait until the failure counter for `reason` reaches at_least
        (the counter is bumped when the server side finishes with the
        connection, which may be just after the client saw the close)."""
        wait_until(lambda: self.failures(bs, reason) >= at_least, START_TIMEOUT,
                   "%s{reason=%s} >= %d (now %s)" % (M_HS_FAILURES, reason, at_least,
                                                      self.failures(bs, reason)))

    def proc(self, argv, name, **kw):
        """Start a helper process whose output goes to <tmp>/<name>.log."""
        log = os.path.join(self.tmp, name + ".log")
        self.logs.append(log)
        p = Proc(argv, log_path=log, **kw)
        self.addCleanup(p.kill)
        return p

    def kafka(self, nodes=1, sidecar=True, **kw):
        """The module's shared real Kafka cluster (harness.module_kafka); its broker logs are
        printed with a failure."""
        c = module_kafka(nodes=nodes, sidecar=sidecar, **kw)
        self._real_kafka = True
        for n in c.nodes:
            if n.server_log not in self.logs:
                self.logs.append(n.server_log)
        return c

    def cluster(self, listeners_extra=None, protocol="tcp", client_auth="none", topics=("test:1",),
                tls_extra=None, config_extra=None):
        """The common set-up: the module's 1-node real Kafka cluster, whose client listener
        advertises the sidecar's port, with fresh (empty) `topics`; brokerside terminating TLS
        in front of it on that port (a `kafka` listener also rewrites, with kafka.advertise
        mapping node 1 to it). Returns (kafka cluster, brokerside, sidecar_port)."""
        kc = self.kafka(nodes=1)
        kc.reset_topics(topics)
        port = kc.sidecar_ports[1]
        bs = self.front_broker(port, kc.node(1).client, listeners_extra, protocol, client_auth,
                               tls_extra, config_extra)
        return kc, bs, port

    def front_broker(self, port, upstream, listeners_extra=None, protocol="tcp", client_auth="none",
                     tls_extra=None, config_extra=None, advertise=True, name="clients"):
        """brokerside terminating TLS on 127.0.0.1:`port` (listener `name`) in front of the
        broker at `upstream` (node 1); with `advertise`, a `kafka` listener also gets
        kafka.advertise mapping node 1 to that port unless config_extra has its own kafka
        section. Returns the started Brokerside."""
        lst = tls_listener(self.certs, "127.0.0.1:%d" % port, upstream, protocol=protocol,
                           client_auth=client_auth, name=name, **(tls_extra or {}))
        extra = dict(config_extra or {})
        if advertise and protocol == "kafka" and "kafka" not in extra:
            extra["kafka"] = {"advertise": {"1": "127.0.0.1:%d" % port}}
        cfg = base_config(free_port(), [lst] + list(listeners_extra or []), **extra)
        return self.start_brokerside(cfg)

    def mock_cluster(self, listeners_extra=None, protocol="tcp", client_auth="none", topics=("test:1",),
                     tls_extra=None, config_extra=None, broker_up=True):
        """Like cluster(), on librdkafka's mock cluster (devbroker): only for faults the mock
        can inject (broker down before start, injected error codes). Returns
        (devbroker, brokerside, sidecar_port)."""
        port = free_port()
        db = self.start_devbroker(brokers=1, topics=topics, advertise={1: "127.0.0.1:%d" % port})
        if not broker_up:
            db.command("down 1")
        bs = self.front_broker(port, db.listen_addr(1), listeners_extra, protocol, client_auth,
                               tls_extra, config_extra)
        return db, bs, port


class _Result(unittest.TextTestResult):
    """Prints the tail of the failing test's logs right after its failure."""

    def _dump(self, test):
        logs = getattr(test, "logs", None) or []
        type(test)._keep_tmp = True
        for path in logs:
            self.stream.writeln("----- tail of %s -----" % path)
            self.stream.writeln(tail(path))
        if logs:
            self.stream.writeln("----- (temp dir kept: %s) -----" % getattr(test, "tmp", "?"))

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._dump(test)

    def addError(self, test, err):
        super().addError(test, err)
        self._dump(test)


def main():
    """unittest.main with log dumps on failure; exits non-zero if any test
    failed or errored (unittest.main's own exit status)."""
    runner = unittest.TextTestRunner(verbosity=2, resultclass=_Result, stream=sys.stderr)
    unittest.main(module="__main__", testRunner=runner, exit=True)


# ---------------------------------------------------------------- real Apache Kafka (KRaft)

KAFKA_POM = os.path.join(SOURCE_DIR, "tests", "kafka", "pom.xml")
KAFKA_FETCH = os.path.join(SOURCE_DIR, "tests", "kafka", "fetch.sh")
KAFKA_LOG4J_BROKER = os.path.join(SOURCE_DIR, "tests", "kafka", "log4j2-broker.xml")
KAFKA_LOG4J_TOOLS = os.path.join(SOURCE_DIR, "tests", "kafka", "log4j2-tools.xml")

# SASL users of every test cluster: SCRAM-SHA-512 credentials are written at format time
# (StorageTool --add-scram), PLAIN users live in the SASL listener's JAAS config. Same password
# for both mechanisms.
KAFKA_USERS = {"alice": "alice-secret", "bob": "bob-secret", "admin": "admin-secret"}

# Broker JVM: small heap; few GC threads (2 shared cores). BS_KAFKA_HEAP overrides -Xmx.
# Test clusters compile with C1 only (KAFKA_QUICK_JIT): a third less CPU to start, and tests move
# little data; benchmarks pass jit="full" (CLI --full-jit) for the broker's real throughput.
KAFKA_QUICK_JIT = ["-XX:TieredStopAtLevel=1"]
KAFKA_BROKER_JVM = ["-Xms96m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
                    "-XX:ParallelGCThreads=1", "-XX:ConcGCThreads=1", "-XX:CICompilerCount=2",
                    "-XX:+ExplicitGCInvokesConcurrent", "-Djava.awt.headless=true"]
# One-shot tools (StorageTool, TopicCommand, ...): C1 only and serial GC start fastest.
KAFKA_TOOL_JVM = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                  "-Djava.awt.headless=true"]
KAFKA_READY_TIMEOUT = float(os.environ.get("BS_KAFKA_READY_TIMEOUT", "180"))


def kafka_version():
    """The Apache Kafka release pinned in tests/kafka/pom.xml."""
    with open(KAFKA_POM) as f:
        m = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", f.read())
    return m.group(1)


_kafka_libs = None


def kafka_libs():
    """Directory of the pinned release's jars, fetched by tests/kafka/fetch.sh (what `make deps`
    runs; a no-op without network when the cache is current). Raises with the fetch's error."""
    global _kafka_libs
    if _kafka_libs is None:
        r = run(["bash", KAFKA_FETCH], timeout=900)
        if r.returncode != 0:
            raise AssertionError("fetching Apache Kafka failed:\n" + r.stderr.decode(errors="replace"))
        home = r.stdout.decode().strip().splitlines()[-1]
        _kafka_libs = os.path.join(home, "libs")
    return _kafka_libs


def kafka_cds_archive():
    """Path of the class-data-sharing archive of the pinned release (next to its libs/): the
    JVM maps the broker's classes from it instead of loading and verifying them, which halves
    a broker's start-up CPU (3.7-4.0 s instead of 6.5-7.6 s measured) and cuts a StorageTool
    run by a third. The first cluster a test process starts without it writes it when its
    first node stops (-XX:ArchiveClassesAtExit); fetch.sh drops it with the jars. A stale or
    foreign archive is ignored by the JVM (-Xshare:auto). BS_KAFKA_CDS=0 turns it off."""
    return os.path.join(os.path.dirname(kafka_libs()), "broker.jsa")


def _cds_use():
    """JVM options that use the archive, if there is one (and CDS is on)."""
    if os.environ.get("BS_KAFKA_CDS", "1") == "0":
        return []
    a = kafka_cds_archive()
    return ["-XX:SharedArchiveFile=" + a] if os.path.isfile(a) else []


def kafka_tool(main_class, args, timeout=CLIENT_TIMEOUT, input=None, jvm=None):
    """Run one of the pinned release's Java tools (e.g. org.apache.kafka.tools.TopicCommand)
    to completion; returns CompletedProcess (bytes)."""
    argv = (["java"] + list(jvm or KAFKA_TOOL_JVM) + _cds_use()
            + ["-Dlog4j2.configurationFile=" + KAFKA_LOG4J_TOOLS,
               "-cp", os.path.join(kafka_libs(), "*"), main_class] + list(args))
    return run(argv, timeout=timeout, input=input)


class KafkaWire:
    """A blocking Kafka protocol client for the harness's own checks (readiness, topic creation,
    metadata). Only request versions every Kafka 4.x broker serves and that need no flexible
    encoding: Metadata v1, CreateTopics v4, DeleteTopics v3."""

    def __init__(self, addr, timeout=10.0):
        import struct
        self._struct = struct
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.corr = 0

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def request(self, api_key, version, body=b""):
        """Send one request; returns the response body after the correlation id."""
        st = self._struct
        self.corr += 1
        cid = b"bs-harness"
        msg = st.pack(">hhih", api_key, version, self.corr, len(cid)) + cid + body
        self.sock.sendall(st.pack(">i", len(msg)) + msg)
        size = st.unpack(">i", recv_exact(self.sock, 4))[0]
        data = recv_exact(self.sock, size)
        if st.unpack_from(">i", data, 0)[0] != self.corr:
            raise AssertionError("correlation id mismatch")
        return data[4:]

    @staticmethod
    def _str(s):
        import struct
        if s is None:
            return struct.pack(">h", -1)
        b = s.encode()
        return struct.pack(">h", len(b)) + b

    def metadata(self, topics=()):
        """Metadata v1: returns (brokers {id: "host:port"}, controller id,
        topics {name: (error, {partition: (error, leader)})}). topics=() asks for none."""
        st = self._struct
        body = st.pack(">i", len(topics)) + b"".join(self._str(t) for t in topics)
        d = self.request(3, 1, body)
        off = 0

        def i32():
            nonlocal off
            v = st.unpack_from(">i", d, off)[0]
            off += 4
            return v

        def i16():
            nonlocal off
            v = st.unpack_from(">h", d, off)[0]
            off += 2
            return v

        def string():
            nonlocal off
            n = i16()
            if n < 0:
                return None
            v = d[off:off + n].decode()
            off += n
            return v

        brokers = {}
        for _ in range(i32()):
            nid = i32()
            host = string()
            port = i32()
            string()  # rack
            brokers[nid] = "%s:%d" % (host, port)
        controller = i32()
        out = {}
        for _ in range(i32()):
            terr = i16()
            name = string()
            off += 1  # is_internal
            parts = {}
            for _ in range(i32()):
                perr = i16()
                pid = i32()
                leader = i32()
                for _ in range(i32()):
                    i32()  # replicas
                for _ in range(i32()):
                    i32()  # isr
                parts[pid] = (perr, leader)
            out[name] = (terr, parts)
        return brokers, controller, out

    def delete_topics(self, names, timeout_ms=30000):
        """DeleteTopics v3; returns {name: error_code}."""
        st = self._struct
        body = st.pack(">i", len(names)) + b"".join(self._str(n) for n in names)
        d = self.request(20, 3, body + st.pack(">i", timeout_ms))
        off = 4
        (n,) = st.unpack_from(">i", d, off)
        off += 4
        out = {}
        for _ in range(n):
            (ln,) = st.unpack_from(">h", d, off)
            name = d[off + 2:off + 2 + ln].decode()
            off += 2 + ln
            (out[name],) = st.unpack_from(">h", d, off)
            off += 2
        return out

    def create_topics(self, topics, timeout_ms=30000):
        """CreateTopics v4. topics: [(name, partitions, replication_factor, {config: value})].
        Returns {name: (error_code, error_message)}."""
        st = self._struct
        body = st.pack(">i", len(topics))
        for name, parts, rf, cfg in topics:
            body += self._str(name) + st.pack(">ihi", parts, rf, 0) + st.pack(">i", len(cfg))
            for k, v in cfg.items():
                body += self._str(k) + self._str(str(v))
        body += st.pack(">i?", timeout_ms, False)
        d = self.request(19, 4, body)
        off = 4  # throttle_time_ms
        out = {}
        (n,) = st.unpack_from(">i", d, off)
        off += 4
        for _ in range(n):
            (ln,) = st.unpack_from(">h", d, off)
            name = d[off + 2:off + 2 + ln].decode()
            off += 2 + ln
            (err, mlen) = st.unpack_from(">hh", d, off)
            off += 4
            msg = None
            if mlen >= 0:
                msg = d[off:off + mlen].decode()
                off += mlen
            out[name] = (err, msg)
        return out


def _kafka_cluster_id():
    """A random cluster id as Kafka writes them (URL-safe base64 of a UUID), never starting
    with "-": StorageTool's argument parser would take such an id for an option (1 start in 64)."""
    import base64
    import uuid
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


class KafkaNode:
    """One KRaft node (broker and controller in one JVM) of a KafkaCluster.

    Ports: client (PLAINTEXT, what a sidecar fronts), sasl (SASL_PLAINTEXT, SCRAM-SHA-512 and
    PLAIN), internal (PLAINTEXT, inter-broker traffic and harness checks), controller (quorum).
    log_dir holds the topic partitions (segment files `<topic>-<partition>/*.log`); the
    metadata log lives apart in metadata_dir."""

    def __init__(self, node_id, root, ports):
        self.id = node_id
        self.dir = os.path.join(root, "node-%d" % node_id)
        self.log_dir = os.path.join(self.dir, "data")
        self.metadata_dir = os.path.join(self.dir, "metadata")
        self.config_path = os.path.join(self.dir, "server.properties")
        self.stdout_path = os.path.join(self.dir, "stdout.log")
        self.server_log = os.path.join(self.dir, "server.log")
        self.ports = dict(ports)
        self.proc = None     # Proc when started by this process
        self.pid = None
        self.cds_tmp = None  # class-data archive this node writes at exit (kafka_cds_archive)

    @property
    def client(self):
        return "127.0.0.1:%d" % self.ports["client"]

    @property
    def sasl(self):
        return "127.0.0.1:%d" % self.ports["sasl"]

    @property
    def internal(self):
        return "127.0.0.1:%d" % self.ports["internal"]

    @property
    def controller(self):
        return "127.0.0.1:%d" % self.ports["controller"]

    def alive(self):
        if self.proc is not None:
            return self.proc.alive()
        return self.pid is not None and _pid_runs(self.pid, self.config_path)

    def describe(self):
        return {"id": self.id, "client": self.client, "sasl": self.sasl, "internal": self.internal,
                "controller": self.controller, "log_dir": self.log_dir, "dir": self.dir,
                "server_log": self.server_log, "pid": self.pid, "alive": self.alive()}


def _pid_runs(pid, marker):
    """True if process `pid` exists and its command line contains `marker` (so a recycled
    PID is never mistaken for a node)."""
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return marker.encode() in f.read()
    except OSError:
        return False


class KafkaCluster:
    """A throw-away Apache Kafka cluster (the release pinned in tests/kafka/pom.xml) on loopback.

    nodes=1: one combined broker+controller. nodes=3: three combined nodes, a quorum of three
    voters (any one node can be stopped and the cluster keeps a controller). Every port is
    picked free at start (a bind race with another process is retried with new ports).
    Internal topics get replication min(3, nodes). Readiness: the Metadata of every node's
    client listener lists all nodes.

    Everything started is stopped by stop(), by the harness's atexit/SIGTERM safety net, or,
    for a cluster started with detach=True (the CLI), by `kafka-cluster down` reading
    <root>/cluster.json. `broker_config` adds/overrides server.properties keys; `features`
    are passed to StorageTool format (--feature name=level).
    """

    STATE = "cluster.json"

    def __init__(self, root, nodes=1, broker_config=None, features=None, heap="384m",
                 users=None, advertise=None, jit="quick", start=True, detach=False):
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        self.root = os.path.abspath(root)
        self.n = nodes
        self.broker_config = dict(broker_config or {})
        self.features = dict(features or {})
        self.heap = os.environ.get("BS_KAFKA_HEAP", heap)
        self.users = dict(users or KAFKA_USERS)
        self.advertise = {int(k): v for k, v in (advertise or {}).items()}
        if jit not in ("quick", "full"):
            raise ValueError("jit must be quick or full")
        self.jit = jit
        self.detach = detach
        self._cds_dumping = False
        self.version = kafka_version()
        self.cluster_id = None
        self.nodes = []
        self.startup_seconds = None
        if start:
            self.start()

    # ---- addresses
    @property
    def bootstrap(self):
        """Client (PLAINTEXT) listeners of all nodes, "h:p,h:p"."""
        return ",".join(n.client for n in self.nodes)

    @property
    def sasl_bootstrap(self):
        return ",".join(n.sasl for n in self.nodes)

    @property
    def internal_bootstrap(self):
        return ",".join(n.internal for n in self.nodes)

    def node(self, node_id):
        for n in self.nodes:
            if n.id == node_id:
                return n
        raise KeyError("no node %r" % node_id)

    @property
    def log_dirs(self):
        return [n.log_dir for n in self.nodes]

    # ---- configuration
    def _pick_ports(self):
        used = set()
        out = []
        for _ in range(self.n):
            p = {}
            for k in ("client", "sasl", "internal", "controller"):
                port = free_port()
                while port in used:
                    port = free_port()
                used.add(port)
                p[k] = port
            out.append(p)
        return out

    def _properties(self, node):
        rf = min(3, self.n)
        voters = ",".join("%d@%s" % (n.id, n.controller) for n in self.nodes)
        plain = " ".join('user_%s="%s"' % (u, pw) for u, pw in sorted(self.users.items()))
        props = {
            "process.roles": "broker,controller",
            "node.id": node.id,
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": "CLIENT://%s,SASL://%s,INTERNAL://%s,CONTROLLER://%s"
                         % (node.client, node.sasl, node.internal, node.controller),
            "advertised.listeners": "CLIENT://%s,SASL://%s,INTERNAL://%s"
                                    % (self.advertise.get(node.id, node.client), node.sasl, node.internal),
            "listener.security.protocol.map":
                "CLIENT:PLAINTEXT,SASL:SASL_PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "INTERNAL",
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl.sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "listener.name.sasl.scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.sasl.plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required %s;" % plain,
            "log.dirs": node.log_dir,
            "metadata.log.dir": node.metadata_dir,
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": 1 if self.n == 1 else 3,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min(2, rf),
            "transaction.state.log.num.partitions": 1 if self.n == 1 else 3,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min(2, rf),
            "num.partitions": 1,
            "default.replication.factor": rf,
            "min.insync.replicas": 1,
            "group.initial.rebalance.delay.ms": 0,
            "broker.heartbeat.interval.ms": 500,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 2,
            "num.recovery.threads.per.data.dir": 1,
            "num.replica.fetchers": 1,
            "log.cleaner.threads": 1,
            "log.cleaner.dedupe.buffer.size": 4194304,
            "log.cleaner.backoff.ms": 500,
            "metrics.jmx.exclude": ".*",
        }
        props.update(self.broker_config)
        return "".join("%s=%s\n" % (k, v) for k, v in props.items())

    def _write_configs(self):
        for node in self.nodes:
            os.makedirs(node.dir, exist_ok=True)
            with open(node.config_path, "w") as f:
                f.write(self._properties(node))

    def _format(self):
        """StorageTool format of every node, in parallel (one JVM each)."""
        libs = kafka_libs()
        procs = []
        for node in self.nodes:
            argv = (["java"] + KAFKA_TOOL_JVM + _cds_use()
                    + ["-Dlog4j2.configurationFile=" + KAFKA_LOG4J_TOOLS,
                                                 "-cp", os.path.join(libs, "*"),
                                                 "kafka.tools.StorageTool", "format",
                                                 "--config", node.config_path,
                                                 "--cluster-id", self.cluster_id])
            for u, pw in sorted(self.users.items()):
                argv += ["--add-scram", "SCRAM-SHA-512=[name=%s,password=%s]" % (u, pw)]
            for k, v in sorted(self.features.items()):
                argv += ["--feature", "%s=%s" % (k, v)]
            procs.append((node, subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                                 start_new_session=True)))
        errors = []
        for node, p in procs:
            try:
                out, _ = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                out, _ = p.communicate()
            if p.returncode != 0:
                errors.append("node %d: %s" % (node.id, out.decode(errors="replace")))
        if errors:
            raise AssertionError("kafka-storage format failed:\n" + "\n".join(errors))

    # ---- processes
    def _launch(self, node):
        libs = kafka_libs()
        cds = _cds_use()
        if (not cds and not self.detach and not self._cds_dumping
                and os.environ.get("BS_KAFKA_CDS", "1") != "0"):
            # no archive yet: this node writes one when it stops (see kafka_cds_archive)
            node.cds_tmp = "%s.%d.%s.tmp" % (kafka_cds_archive(), os.getpid(), node.id)
            cds = ["-XX:ArchiveClassesAtExit=" + node.cds_tmp]
            self._cds_dumping = True
        argv = (["java", "-Xmx" + self.heap] + KAFKA_BROKER_JVM + cds
                + (KAFKA_QUICK_JIT if self.jit == "quick" else [])
                + ["-Dlog4j2.configurationFile=" + KAFKA_LOG4J_BROKER,
                   "-Dkafka.logs.dir=" + node.dir,
                   "-cp", os.path.join(libs, "*"), "kafka.Kafka", node.config_path])
        node.proc = Proc(argv, log_path=node.stdout_path)
        node.pid = node.proc.pid

    def _release(self):
        """detach=True: once started, nodes outlive this process (the harness's exit-time
        safety net no longer kills them; `kafka-cluster down` does)."""
        if not self.detach:
            return
        with _procs_lock:
            for n in self.nodes:
                if n.proc in _procs:
                    _procs.remove(n.proc)

    def _bind_failed(self, node):
        text = tail(node.stdout_path, 400) + tail(node.server_log, 400)
        return "Address already in use" in text or "BindException" in text

    def _wait_node(self, node, deadline):
        """Wait until `node`'s client listener answers Metadata listing every node."""
        last = None
        while time.monotonic() < deadline:
            if not node.alive():
                raise _NodeExited(node)
            try:
                with KafkaWire(node.client, timeout=5) as w:
                    brokers, _, _ = w.metadata()
                if len(brokers) >= self.n:
                    return
                last = "%d of %d brokers registered" % (len(brokers), self.n)
            except (OSError, AssertionError, IndexError) as e:
                last = str(e) or e.__class__.__name__
            time.sleep(0.25)
        raise AssertionError("kafka node %d not ready after %.0fs (%s); log:\n%s"
                             % (node.id, KAFKA_READY_TIMEOUT, last, tail(node.server_log, 40)))

    def start(self):
        """Format and start every node; returns when all are ready. On any failure everything
        started is stopped before the exception propagates."""
        t0 = time.monotonic()
        for attempt in range(3):
            self.cluster_id = _kafka_cluster_id()
            if os.path.isdir(self.root):
                for name in os.listdir(self.root):
                    if name.startswith("node-"):
                        shutil.rmtree(os.path.join(self.root, name), ignore_errors=True)
            os.makedirs(self.root, exist_ok=True)
            self.nodes = [KafkaNode(i + 1, self.root, p) for i, p in enumerate(self._pick_ports())]
            try:
                self._write_configs()
                self._format()
                for node in self.nodes:
                    self._launch(node)
                deadline = time.monotonic() + KAFKA_READY_TIMEOUT
                for node in self.nodes:
                    self._wait_node(node, deadline)
            except _NodeExited as e:
                bind = self._bind_failed(e.node)
                self.stop()
                if bind and attempt < 2:
                    continue  # another process took one of our ports: new ports, new try
                raise AssertionError("kafka node %d exited during start-up; log:\n%s\n%s"
                                     % (e.node.id, tail(e.node.stdout_path, 30), tail(e.node.server_log, 30)))
            except BaseException:
                self.stop()
                raise
            break
        self.startup_seconds = time.monotonic() - t0
        self._release()
        self.save_state()
        return self

    def stop_node(self, node_id, hard=False, grace=60.0):
        """Stop one node: SIGTERM (controlled shutdown, leadership moves) or, hard=True, SIGKILL.
        Its data stays; start_node() brings it back."""
        node = self.node(node_id)
        self._terminate([node], hard=hard, grace=grace)
        self.save_state()

    def start_node(self, node_id):
        """Restart a stopped node with its data; returns once Metadata from it lists all nodes."""
        node = self.node(node_id)
        if node.alive():
            return
        self._launch(node)
        try:
            self._wait_node(node, time.monotonic() + KAFKA_READY_TIMEOUT)
        except _NodeExited:
            self._terminate([node])
            raise AssertionError("kafka node %d exited on restart; log:\n%s"
                                 % (node.id, tail(node.server_log, 40)))
        except BaseException:
            self._terminate([node])
            raise
        self._release()
        self.save_state()

    def _terminate(self, nodes, hard=False, grace=30.0):
        live = [n for n in nodes if n.alive()]
        if any(n.cds_tmp for n in live) and not hard:
            grace = max(grace, 180.0)  # writing the class-data archive takes a while, once
        for n in live:
            try:
                os.killpg(n.pid, signal.SIGKILL if hard else signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        for n in live:
            while n.alive() and time.monotonic() < deadline:
                time.sleep(0.1)
            if n.alive():
                try:
                    os.killpg(n.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                while n.alive():
                    time.sleep(0.05)
        for n in nodes:
            if n.proc is not None:
                n.proc.kill()
                n.proc = None
            n.pid = None
            if n.cds_tmp:
                # a clean stop wrote the archive: publish it atomically (last writer wins)
                try:
                    if os.path.getsize(n.cds_tmp) > 0:
                        os.replace(n.cds_tmp, kafka_cds_archive())
                except OSError:
                    pass
                try:
                    os.unlink(n.cds_tmp)
                except OSError:
                    pass
                n.cds_tmp = None

    def stop(self, grace=20.0):
        """Stop every node (all at once, SIGTERM, SIGKILL after `grace`). Idempotent."""
        self._terminate(self.nodes, grace=grace)
        if self.nodes:
            self.save_state()

    # ---- state file (the CLI)
    def describe(self):
        return {"version": self.version, "cluster_id": self.cluster_id, "dir": self.root,
                "nodes": [n.describe() for n in self.nodes], "bootstrap": self.bootstrap,
                "sasl_bootstrap": self.sasl_bootstrap, "internal_bootstrap": self.internal_bootstrap,
                "sasl_mechanisms": ["SCRAM-SHA-512", "PLAIN"], "users": self.users,
                "startup_seconds": None if self.startup_seconds is None else round(self.startup_seconds, 1)}

    def save_state(self):
        tmp = os.path.join(self.root, self.STATE + ".tmp")
        with open(tmp, "w") as f:
            json.dump({"nodes_total": self.n, "heap": self.heap, "broker_config": self.broker_config,
                   "advertise": self.advertise, "jit": self.jit,
                       "features": self.features, **self.describe(),
                       "ports": {n.id: n.ports for n in self.nodes}}, f, indent=2)
        os.replace(tmp, os.path.join(self.root, self.STATE))

    @classmethod
    def attach(cls, root):
        """A KafkaCluster for a cluster another process started (detach=True) in `root`."""
        with open(os.path.join(root, cls.STATE)) as f:
            st = json.load(f)
        c = cls(root, nodes=st["nodes_total"], broker_config=st["broker_config"],
                features=st["features"], heap=st["heap"], users=st["users"],
                advertise=st.get("advertise"), jit=st.get("jit", "quick"), start=False, detach=True)
        c.cluster_id = st["cluster_id"]
        c.startup_seconds = st.get("startup_seconds")
        for nd in st["nodes"]:
            node = KafkaNode(nd["id"], c.root, st["ports"][str(nd["id"])])
            node.pid = nd["pid"] if nd["pid"] and _pid_runs(nd["pid"], node.config_path) else None
            c.nodes.append(node)
        return c

    # ---- topics and data
    def create_topic(self, name, partitions=1, replication=None, config=None):
        """Create a topic (CreateTopics through the internal listener) and wait until every
        partition has a leader. Raises on any error, TOPIC_ALREADY_EXISTS included."""
        rf = replication or min(3, self.n)
        live = [n for n in self.nodes if n.alive()]
        with KafkaWire(live[0].internal, timeout=40) as w:
            res = w.create_topics([(name, partitions, rf, dict(config or {}))])
        err, msg = res.get(name, (-1, "no answer"))
        if err != 0:
            raise AssertionError("CreateTopics %s: error %d %s" % (name, err, msg))
        self.wait_topic(name, partitions)

    def delete_topics(self, names):
        """Delete topics (missing ones are fine); returns once the controller dropped them."""
        live = [n for n in self.nodes if n.alive()]
        with KafkaWire(live[0].internal, timeout=40) as w:
            res = w.delete_topics(list(names))
        for name, err in res.items():
            if err not in (0, 3):  # 3: UNKNOWN_TOPIC_OR_PARTITION
                raise AssertionError("DeleteTopics %s: error %d" % (name, err))

    def reset_topics(self, specs, config=None):
        """Fresh, empty topics: specs are "name[:partitions[:replication]]"; existing topics of
        those names are deleted first (tests sharing one cluster start from empty topics).
        `config` (topic configs) applies to each."""
        if not specs:
            return
        parsed = []
        for spec in specs:
            parts = spec.split(":")
            parsed.append((parts[0], int(parts[1]) if len(parts) > 1 else 1,
                           int(parts[2]) if len(parts) > 2 else None))
        self.delete_topics([p[0] for p in parsed])
        for name, nparts, rf in parsed:
            deadline = time.monotonic() + 60
            while True:
                try:
                    self.create_topic(name, nparts, rf, config)
                    break
                except AssertionError as e:
                    # 36 TOPIC_ALREADY_EXISTS while a deletion is still being applied
                    if "error 36" not in str(e) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)

    def wait_topic(self, name, partitions=1, timeout=60.0):
        """Wait until every live node's metadata shows a leader for all partitions of `name`."""
        def ready():
            for n in self.nodes:
                if not n.alive():
                    continue
                try:
                    with KafkaWire(n.internal, timeout=5) as w:
                        _, _, topics = w.metadata([name])
                except OSError:
                    return False
                terr, parts = topics.get(name, (-1, {}))
                if terr != 0 or len(parts) < partitions or any(e != 0 or l < 0 for e, l in parts.values()):
                    return False
            return True
        wait_until(ready, timeout, "topic %s to have leaders on every node" % name)

    def segment_files(self, topic):
        """Every `*.log` segment file of `topic` under the nodes' log.dirs."""
        out = []
        for d in self.log_dirs:
            if not os.path.isdir(d):
                continue
            for part in sorted(os.listdir(d)):
                if part.rsplit("-", 1)[0] == topic:
                    pdir = os.path.join(d, part)
                    out += [os.path.join(pdir, f) for f in sorted(os.listdir(pdir)) if f.endswith(".log")]
        return out

    def read_segments(self, topic):
        """Concatenated bytes of every segment file of `topic` (all replicas)."""
        data = b""
        for path in self.segment_files(topic):
            with open(path, "rb") as f:
                data += f.read()
        return data

    def tool(self, main_class, args, timeout=CLIENT_TIMEOUT, input=None):
        """Run a Java tool of the pinned release (see kafka_tool)."""
        return kafka_tool(main_class, args, timeout=timeout, input=input)


class _NodeExited(Exception):
    def __init__(self, node):
        super().__init__("kafka node %d exited" % node.id)
        self.node = node


_module_clusters = {}


def module_kafka(nodes=1, sidecar=False, **kw):
    """The real Kafka cluster shared by every test of the calling module (started on first
    use, stopped at interpreter exit by the harness's safety net). Tests reset the topics they
    use (KafkaCluster.reset_topics) or pick unique names, so they stay independent.

    sidecar=True reserves one free port per node (`cluster.sidecar_ports`, {node id: port})
    and makes each node's client listener advertise it: a brokerside listener bound there is
    what clients come back to, whether it rewrites addresses (`kafka`) or not (`tcp`)."""
    key = (nodes, sidecar, json.dumps(kw, sort_keys=True, default=str))
    c = _module_clusters.get(key)
    if c is None:  # (a node a test stopped on purpose stays stopped)
        root = tempfile.mkdtemp(prefix="bs-kafka-%d-" % nodes)
        ports = {}
        if sidecar:
            while len(set(ports.values())) < nodes:
                ports = {i: free_port() for i in range(1, nodes + 1)}
            kw["advertise"] = {i: "127.0.0.1:%d" % p for i, p in ports.items()}
        c = KafkaCluster(root, nodes=nodes, **kw)
        c.sidecar_ports = ports
        _module_clusters[key] = c

        def cleanup(c=c, root=root):
            c.stop()
            if not os.environ.get("BS_KEEP_TMP"):
                shutil.rmtree(root, ignore_errors=True)
        atexit.register(cleanup)
    return c


# ---------------------------------------------------------------------------
# The event path: one daemon per test with its own temp dir (audit, metrics,
# logs, sinks, spool). Formerly events_harness.py.
# ---------------------------------------------------------------------------

# Generous bounds that only stop a hung test; nothing asserts on timing.
WAIT_S = 60.0
HERE = os.path.dirname(os.path.abspath(__file__))
SRC = SOURCE_DIR
BINARY = BROKERSIDE


def wait_for(pred, what, timeout=WAIT_S, interval=0.1):
    """Poll pred() until it returns something truthy; fail with `what` after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def read_ndjson(path):
    """Every complete line of an NDJSON file as parsed objects ([] if missing)."""
    if not os.path.exists(path):
        return []
    with open(path, "rb") as f:
        data = f.read()
    out = []
    for line in data.split(b"\n"):
        if line:
            out.append(json.loads(line))
    return out


def make_cert_dir(outdir):
    """make_certs into outdir, for tests that address the files by name; returns outdir."""
    make_certs(outdir)
    return outdir


def write_hmac_key(path):
    """A 32-byte hex HMAC signing key with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return path


class Daemon:
    """One brokerside process with its config file and stderr log."""

    def __init__(self, tmp, cfg, name="brokerside"):
        self.tmp = tmp
        self.cfg_path = os.path.join(tmp, name + ".json")
        self.log_path = os.path.join(tmp, name + ".log")
        with open(self.cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.proc = None
        self.admin_port = None
        self.log_offset = 0

    def start(self, wait_ready=True, env=None):
        log = open(self.log_path, "ab")
        self.log_offset = log.tell()
        self.proc = subprocess.Popen([BINARY, "--config", self.cfg_path], stdout=log,
                                     stderr=log, cwd=self.tmp, env=env)
        log.close()
        if wait_ready:
            self.admin_port = int(wait_for(self._admin_port, "the admin endpoint line in the log"))
        return self

    def _admin_port(self):
        if self.proc.poll() is not None:
            raise AssertionError("brokerside exited with %s:\n%s" % (self.proc.returncode,
                                                                     self.log()))
        for line in self.log().splitlines():
            if "[main] admin endpoint on" in line:
                return line.rsplit("(port ", 1)[1].rstrip(")")
        return None

    def log(self):
        """This run's stderr (from the last start on)."""
        with open(self.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode("utf-8", "replace")

    def status(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/status" % self.admin_port,
                                    timeout=10) as r:
            return json.loads(r.read())

    def stop(self, sig=signal.SIGTERM, timeout=WAIT_S):
        """Send `sig` and wait; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("brokerside did not exit after %s" % sig)
        log = self.log()
        # Sanitizer builds (BS_SANITIZE=ON) report here; any report fails the test.
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
            if marker in log:
                raise AssertionError("sanitizer report in the daemon log:\n" + log[-4000:])
        return rc

    def kill9(self):
        return self.stop(signal.SIGKILL)

    def cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_cli(*args, cwd=None):
    """Run the binary with args; returns CompletedProcess (text)."""
    return subprocess.run([BINARY] + list(args), capture_output=True, text=True, cwd=cwd,
                          timeout=WAIT_S)


class DaemonTest(unittest.TestCase):
    """Per-test temporary directory and process cleanup (BS_KEEP_TMP=1 keeps the dirs)."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bs-events-")
        self.daemons = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        for d in self.daemons:
            d.cleanup()
        if not (os.environ.get("NT_KEEP") or os.environ.get("BS_KEEP_TMP")):
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            print("kept", self.tmp)

    def daemon(self, cfg, name="brokerside"):
        d = Daemon(self.tmp, cfg, name)
        self.daemons.append(d)
        return d

    def base_config(self, upstream_port, listener_port=None, streams=("audit", "metrics", "logs"),
                    tls=None, sink_dir=None, **extra):
        """A one-listener config with every stream going to one file sink "f"."""
        cfg = {
            "workers": 1,
            "log_level": "info",
            "listeners": [{"name": "clients",
                           "bind": "127.0.0.1:%d" % (listener_port or free_port()),
                           "upstream": "127.0.0.1:%d" % upstream_port,
                           "protocol": "tcp", "broker_id": 1}],
            "admin": {"bind": "127.0.0.1:0", "probe_interval_s": 60},
            "limits": {"shutdown_grace_s": 10},
            "sinks": {"f": {"type": "file", "dir": sink_dir or os.path.join(self.tmp, "events")}},
            "spool": {"dir": os.path.join(self.tmp, "spool")},
        }
        if tls:
            cfg["listeners"][0]["tls"] = tls
        if "audit" in streams:
            cfg["audit"] = {"sinks": ["f"]}
        if "metrics" in streams:
            cfg["metrics"] = {"interval_s": 1, "sinks": ["f"]}
        if "logs" in streams:
            cfg["logs"] = {"files": [], "sinks": ["f"]}
        for k, v in extra.items():
            cfg[k] = v
        return cfg
