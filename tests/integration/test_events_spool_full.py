"""The full-spool policy through the daemon: logs are shipped to a sink that
cannot deliver (nothing listens at its endpoint), so the spool fills up to the
logs limit (80% of spool.max_bytes). The tailer must stop reading (counted in
/status), nothing is dropped silently, and audit events keep being admitted
(they have a reserve above max_bytes) and delivered by their own sink."""
import os
import socket
import unittest

import harness

MAX = 16 * 1024 * 1024  # the smallest spool.max_bytes the config accepts


class SpoolFull(harness.DaemonTest):
    def test_logs_block_audit_still_flows(self):
        up = harness.EchoServer()
        self.addCleanup(up.close)
        logfile = os.path.join(self.tmp, "server.log")
        line = "[2026-11-24 21:00:00,000] INFO " + "x" * 100 + " (kafka.Test)\n"
        with open(logfile, "w") as f:
            f.write(line * (MAX // len(line) + 1000))  # more than the spool may hold
        cfg = self.base_config(up.port, streams=("audit",))
        dead = harness.free_port()  # nothing listens here: every delivery fails, retried
        cfg["aws"] = {"region": "eu-west-1", "max_attempts": 1, "connect_timeout_s": 1}
        cfg["sinks"]["dead"] = {"type": "cloudwatch_logs",
                                "endpoint": "http://127.0.0.1:%d" % dead,
                                "log_group": "g", "backoff_max_ms": 1000}
        cfg["logs"] = {"files": [{"path": logfile}], "sinks": ["dead"]}
        cfg["spool"].update({"max_bytes": MAX, "segment_bytes": 1024 * 1024})
        cfg["limits"]["shutdown_grace_s"] = 2
        port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDTEST", AWS_SECRET_ACCESS_KEY="secret")
        env.pop("AWS_PROFILE", None)
        env.pop("AWS_SESSION_TOKEN", None)
        d = self.daemon(cfg).start(env=env)

        st = harness.wait_for(lambda: (lambda s: s if s["logtail"]["blocked"] > 0 else None)(
            d.status()), "the tailer to block on the full spool")
        self.assertGreater(st["spool"]["rejected"]["logs"], 0)
        self.assertLessEqual(st["spool"]["bytes"], MAX * 80 // 100 + 1024 * 1024)
        self.assertEqual(st["events"]["dropped"], {"audit": 0, "metrics": 0, "logs": 0})
        sinks = {s["name"]: s for s in st["sinks"]}
        self.assertEqual(sinks["dead"]["delivered"], 0)
        self.assertGreater(sinks["dead"]["lag_bytes"], MAX // 2)
        harness.wait_for(lambda: d.status()["sinks"] and any(
            s["name"] == "dead" and s["last_error"] for s in d.status()["sinks"]),
            "the dead sink's last error in /status")

        # Audit events are admitted above the logs limit and reach their file.
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"hi")
            self.assertEqual(s.recv(10), b"hi")
        audit = os.path.join(self.tmp, "events", "audit.ndjson")
        harness.wait_for(lambda: any(e["eventName"] == "ConnectionClosed"
                                     for e in harness.read_ndjson(audit)),
                         "ConnectionClosed in audit.ndjson despite the full spool")
        st = d.status()
        self.assertEqual(st["spool"]["rejected"]["audit"], 0)
        # Nothing lost: lines not yet read stay in the file; the checkpoint
        # only covers what the spool holds (the tailer's offsets lag behind).
        self.assertLess(st["logtail"]["bytes"], os.path.getsize(logfile))
        # A short grace: the dead sink cannot finish, shutdown must still end.
        self.assertEqual(d.stop(), 0)
        self.assertIn("sinks not idle after the grace period", d.log())


if __name__ == "__main__":
    unittest.main()
