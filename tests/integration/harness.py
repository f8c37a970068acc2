"""Integration-test harness for brokerside (stdlib only; runs with /usr/bin/python3).

Every integration test starts its own processes on free ephemeral ports:
  - a dev Kafka cluster (tests/tools/devbroker, librdkafka's mock cluster),
  - brokerside with a config written from a dict,
  - clients: kcat over TLS, openssl s_client, sslscan, raw sockets.

Every process is started in its own process group and registered; the group
is killed at test cleanup and again at interpreter exit, so nothing leaks even
when a test fails or the runner is interrupted. When a test fails, the tail of
every log file the test registered (brokerside's stderr, devbroker's stderr)
is printed with the failure, and the test's temp dir is kept.

Environment: BS_BUILD_DIR (default <source>/build), BS_SOURCE_DIR,
BS_KEEP_TMP=1 keeps every temp dir.
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

def free_port():
    """A TCP port that was free on 127.0.0.1 a moment ago (kernel-chosen)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
        return bs

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

    def cluster(self, listeners_extra=None, protocol="tcp", client_auth="none", topics=("test:1",),
                tls_extra=None, config_extra=None, broker_up=True):
        """The common set-up: a 1-broker dev cluster that advertises the
        sidecar's TLS port, and brokerside terminating TLS in front of it.
        Returns (devbroker, brokerside, sidecar_port)."""
        port = free_port()
        db = self.start_devbroker(brokers=1, topics=topics, advertise={1: "127.0.0.1:%d" % port})
        if not broker_up:
            db.command("down 1")
        lst = tls_listener(self.certs, "127.0.0.1:%d" % port, db.listen_addr(1), protocol=protocol,
                           client_auth=client_auth, **(tls_extra or {}))
        cfg = base_config(free_port(), [lst] + list(listeners_extra or []), **(config_extra or {}))
        bs = self.start_brokerside(cfg)
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
