"""Broker log tailing end to end through the daemon (issue 5, log tailing).

The test writes a log4j file (single lines and multi-line stack traces),
rotates it by rename-and-create and by copytruncate while the daemon runs,
kills the daemon with SIGKILL in between and writes more while it is down,
restarts it, and finally checks the file sink's logs.ndjson: every event
exactly once, stack traces joined to their event.
"""
import os
import shutil
import time
import unittest

import harness


class LogTailing(harness.DaemonTest):
    def setUp(self):
        super().setUp()
        self.logdir = os.path.join(self.tmp, "kafka-logs")
        os.mkdir(self.logdir)
        self.path = os.path.join(self.logdir, "server.log")
        self.n = 0
        self.out = os.path.join(self.tmp, "events", "logs.ndjson")
        cfg = self.base_config(harness.free_port(), streams=())
        cfg["logs"] = {"files": [{"path": self.path}], "sinks": ["f"]}
        self.d = self.daemon(cfg)

    def write(self, count):
        """Append `count` events; every third carries a stack trace."""
        with open(self.path, "a") as f:
            for _ in range(count):
                i = self.n
                self.n += 1
                f.write("[2026-11-24 21:%02d:%02d,%03d] INFO event-%d done (kafka.server.Test)\n"
                        % (i // 3600 % 60, i // 60 % 60, i % 1000, i))
                if i % 3 == 0:
                    f.write("java.lang.IllegalStateException: boom-%d\n"
                            "\tat kafka.server.Test.run(Test.scala:%d)\n"
                            "Caused by: java.io.IOException: inner-%d\n" % (i, i, i))

    def seen(self):
        out = {}
        for e in harness.read_ndjson(self.out):
            first = e["message"].split("\n", 1)[0]
            self.assertTrue(first.startswith("event-"), e)
            n = int(first.split()[0][len("event-"):])
            out.setdefault(n, []).append(e)
        return out

    def wait_all(self):
        harness.wait_for(lambda: len(self.seen()) == self.n, "all %d events" % self.n)

    def test_rotations_and_kill9_every_event_once(self):
        self.write(50)
        self.d.start()
        self.wait_all()
        # rename-and-create mid-stream: the renamed file is drained by inode
        self.write(20)
        os.rename(self.path, self.path + ".1")
        self.write(30)
        self.wait_all()
        # kill -9 while events are being written, then more while it is down
        self.write(40)
        self.d.kill9()
        self.write(25)
        self.d.start()
        self.wait_all()
        # copytruncate: copy, then cut the original back to zero
        self.write(15)
        self.wait_all()
        shutil.copyfile(self.path, self.path + ".2")
        with open(self.path, "r+") as f:
            f.truncate(0)
        self.write(35)
        self.wait_all()
        self.d.kill9()
        self.d.start()
        self.write(5)
        self.wait_all()
        self.assertEqual(self.d.stop(), 0)

        seen = self.seen()
        dups = {k: len(v) for k, v in seen.items() if len(v) != 1}
        self.assertEqual(dups, {}, "events delivered more than once")
        self.assertEqual(sorted(seen), list(range(self.n)))
        for i in (0, 3, 99, 150):
            e = seen[i][0]
            self.assertEqual(e["level"], "INFO")
            self.assertEqual(e["logger"], "kafka.server.Test")
            self.assertIn("Caused by: java.io.IOException: inner-%d" % i, e["message"])
            self.assertIn("\tat kafka.server.Test.run(Test.scala:%d)" % i, e["message"])
        self.assertNotIn("\n", seen[1][0]["message"])
        self.assertTrue(seen[1][0]["time"].startswith("2026-11-24T21:"))


if __name__ == "__main__":
    unittest.main()
