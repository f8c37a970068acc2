"""Audit connection events through the running daemon (issue 5, connection events).

A TLS listener with client_auth required in front of an echo upstream. A good
mTLS client, a TLS 1.1 client and a client with a certificate from another CA
connect; their ConnectionAccepted / ConnectionClosed, TlsHandshakeFailed and
ClientCertificateRejected events must reach the file sink's audit.ndjson with
their fields. SIGTERM seals the chain: `brokerside audit verify --key` exits
0; copies with a flipped byte, a deleted line, two swapped lines or an
inserted line make it exit 1 naming the right line. Group commit: audit
events written to the spool but not yet fsynced (inside a `spool.audit_sync_ms`
window) survive kill -9 of the daemon.
"""
import os
import socket
import ssl
import unittest
import warnings

import harness


class AuditEvents(harness.DaemonTest):
    def setUp(self):
        super().setUp()
        self.certs = harness.make_cert_dir(os.path.join(self.tmp, "certs"))
        self.key = harness.write_hmac_key(os.path.join(self.tmp, "audit.key"))
        self.up = harness.EchoServer()
        self.addCleanup(self.up.close)
        c = self.certs
        cfg = self.base_config(self.up.port, streams=("audit",), tls={
            "cert": c + "/server.crt", "key": c + "/server.key", "client_ca": c + "/ca.crt",
            "client_auth": "required"})
        cfg["audit"]["signing_key_file"] = self.key
        cfg["audit"]["digest_every_events"] = 4
        self.port = int(cfg["listeners"][0]["bind"].rsplit(":", 1)[1])
        self.audit = os.path.join(self.tmp, "events", "audit.ndjson")
        self.cfg = cfg
        self.d = self.daemon(cfg).start()

    def ctx(self, cert=None, tls11=False):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(self.certs + "/ca.crt")
        if cert:
            ctx.load_cert_chain(self.certs + "/%s.crt" % cert, self.certs + "/%s.key" % cert)
        if tls11:
            warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1 is the point here
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        return ctx

    def connect(self, ctx):
        """Handshake, one echo round trip, close. Returns the bytes echoed or the error."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=20)
        s = None
        try:
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(b"ping-1234")
            got = b""
            while len(got) < 9:
                d = s.recv(100)
                if not d:
                    break
                got += d
            s.close()
            return got
        except (ssl.SSLError, OSError) as e:
            return e
        finally:
            if s is not None:
                s.close()
            raw.close()

    def events(self, name):
        return [e for e in harness.read_ndjson(self.audit) if e.get("eventName") == name]

    def test_connection_events_chain_and_tampering(self):
        self.assertEqual(self.connect(self.ctx("client")), b"ping-1234")
        self.assertIsInstance(self.connect(self.ctx(tls11=True)), Exception)
        # The server rejects the certificate after the client's side of the
        # handshake may already look complete: either way no echo comes back.
        self.assertNotEqual(self.connect(self.ctx("untrusted-client")), b"ping-1234")

        closed = harness.wait_for(lambda: self.events("ConnectionClosed"), "ConnectionClosed")
        failed = harness.wait_for(lambda: self.events("TlsHandshakeFailed"), "TlsHandshakeFailed")
        rejected = harness.wait_for(lambda: self.events("ClientCertificateRejected"),
                                    "ClientCertificateRejected")
        accepted = self.events("ConnectionAccepted")
        self.assertEqual(len(accepted), 1, accepted)
        a, c = accepted[0], closed[0]
        self.assertEqual(a["eventType"], "KafkaConnection")
        self.assertTrue(a["userIdentity"]["principal"].startswith("CN=dev-client"), a)
        self.assertEqual(a["listener"], "clients")
        self.assertEqual(a["brokerId"], 1)
        self.assertEqual(a["sourceIPAddress"], "127.0.0.1")
        self.assertGreater(a["sourcePort"], 0)
        self.assertEqual(c["connectionId"], a["connectionId"])
        self.assertEqual(c["userIdentity"], a["userIdentity"])
        self.assertEqual(c["bytesIn"], 9)
        self.assertEqual(c["bytesOut"], 9)
        self.assertGreaterEqual(c["durationMs"], 0)
        self.assertEqual(failed[0]["reason"], "protocol_version")
        self.assertIn(rejected[0]["reason"], ("unknown_ca", "bad_certificate"))
        self.assertNotEqual(failed[0]["connectionId"], rejected[0]["connectionId"])

        st = self.d.status()
        self.assertIn("audit", st)
        self.assertEqual(st["sinks"][0]["name"], "f")
        self.assertTrue(st["audit"]["signed"])

        self.assertEqual(self.d.stop(), 0)
        with open(self.audit) as f:
            lines = f.read().splitlines()
        self.assertIn('"eventName":"AuditDigest"', lines[-1], "SIGTERM must seal the chain")
        r = harness.run_cli("audit", "verify", "--key", self.key, self.audit)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertGreaterEqual(len(lines), 6)

        def verify_copy(name, new_lines):
            path = os.path.join(self.tmp, name)
            with open(path, "w") as f:
                f.write("\n".join(new_lines) + "\n")
            r = harness.run_cli("audit", "verify", "--key", self.key, path)
            self.assertEqual(r.returncode, 1, name + ": " + r.stdout + r.stderr)
            return path, r.stdout

        i = 2  # an event inside the chain, not the chain start
        flipped = list(lines)
        pos = flipped[i].index('"eventTime":"') + 20
        ch = flipped[i][pos]
        flipped[i] = flipped[i][:pos] + ("1" if ch != "1" else "2") + flipped[i][pos + 1:]
        path, out = verify_copy("flipped.ndjson", flipped)
        self.assertIn("%s:%d: event sequence %d: edited" % (path, i + 1, i), out)

        path, out = verify_copy("deleted.ndjson", lines[:i] + lines[i + 1:])
        self.assertIn("%s:%d: event sequence %d: removed" % (path, i + 1, i + 1), out)

        swapped = list(lines)
        swapped[i], swapped[i + 1] = swapped[i + 1], swapped[i]
        path, out = verify_copy("swapped.ndjson", swapped)
        self.assertIn("%s:%d: event sequence %d: reordered" % (path, i + 1, i + 1), out)

        inserted = list(lines)
        inserted.insert(4, lines[1])
        path, out = verify_copy("inserted.ndjson", inserted)
        self.assertIn("%s:5: event sequence 1: inserted" % path, out)

    def test_restart_links_the_new_chain(self):
        self.assertEqual(self.connect(self.ctx("client")), b"ping-1234")
        harness.wait_for(lambda: self.events("ConnectionClosed"), "ConnectionClosed")
        self.assertEqual(self.d.stop(), 0)
        first = harness.read_ndjson(self.audit)
        self.d.start()
        starts = harness.wait_for(lambda: len(self.events("AuditChainStart")) == 2 and
                                  self.events("AuditChainStart"), "the second chain start")
        self.assertEqual(self.d.stop(), 0)
        link = starts[1]["previousChain"]
        self.assertEqual(link["chainId"], first[-1]["chainId"])
        self.assertEqual(link["lastSequence"], first[-1]["sequence"])
        self.assertTrue(link["sealed"])
        r = harness.run_cli("audit", "verify", "--key", self.key, self.audit)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("2 chain(s)", r.stdout)

    def test_kill9_leaves_an_unsealed_tail_that_the_next_chain_links(self):
        # two mTLS connections: start + 2 x (accepted, certificate accepted, closed) = 7
        # events, so with digest_every_events 4 the last three are after the last digest
        for n in (1, 2):
            self.assertEqual(self.connect(self.ctx("client")), b"ping-1234")
            harness.wait_for(lambda: len(self.events("ConnectionClosed")) == n, "close %d" % n)
        self.assertNotIn('"AuditDigest"', open(self.audit).read().splitlines()[-1])
        self.d.kill9()
        self.d.start()
        self.assertEqual(self.connect(self.ctx("client")), b"ping-1234")
        harness.wait_for(lambda: len(self.events("ConnectionClosed")) == 3, "the third close")
        self.assertEqual(self.d.stop(), 0)
        starts = self.events("AuditChainStart")
        self.assertEqual(len(starts), 2)
        self.assertFalse(starts[1]["previousChain"]["sealed"])
        self.assertEqual(starts[1]["previousChain"]["chainId"], starts[0]["chainId"])
        r = harness.run_cli("audit", "verify", "--key", self.key, self.audit)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("unsealed", r.stdout)
        r = harness.run_cli("audit", "verify", "--strict", "--key", self.key, self.audit)
        self.assertEqual(r.returncode, 1, r.stdout)

    def spooled_closes(self):
        """ConnectionClosed records in the spool's segment files (synced or not)."""
        d = os.path.join(self.tmp, "spool")
        n = 0
        for name in os.listdir(d):
            if name.endswith(".seg"):
                with open(os.path.join(d, name), "rb") as f:
                    n += f.read().count(b'"eventName":"ConnectionClosed"')
        return n

    def test_kill9_inside_a_group_commit_window_loses_no_audit_event(self):
        # A window of one second, so the kill lands inside it.
        self.assertEqual(self.d.stop(), 0)
        cfg = self.cfg
        cfg["spool"]["audit_sync_ms"] = 1000
        self.d = self.daemon(cfg).start()
        before = len(self.events("ConnectionClosed"))
        for _ in range(10):
            self.assertEqual(self.connect(self.ctx("client")), b"ping-1234")
        harness.wait_for(lambda: self.spooled_closes() >= before + 10, "10 closes in the spool")
        self.d.kill9()
        self.d.start()
        harness.wait_for(lambda: len(self.events("ConnectionClosed")) >= before + 10,
                         "the 10 closes in the file sink after the restart")
        self.assertEqual(self.d.stop(), 0)
        ids = [e["eventID"] for e in self.events("ConnectionClosed")]
        self.assertEqual(len(ids), before + 10)
        self.assertEqual(len(set(ids)), len(ids))
        r = harness.run_cli("audit", "verify", "--key", self.key, self.audit)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)


if __name__ == "__main__":
    unittest.main()
