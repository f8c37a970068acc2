"""Hostile Kafka clients against a `kafka` listener in front of a real Apache Kafka broker.

- A 26-byte Metadata request announcing 2^31-1 topics (it took a broker down before):
  the sidecar closes that connection without forwarding it; the broker and every
  other client are unaffected.
- A client that closes with half a request sent: both sides are closed at once
  (counted), not kept until the idle timeout.
- A client that sends half a request and then nothing: closed at kafka.frame_timeout_s.
- A held request larger than kafka.max_held_request_bytes closes its connection.
"""

import os
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def metadata_bomb():
    """Metadata v1: client id "", topics count 0x7fffffff and nothing else (26 bytes)."""
    body = struct.pack(">hhih", 3, 1, 7, 4) + b"evil" + struct.pack(">i", 0x7fffffff)
    frame = struct.pack(">i", len(body)) + body
    return frame


def read_until_closed(sock, limit=1 << 20):
    data = b""
    while len(data) < limit:
        try:
            d = sock.recv(65536)
        except (ConnectionResetError, OSError):
            break
        if not d:
            break
        data += d
    return data


class HostileKafkaTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc, self.bs, self.port = self.cluster(
            protocol="kafka", topics=("safe:1",), config_extra={"limits": {"idle_timeout_s": 3600}})

    def metric(self, name, **labels):
        return harness.metric(self.bs.metrics(), name, **labels)

    def open_conns(self):
        return self.metric("brokerside_connections_open")

    def test_undecodable_request_closed_not_forwarded(self):
        s = harness.tls_connect(self.port, self.certs)
        s.sendall(metadata_bomb())
        self.assertEqual(read_until_closed(s), b"", "the sidecar answered or forwarded it")
        s.close()
        harness.wait_until(lambda: self.metric("brokerside_kafka_protocol_errors_total",
                                               reason="undecodable") >= 1,
                           what="the undecodable request counted")
        # the broker is fine: a real client produces and consumes through the sidecar
        harness.kcat_produce("127.0.0.1:%d" % self.port, "safe", ["after-the-bomb"], self.certs,
                             client_cert=False)
        got = harness.kcat_consume("127.0.0.1:%d" % self.port, "safe", 1, self.certs,
                                   client_cert=False)
        self.assertEqual(got, ["after-the-bomb"])

    def test_partial_frame_then_close(self):
        before = self.metric("brokerside_connections_truncated_total", side="client")
        s = harness.tls_connect(self.port, self.certs)
        s.sendall(struct.pack(">i", 500) + b"\x00\x03\x00\x01" + b"x" * 20)
        # TCP half-close (the ssl module then reads raw bytes: the TLS 1.3 session
        # tickets may still arrive; what matters is that the sidecar closes)
        s.shutdown(socket.SHUT_WR)
        s.settimeout(60)
        read_until_closed(s)
        s.close()
        harness.wait_until(lambda: self.metric("brokerside_connections_truncated_total",
                                               side="client") == before + 1,
                           what="the truncated connection counted")
        harness.wait_until(lambda: self.open_conns() == 0, what="no connection left open")


class HostileKafkaLimitsTest(harness.IntegrationTest):

    def test_slow_and_oversized_requests(self):
        kc = self.kafka(nodes=1)
        port2 = harness.free_port()
        lst = harness.tls_listener(self.certs, "127.0.0.1:%d" % port2, kc.node(1).client,
                                   protocol="kafka", name="limits")
        cfg = harness.base_config(harness.free_port(), [lst],
                                  limits={"idle_timeout_s": 3600},
                                  kafka={"advertise": {"1": "127.0.0.1:%d" % port2},
                                         "frame_timeout_s": 2,
                                         "max_held_request_bytes": 65536})
        bs2 = self.start_brokerside(cfg, name="limits")
        # half a Metadata request, then silence: closed at frame_timeout_s
        s = harness.tls_connect(port2, self.certs)
        s.sendall(struct.pack(">i", 200) + b"\x00\x03\x00\x01\x00\x00\x00\x09")
        s.settimeout(60)
        self.assertEqual(read_until_closed(s), b"")
        s.close()
        self.assertEqual(harness.metric(bs2.metrics(), "brokerside_connections_overdue_total"), 1)
        # a 200 KB Metadata request (well formed) is above max_held_request_bytes
        names = b"".join(struct.pack(">h", 5) + b"topic" for _ in range(30000))
        body = struct.pack(">hhih", 3, 1, 10, 0) + struct.pack(">i", 30000) + names
        s = harness.tls_connect(port2, self.certs)
        try:
            s.sendall(struct.pack(">i", len(body)) + body)
        except OSError:
            pass  # closed while we were still sending: fine
        self.assertEqual(read_until_closed(s), b"")
        s.close()
        self.assertEqual(harness.metric(bs2.metrics(), "brokerside_kafka_held_refused_total",
                                        reason="too_large"), 1)


if __name__ == "__main__":
    harness.main()
