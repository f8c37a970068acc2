"""Signals: SIGTERM drains in-flight transfers and exits 0; SIGHUP reloads
certificates without touching open connections and refuses a broken config.

The transfers are real TLS streams through a `tcp` listener to a plaintext
upstream in this process that checks every byte (SHA-256), so "the transfer
completed" means the upstream received all of it intact and the client got
the upstream's answer back through the sidecar.
"""

import hashlib
import json
import os
import shutil
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

CHUNK = bytes(range(256)) * 256            # 64 KiB


class SigtermTest(harness.IntegrationTest):

    def test_transfer_in_flight_completes(self):
        total = 16 * 1024 * 1024
        sink = self.upstream("sink", sink_bytes=total)
        bs, port = self.sidecar(sink.addr, config_extra={"limits": {"shutdown_grace_s": 60}})
        h = hashlib.sha256()
        with harness.tls_connect(port, self.certs) as s:
            sent = 0
            # Part of the stream before SIGTERM, proven to have arrived upstream
            # so the connection is established end to end.
            while sent < total // 4:
                s.sendall(CHUNK)
                h.update(CHUNK)
                sent += len(CHUNK)
            harness.wait_until(lambda: sink.received > 0, what="bytes at the upstream")
            bs.signal(signal.SIGTERM)
            # New connections are no longer accepted once the listener stops.
            harness.wait_until(lambda: not accepts_tls(port, self.certs), what="listener closed")
            while sent < total:
                s.sendall(CHUNK)
                h.update(CHUNK)
                sent += len(CHUNK)
            digest = harness.recv_exact(s, 64)
        self.assertEqual(digest.decode(), h.hexdigest(), "upstream received different bytes")
        self.assertEqual(bs.proc.wait(90), 0, "exit code after SIGTERM")

    def test_idle_process_exits_zero(self):
        echo = self.upstream("echo")
        bs, port = self.sidecar(echo.addr)
        bs.signal(signal.SIGTERM)
        self.assertEqual(bs.proc.wait(60), 0)


def accepts_tls(port, certs):
    """True if a new TLS connection to port completes its handshake."""
    try:
        with harness.tls_connect(port, certs, timeout=5):
            return True
    except (OSError, ValueError):
        return False


class SighupTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        # The listener uses copies of the server certificate so the test can
        # replace them the way a certificate renewal does.
        self.crt = os.path.join(self.tmp, "live.crt")
        self.key = os.path.join(self.tmp, "live.key")
        shutil.copy(self.certs["server_crt"], self.crt)
        shutil.copy(self.certs["server_key"], self.key)
        self.echo = self.upstream("echo")
        self.bs, self.port = self.sidecar(self.echo.addr,
                                          tls_extra={"cert": self.crt, "key": self.key})

    def roundtrip(self, s, payload):
        s.sendall(payload)
        self.assertEqual(harness.recv_exact(s, len(payload)), payload)

    def test_new_certificate(self):
        old_serial = harness.peer_cert_serial(self.port)
        self.assertEqual(old_serial, harness.cert_serial(self.crt))
        with harness.tls_connect(self.port, self.certs) as s:
            self.roundtrip(s, b"before reload")
            crt, key = harness.make_server_cert(self.certs, self.tmp, "renewed")
            new_serial = harness.cert_serial(crt)
            self.assertNotEqual(new_serial, old_serial)
            shutil.copy(key, self.key)
            shutil.copy(crt, self.crt)
            self.bs.signal(signal.SIGHUP)
            harness.wait_until(lambda: harness.peer_cert_serial(self.port) == new_serial,
                               what="new connections to see certificate serial " + new_serial)
            # The connection opened before the reload is untouched.
            self.roundtrip(s, b"after reload, same connection")
        self.assertTrue(self.bs.proc.alive())
        with harness.tls_connect(self.port, self.certs) as s2:
            self.roundtrip(s2, b"new connection")

    def test_broken_config_is_refused(self):
        serial = harness.peer_cert_serial(self.port)
        with harness.tls_connect(self.port, self.certs) as s:
            self.roundtrip(s, b"before")
            broken = json.loads(json.dumps(self.bs.config))
            broken["listeners"][0]["tls"]["min_version"] = "TLSv1.1"
            broken["no_such_key"] = True
            self.bs.write_config(broken)
            mark = self.bs.log_mark()
            self.bs.signal(signal.SIGHUP)
            self.bs.wait_log(r"(?i)(refus|reject)\w*", since=mark)
            self.assertTrue(self.bs.proc.alive(), "brokerside exited on a broken reload")
            self.roundtrip(s, b"after")
        self.assertEqual(harness.peer_cert_serial(self.port), serial)
        with harness.tls_connect(self.port, self.certs) as s2:
            self.roundtrip(s2, b"new connection still served")
        harness.wait_http(self.bs.url("/readyz"), 200)

    def test_broken_certificate_is_refused(self):
        serial = harness.peer_cert_serial(self.port)
        with open(self.crt, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        mark = self.bs.log_mark()
        self.bs.signal(signal.SIGHUP)
        self.bs.wait_log(r"(?i)(refus|reject)\w*", since=mark)
        self.assertTrue(self.bs.proc.alive())
        self.assertEqual(harness.peer_cert_serial(self.port), serial)


if __name__ == "__main__":
    harness.main()
