"""Helpers for the event-path integration tests (tests/integration/test_events_*.py).

Everything is real: the brokerside binary from BS_BUILD_DIR, real sockets on
free ephemeral ports, real files under a per-test temporary directory. Every
process a test starts is registered and killed in cleanup, even on failure.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("BS_SOURCE_DIR", os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("BS_BUILD_DIR", os.path.join(SRC, "build"))
BINARY = os.path.join(BUILD, "brokerside")
# Generous bounds that only stop a hung test; nothing asserts on timing.
WAIT_S = 60.0


def free_port():
    """A port that was free a moment ago (the daemon binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def make_certs(outdir):
    """Run certs/make-dev-certs.sh into outdir; returns outdir."""
    subprocess.run([os.path.join(SRC, "certs", "make-dev-certs.sh"), outdir], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return outdir


def write_hmac_key(path):
    """A 32-byte hex HMAC signing key with mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(os.urandom(32).hex() + "\n")
    return path


class EchoServer:
    """A TCP upstream that echoes every byte (stands in for the broker)."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c):
        with c:
            try:
                while True:
                    d = c.recv(65536)
                    if not d:
                        return
                    c.sendall(d)
            except OSError:
                return

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


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
