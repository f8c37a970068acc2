"""The dev Kafka cluster itself (tests/tools/devbroker): what every other
integration test and the demo stand on. Talks to it directly with kcat
(plaintext), no brokerside involved."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class DevBrokerTest(harness.IntegrationTest):

    def test_produce_consume_three_brokers(self):
        db = self.start_devbroker(brokers=3, topics=["t3:3:3"])
        self.assertEqual(len(db.bootstrap.split(",")), 3)
        msgs = ["m%d" % i for i in range(20)]
        harness.kcat_produce(db.bootstrap, "t3", msgs)
        got = harness.kcat_consume(db.bootstrap, "t3", len(msgs))
        self.assertEqual(sorted(got), sorted(msgs))

    def test_metadata_reports_advertised_address(self):
        adv = "127.0.0.1:%d" % harness.free_port()
        db = self.start_devbroker(brokers=1, topics=["a:2"], advertise={1: adv})
        self.assertEqual(db.brokers[1]["advertised"], adv)
        self.assertNotEqual(db.brokers[1]["listen"], adv)
        r = harness.kcat(db.listen_addr(1), ["-L"])
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertIn("broker 1 at %s" % adv, out)
        self.assertIn('topic "a" with 2 partitions', out)

    def test_commands_and_errors(self):
        db = self.start_devbroker(brokers=2)
        self.assertEqual(db.command("topic x 4 2"), "OK topic x 4 2")
        self.assertTrue(db.command("topic x 4 2", expect_ok=False).startswith("ERR"))
        self.assertEqual(db.command("leader x 1 2"), "OK leader x 1 2")
        self.assertEqual(db.command("error 0 7 2"), "OK error 0 7 2")
        for bad in ("down 3", "down", "up x", "topic y 0 1", "leader x 1 9", "error a 1 1",
                    "frobnicate", "", "down 1 2"):
            self.assertTrue(db.command(bad, expect_ok=False).startswith("ERR"), bad)
        self.assertEqual(db.command("down 1"), "OK down 1")
        self.assertEqual(db.command("up 1"), "OK up 1")
        r = harness.kcat(db.bootstrap, ["-L", "-t", "x"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("partition 1, leader 2", r.stdout.decode())

    def test_broker_down_and_up(self):
        db = self.start_devbroker(brokers=1, topics=["d:1"])
        db.command("down 1")
        r = harness.kcat(db.bootstrap, ["-L", "-m", "3"], timeout=30)
        self.assertNotEqual(r.returncode, 0, "metadata from a broker that is down")
        db.command("up 1")
        harness.kcat_produce(db.bootstrap, "d", ["after-up"])
        self.assertEqual(harness.kcat_consume(db.bootstrap, "d", 1), ["after-up"])

    def test_down_and_up_keeps_address_with_advertise(self):
        # brokerside's upstream is the listen address: it must survive down/up.
        adv = "127.0.0.1:%d" % harness.free_port()
        db = self.start_devbroker(brokers=1, topics=["d:1"], advertise={1: adv})
        host, port = db.listen_addr(1).rsplit(":", 1)
        db.command("down 1")
        with self.assertRaises(ConnectionRefusedError):
            harness.socket.create_connection((host, int(port)), timeout=10).close()
        db.command("up 1")
        r = harness.kcat(db.listen_addr(1), ["-L"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("broker 1 at %s" % adv, r.stdout.decode())

    def test_exits_on_sigterm_and_eof(self):
        db = self.start_devbroker(brokers=1)
        db.proc.send_signal(harness.signal.SIGTERM)
        self.assertEqual(db.proc.wait(30), 0)
        db2 = self.start_devbroker(brokers=1)
        db2.proc.popen.stdin.close()
        self.assertEqual(db2.proc.wait(30), 0)

    def test_bad_arguments(self):
        for argv in (["--brokers", "0"], ["--brokers", "2", "--advertise", "3=127.0.0.1:1"],
                     ["--brokers", "1", "--advertise", "1=nohost"], ["--bogus", "1"],
                     ["--brokers", "1", "--topic", "t:0"]):
            r = harness.run([harness.DEVBROKER] + argv, timeout=30, input=b"")
            self.assertNotEqual(r.returncode, 0, argv)
            self.assertTrue(r.stderr, argv)


if __name__ == "__main__":
    harness.main()
