"""One process per spool, file-sink directory and log-tail checkpoint.

A second brokerside started on the same spool (the careless-operator case:
the same config twice, or a stale unit left running) must exit with a clear
message before it touches anything: no cut of the live segment's tail, no
second audit chain start in it, no sink or tailer running. The first process
keeps going and its audit chain still verifies. The same lock guards a file
sink's output directory and the log tailer's checkpoint when only those are
shared."""
import os
import socket
import unittest

import harness


def snapshot(root):
    """{relative path: (size, mtime_ns)} of every file under root."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            st = os.stat(p)
            out[os.path.relpath(p, root)] = (st.st_size, st.st_mtime_ns)
    return out


class SingleInstance(harness.DaemonTest):
    def echo_once(self, port):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            s.sendall(b"ping")
            self.assertEqual(s.recv(10), b"ping")

    def test_second_process_on_the_same_spool_changes_nothing(self):
        up = harness.EchoServer()
        self.addCleanup(up.close)
        key = harness.write_hmac_key(os.path.join(self.tmp, "audit.key"))
        cfg = self.base_config(up.port, streams=("audit",))
        cfg["audit"]["signing_key_file"] = key
        port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        first = self.daemon(cfg).start()
        for _ in range(5):
            self.echo_once(port)
        audit = os.path.join(self.tmp, "events", "audit.ndjson")
        harness.wait_for(lambda: sum(1 for e in harness.read_ndjson(audit)
                                     if e["eventName"] == "ConnectionClosed") >= 5,
                         "five ConnectionClosed events in the file sink")
        spool = os.path.join(self.tmp, "spool")
        segs = sorted(f for f in os.listdir(spool) if f.endswith(".seg"))
        before = snapshot(spool)
        before_sink = snapshot(os.path.join(self.tmp, "events"))

        second = self.daemon(cfg, name="second").start(wait_ready=False)
        rc = second.proc.wait(timeout=harness.WAIT_S)
        self.assertEqual(rc, 1)
        log = second.log()
        self.assertIn("in use by another brokerside process", log)
        self.assertIn("pid %d" % first.proc.pid, log)
        self.assertNotIn("event path up", log)
        self.assertNotIn("truncat", log.lower())
        # Nothing in the spool changed but the owner's own lock file.
        after = snapshot(spool)
        self.assertEqual({k: v for k, v in after.items() if k != "spool.lock"},
                         {k: v for k, v in before.items() if k != "spool.lock"})
        self.assertEqual(sorted(f for f in os.listdir(spool) if f.endswith(".seg")), segs)
        self.assertEqual(snapshot(os.path.join(self.tmp, "events")), before_sink)

        # The first one is unharmed: more traffic, a clean stop, a verifying chain.
        for _ in range(5):
            self.echo_once(port)
        self.assertEqual(first.stop(), 0)
        r = harness.run_cli("audit", "verify", "--key", key, audit)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_shared_file_sink_dir_and_checkpoint_refused(self):
        up = harness.EchoServer()
        self.addCleanup(up.close)
        logfile = os.path.join(self.tmp, "server.log")
        with open(logfile, "w") as f:
            f.write("[2026-11-24 21:00:00,000] INFO started (kafka.Test)\n")
        state = os.path.join(self.tmp, "tail.state")
        cfg = self.base_config(up.port, streams=("audit", "logs"))
        cfg["logs"] = {"files": [{"path": logfile}], "sinks": ["f"], "state_file": state}
        first = self.daemon(cfg).start()

        # Its own spool, the same file-sink directory: refused at the sink.
        other = self.base_config(up.port, streams=("audit",))
        other["spool"]["dir"] = os.path.join(self.tmp, "spool2")
        d = self.daemon(other, name="second").start(wait_ready=False)
        self.assertEqual(d.proc.wait(timeout=harness.WAIT_S), 1)
        self.assertRegex(d.log(), r"file sink directory .*events is in use by another brokerside "
                                  r"process \(pid %d" % first.proc.pid)

        # Its own spool and sink directory, the same log-tail checkpoint.
        third = self.base_config(up.port, streams=("audit",),
                                 sink_dir=os.path.join(self.tmp, "events3"))
        third["spool"]["dir"] = os.path.join(self.tmp, "spool3")
        third["logs"] = {"files": [{"path": logfile}], "sinks": ["f"], "state_file": state}
        d = self.daemon(third, name="third").start(wait_ready=False)
        self.assertEqual(d.proc.wait(timeout=harness.WAIT_S), 1)
        self.assertRegex(d.log(), r"log-tail checkpoint .*tail.state is in use by another "
                                  r"brokerside process \(pid %d" % first.proc.pid)
        self.assertEqual(first.stop(), 0)


if __name__ == "__main__":
    unittest.main()
