"""The daemon under systemd's protocols, with a datagram socket of this test
standing in for systemd: READY=1 once the listeners and the admin endpoint
are up, WATCHDOG=1 from the control loop at half of WATCHDOG_USEC,
RELOADING=1 (with MONOTONIC_USEC) then READY=1 around SIGHUP (also when the
new file is refused), STOPPING=1 when the drain starts; and log lines in the
journald form when $JOURNAL_STREAM names stderr, and as JSON with
log_format "json".
"""

import json
import os
import queue
import re
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class FakeSystemd:
    """An abstract AF_UNIX datagram socket collecting notifications."""

    def __init__(self):
        self.name = "@bs-it-notify-%d-%d" % (os.getpid(), time.monotonic_ns())
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.messages = queue.Queue()
        self._closed = False
        threading.Thread(target=self._recv, daemon=True).start()

    def _recv(self):
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            self.messages.put((time.monotonic(), data.decode()))

    def next(self, pred, timeout=harness.START_TIMEOUT, what="a notification"):
        """The first message (skipping others) for which pred(fields) holds;
        fields is the message as a dict."""
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                _, msg = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            fields = dict(line.split("=", 1) for line in msg.split("\n") if "=" in line)
            seen.append(msg)
            if pred(fields):
                return fields
        raise AssertionError("no %s; got %r" % (what, seen[-10:]))

    def close(self):
        self._closed = True
        self.sock.close()


class SystemdTest(harness.IntegrationTest):

    def start(self, config, env_extra, log_name="brokerside"):
        path = os.path.join(self.tmp, log_name + ".json")
        with open(path, "w") as f:
            json.dump(config, f)
        log = os.path.join(self.tmp, log_name + ".log")
        self.logs.append(log)
        env = dict(os.environ)
        env.update(env_extra)
        proc = harness.Proc([harness.BROKERSIDE, "--config", path], log_path=log, env=env)
        self.addCleanup(proc.kill)
        return proc, path, log

    def test_notifications_follow_the_daemon_life(self):
        echo = self.upstream("echo")
        sysd = FakeSystemd()
        self.addCleanup(sysd.close)
        port, admin = harness.free_port(), harness.free_port()
        cfg = harness.base_config(admin, [harness.tls_listener(
            self.certs, "127.0.0.1:%d" % port, echo.addr)])
        proc, path, log = self.start(cfg, {"NOTIFY_SOCKET": sysd.name,
                                           "WATCHDOG_USEC": "400000"})
        ready = sysd.next(lambda f: f.get("READY") == "1", what="READY=1")
        self.assertEqual(ready.get("STATUS"), "serving")
        # READY=1 means: the listener accepts and the admin endpoint answers, right now.
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        code, _ = harness.http_get("http://127.0.0.1:%d/healthz" % admin)
        self.assertEqual(code, 200)
        # The watchdog keeps coming from the control loop (every 0.2 s asked: count a few).
        for _ in range(3):
            sysd.next(lambda f: f.get("WATCHDOG") == "1", what="WATCHDOG=1")
        # SIGHUP: RELOADING=1 with a monotonic timestamp, then READY=1 again.
        before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        proc.send_signal(signal.SIGHUP)
        rel = sysd.next(lambda f: f.get("RELOADING") == "1", what="RELOADING=1")
        after = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.assertTrue(before <= int(rel["MONOTONIC_USEC"]) <= after, rel)
        sysd.next(lambda f: f.get("READY") == "1", what="READY=1 after the reload")
        # A refused reload still ends with READY=1: the old config serves on.
        with open(path, "w") as f:
            f.write("{ not json")
        proc.send_signal(signal.SIGHUP)
        sysd.next(lambda f: f.get("RELOADING") == "1", what="RELOADING=1 (bad file)")
        sysd.next(lambda f: f.get("READY") == "1", what="READY=1 after a refused reload")
        self.assertTrue(proc.alive())
        # SIGTERM: STOPPING=1, then a clean exit.
        proc.send_signal(signal.SIGTERM)
        sysd.next(lambda f: f.get("STOPPING") == "1", what="STOPPING=1")
        self.assertEqual(proc.wait(60), 0)
        with open(log) as f:
            text = f.read()
        self.assertIn("systemd watchdog: pinging every 0.200 s", text)
        self.assertNotIn("cannot notify systemd", text)

    def test_without_watchdog_no_pings(self):
        echo = self.upstream("echo")
        sysd = FakeSystemd()
        self.addCleanup(sysd.close)
        port = harness.free_port()
        cfg = harness.base_config(harness.free_port(), [harness.tls_listener(
            self.certs, "127.0.0.1:%d" % port, echo.addr)])
        # WATCHDOG_PID names another process: the watchdog is not ours.
        proc, _, _ = self.start(cfg, {"NOTIFY_SOCKET": sysd.name, "WATCHDOG_USEC": "200000",
                                      "WATCHDOG_PID": "1"})
        sysd.next(lambda f: f.get("READY") == "1", what="READY=1")
        proc.send_signal(signal.SIGTERM)
        sysd.next(lambda f: f.get("STOPPING") == "1", what="STOPPING=1")
        self.assertEqual(proc.wait(60), 0)
        rest = []
        while not sysd.messages.empty():
            rest.append(sysd.messages.get()[1])
        self.assertFalse([m for m in rest if "WATCHDOG" in m], rest)

    def test_journal_and_json_log_lines(self):
        echo = self.upstream("echo")
        port = harness.free_port()
        cfg = harness.base_config(harness.free_port(), [harness.tls_listener(
            self.certs, "127.0.0.1:%d" % port, echo.addr)])
        # stderr is a file here: make JOURNAL_STREAM name it, as systemd does for the journal.
        log = os.path.join(self.tmp, "journal.log")
        open(log, "w").close()
        st = os.stat(log)
        journal = {"JOURNAL_STREAM": "%d:%d" % (st.st_dev, st.st_ino)}
        proc, _, _ = self.start(cfg, journal, log_name="journal")
        harness.wait_until(lambda: "running" in open(log).read(), what="start-up line")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)
        lines = open(log).read().splitlines()
        self.assertTrue(lines)
        for line in lines:
            # <priority>[module] message, and no timestamp: journald stamps lines itself
            self.assertRegex(line, r"^<[3467]>\[[a-z_]+\] ")
            self.assertNotRegex(line, r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")
        self.assertTrue(any(re.match(r"^<4>\[config\] encryption at rest is OFF", ln) for ln in lines))
        self.assertTrue(any(re.match(r"^<6>\[main\] brokerside .* running", ln) for ln in lines))

        # log_format json, not under the journal: one object per line with a timestamp.
        cfg["log_format"] = "json"
        cfg["admin"]["bind"] = "127.0.0.1:%d" % harness.free_port()
        cfg["listeners"][0]["bind"] = "127.0.0.1:%d" % harness.free_port()
        proc, _, jlog = self.start(cfg, {"JOURNAL_STREAM": ""}, log_name="json")
        harness.wait_until(lambda: "running" in open(jlog).read(), what="start-up line")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(60), 0)
        objs = [json.loads(ln) for ln in open(jlog).read().splitlines()]
        self.assertTrue(any(o["level"] == "warn" and o["module"] == "config" and
                            o["msg"].startswith("encryption at rest is OFF") for o in objs), objs)
        for o in objs:
            self.assertEqual(set(o), {"ts", "level", "module", "msg"})
            self.assertRegex(o["ts"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


if __name__ == "__main__":
    harness.main()
