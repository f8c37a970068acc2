"""Issue 16, the real client address: brokerside behind a real HAProxy (Debian's, TCP mode)
that writes PROXY protocol headers (`send-proxy-v2` with a CRC32C TLV, and `send-proxy` for
v1), in front of a real Apache Kafka broker, with real Kafka clients doing mutual TLS through
the balancer to brokerside's TLS listener.

Addresses: HAProxy connects to brokerside from 127.0.0.3 (its `source`), the only network in
`proxy_protocol_sources`; kafka-python connects to HAProxy from 127.0.0.2 (its sockets are
bound there) and kcat from 127.0.0.1. The audit events (sourceIPAddress and sourcePort), the
debug log and an authorization `host` rule must see the client's address, never HAProxy's;
HAProxy's own health checks arrive as v2 LOCAL. Then hostile headers from raw sockets: an
unlisted source, a missing header, malformed v1 and v2 lines, a truncated header followed by
silence (closed at the handshake deadline), a header on a listener without proxy_protocol:
each closes the connection and is counted with its reason, and each refusal of the PROXY
listener is a ProxyProtocolRejected audit event (reason, listener, the socket's peer, a
bounded detail) on the same verified chain."""

import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

LB_ADDR = "127.0.0.3"      # HAProxy's source towards brokerside: the trusted network
CLIENT_ADDR = "127.0.0.2"  # kafka-python's and the raw clients' source towards HAProxy
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
M_REJECTED = "brokerside_proxy_protocol_rejected_total"
REASONS = ("untrusted_source", "missing_header", "malformed_v1", "malformed_v2", "oversized",
           "timeout", "eof")


class _BoundSocket(socket.socket):
    """A socket that binds to CLIENT_ADDR before it connects, remembering its ports."""
    ports = set()

    def _bind_first(self):
        if self.family == socket.AF_INET and self.getsockname()[1] == 0:
            self.bind((CLIENT_ADDR, 0))
            _BoundSocket.ports.add(self.getsockname()[1])

    def connect(self, addr):
        self._bind_first()
        return super().connect(addr)

    def connect_ex(self, addr):
        self._bind_first()
        return super().connect_ex(addr)


def bind_kafka_python_to_client_addr():
    """Make kafka-python's broker connections leave from CLIENT_ADDR: its connection module
    gets a socket module whose socket class binds first (nothing else in the process changes)."""
    import kafka.conn
    shim = types.ModuleType("socket_bound_to_client_addr")
    shim.__dict__.update(socket.__dict__)
    shim.socket = _BoundSocket
    kafka.conn.socket = shim


def raw_from(addr, port, payload=b"", timeout=30.0):
    """A TCP connection from `addr` to 127.0.0.1:`port`, with `payload` sent."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((addr, 0))
    s.connect(("127.0.0.1", port))
    if payload:
        s.sendall(payload)
    return s


def closed_by_peer(s):
    """Read until the peer closes; True if it closed (EOF or reset) without sending data."""
    try:
        return s.recv(4096) == b""
    except ConnectionResetError:
        return True
    finally:
        s.close()


class ProxyProtocolTest(harness.IntegrationTest):

    def setUp(self):
        super().setUp()
        self.kc = self.kafka(nodes=1, sidecar=False)
        self.kc.reset_topics(["pp-orders:1:1", "pp-secret:1:1"])
        self.bs_port, self.direct_port = harness.free_port(), harness.free_port()
        self.hp2, self.hp1 = harness.free_port(), harness.free_port()
        lb = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.bs_port,
                                  self.kc.node(1).client, protocol="kafka",
                                  client_auth="required", name="lb")
        lb.update(broker_id=1, proxy_protocol=True, proxy_protocol_sources=[LB_ADDR + "/32"])
        direct = harness.tls_listener(self.certs, "127.0.0.1:%d" % self.direct_port,
                                      self.kc.node(1).client, protocol="kafka",
                                      client_auth="required", name="direct")
        self.key = os.path.join(self.tmp, "audit.key")
        with open(os.open(self.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            f.write(os.urandom(32).hex() + "\n")
        self.events_dir = os.path.join(self.tmp, "events")
        policy = {"default": "allow", "rules": [
            # were HAProxy's address taken for the client's, every request would be denied
            {"principal": "*", "host": LB_ADDR, "operation": "All", "resource_type": "Topic",
             "resource_name": "*", "permission": "DENY"},
            # only the 127.0.0.1 client (kcat) may not write pp-secret
            {"principal": "*", "host": "127.0.0.1", "operation": "Write",
             "resource_type": "Topic", "resource_name": "pp-secret", "permission": "DENY"}]}
        cfg = harness.base_config(
            harness.free_port(), [lb, direct], log_level="debug",
            limits={"handshake_timeout_s": 3},
            kafka={"advertise": {"1": "127.0.0.1:%d" % self.hp2}},
            authorization=policy,
            audit={"data_events": "each", "signing_key_file": self.key, "sinks": ["files"]},
            sinks={"files": {"type": "file", "dir": self.events_dir}},
            spool={"dir": os.path.join(self.tmp, "spool")})
        self.bs = self.start_brokerside(cfg)
        self.start_haproxy()
        # the harness's start-up probes connected from 127.0.0.1 (untrusted_source)
        self.baseline = {r: self.rejected(r) for r in REASONS}

    def start_haproxy(self):
        cfg = os.path.join(self.tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""# written by tests/integration/test_proxy_protocol.py
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
listen kafka_v2
    bind 127.0.0.1:%(hp2)d
    server bs 127.0.0.1:%(bs)d source %(lb)s send-proxy-v2 proxy-v2-options crc32c check inter 500ms
listen kafka_v1
    bind 127.0.0.1:%(hp1)d
    server bs 127.0.0.1:%(bs)d source %(lb)s send-proxy
""" % {"hp2": self.hp2, "hp1": self.hp1, "bs": self.bs_port, "lb": LB_ADDR})
        hp = self.proc(["haproxy", "-db", "-f", cfg], "haproxy")
        harness.wait_port("127.0.0.1", self.hp2, proc=hp)
        harness.wait_port("127.0.0.1", self.hp1, proc=hp)

    # -------------------------------------------------------------- helpers

    def kafka_ssl(self):
        return dict(security_protocol="SSL", ssl_cafile=self.certs["ca_crt"],
                    ssl_certfile=self.certs["client_crt"], ssl_keyfile=self.certs["client_key"],
                    ssl_check_hostname=False)

    def events(self):
        path = os.path.join(self.events_dir, "audit.ndjson")
        if not os.path.exists(path):
            return []
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_events(self, pred, what):
        """Wait until some audit event satisfies pred; returns all that do."""
        found = []

        def check():
            found[:] = [e for e in self.events() if pred(e)]
            return bool(found)
        harness.wait_until(check, harness.START_TIMEOUT, what)
        return found

    def rejected(self, reason, listener="lb"):
        return harness.metric(self.bs.metrics(), M_REJECTED, listener=listener, reason=reason)

    def wait_rejected(self, reason, at_least):
        harness.wait_until(lambda: self.rejected(reason) >= at_least, harness.START_TIMEOUT,
                           "%s{reason=%s} >= %d" % (M_REJECTED, reason, at_least))

    def tls_ctx(self):
        ctx = ssl.create_default_context(cafile=self.certs["ca_crt"])
        ctx.check_hostname = False
        ctx.load_cert_chain(self.certs["client_crt"], self.certs["client_key"])
        return ctx

    # -------------------------------------------------------------- tests

    def test_clients_through_haproxy_send_proxy_v2(self):
        from kafka import KafkaProducer
        bind_kafka_python_to_client_addr()
        p = KafkaProducer(bootstrap_servers="127.0.0.1:%d" % self.hp2, client_id="pp-python",
                          api_version_auto_timeout_ms=20000, **self.kafka_ssl())
        try:
            for i in range(3):
                p.send("pp-orders", ("o-%d" % i).encode()).get(timeout=60)
            p.send("pp-secret", b"allowed from 127.0.0.2").get(timeout=60)
        finally:
            p.close()
        self.assertTrue(_BoundSocket.ports, "kafka-python never connected")
        # kcat (from 127.0.0.1) reads what kafka-python wrote, and may not write pp-secret
        r = harness.kcat("127.0.0.1:%d" % self.hp2,
                         ["-C", "-t", "pp-orders", "-o", "beginning", "-c", "3", "-e",
                          "-X", "client.id=pp-kcat"], self.certs)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.decode().split(), ["o-0", "o-1", "o-2"])
        r = harness.kcat("127.0.0.1:%d" % self.hp2,
                         ["-P", "-t", "pp-secret", "-X", "client.id=pp-kcat-denied"], self.certs,
                         input=b"denied from 127.0.0.1\n")

        # audit: the Produce calls carry kafka-python's address and its own ports
        produce = self.wait_events(
            lambda e: e.get("eventType") == "KafkaApiCall" and e.get("eventName") == "Produce"
            and e.get("clientId") == "pp-python", "kafka-python's Produce events")
        for e in produce:
            self.assertEqual(e["sourceIPAddress"], CLIENT_ADDR, e)
            self.assertIn(e["sourcePort"], _BoundSocket.ports, e)
            self.assertEqual(e["listener"], "lb")
            self.assertEqual(e.get("errorCode"), 0, e)
        fetch = self.wait_events(
            lambda e: e.get("eventType") == "KafkaApiCall" and e.get("eventName") == "Fetch"
            and e.get("clientId") == "pp-kcat", "kcat's Fetch events")
        self.assertTrue(all(e["sourceIPAddress"] == "127.0.0.1" for e in fetch), fetch)
        # the host rule judged kcat by its own address: its write to pp-secret was denied
        denied = self.wait_events(
            lambda e: e.get("eventType") == "KafkaAuthorization" and e.get("decision") == "DENY",
            "a denied request")
        self.assertTrue(all(e["sourceIPAddress"] == "127.0.0.1" for e in denied), denied)
        self.assertTrue(any(a.get("name") == "pp-secret" and a.get("rule") == "rules[1]"
                            for e in denied for a in e["authorization"]), denied)
        # connection events: accepted and closed under the client's address
        accepted = self.wait_events(
            lambda e: e.get("eventName") == "ConnectionAccepted" and e.get("listener") == "lb"
            and e.get("sourceIPAddress") == CLIENT_ADDR, "ConnectionAccepted from 127.0.0.2")
        self.assertTrue(all(e["sourcePort"] in _BoundSocket.ports for e in accepted), accepted)
        self.wait_events(lambda e: e.get("eventName") == "ConnectionClosed"
                         and e.get("sourceIPAddress") == CLIENT_ADDR, "ConnectionClosed")
        # nothing a client sent was attributed to HAProxy's address
        self.assertFalse([e for e in self.events() if e.get("eventType") in
                          ("KafkaApiCall", "KafkaAuthorization")
                          and e.get("sourceIPAddress") == LB_ADDR])

        # logs: the header was seen from HAProxy and named the client
        self.bs.wait_log(r"listener lb: PROXY v2 header from %s:\d+: client %s:(\d+) \(1 TLVs\)"
                         % (re.escape(LB_ADDR), re.escape(CLIENT_ADDR)))
        self.bs.wait_log(r"listener lb: connection from %s:\d+ open, principal CN=dev-client"
                         % re.escape(CLIENT_ADDR))
        # metrics: v2 headers accepted, HAProxy's health checks came as LOCAL, none rejected
        harness.wait_until(lambda: harness.metric(self.bs.metrics(),
                                                  "brokerside_proxy_protocol_local_total",
                                                  listener="lb") >= 1,
                           harness.START_TIMEOUT, "a LOCAL health check from HAProxy")
        m = self.bs.metrics()
        self.assertGreaterEqual(harness.metric(m, "brokerside_proxy_protocol_accepted_total",
                                               listener="lb", version="2"), 3)
        for reason in REASONS[:-1]:  # (HAProxy's health checks may reset before the header: eof)
            self.assertEqual(harness.metric(m, M_REJECTED, listener="lb", reason=reason),
                             self.baseline[reason], reason)
        # the chain verifies
        self.bs.proc.send_signal(15)
        self.assertEqual(self.bs.proc.wait(60), 0, harness.tail(self.bs.log_path))
        v = subprocess.run([harness.BROKERSIDE, "audit", "verify", "--key", self.key,
                            os.path.join(self.events_dir, "audit.ndjson")],
                           capture_output=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)

    def test_send_proxy_v1_from_a_raw_client(self):
        """HAProxy's v1 text header: a raw mTLS client bound to 127.0.0.2 sends ApiVersions
        through the `send-proxy` frontend; its event names its exact address and port."""
        s = raw_from(CLIENT_ADDR, self.hp1)
        port = s.getsockname()[1]
        with self.tls_ctx().wrap_socket(s) as t:
            t.sendall(harness.kafka_api_versions_request(correlation_id=5, client_id=b"pp-v1"))
            size = struct.unpack(">i", harness.recv_exact(t, 4))[0]
            body = harness.recv_exact(t, size)
            self.assertEqual(struct.unpack(">i", body[:4])[0], 5)
        ev = self.wait_events(lambda e: e.get("eventName") == "ApiVersions"
                              and e.get("clientId") == "pp-v1", "the ApiVersions event")
        self.assertEqual((ev[0]["sourceIPAddress"], ev[0]["sourcePort"]), (CLIENT_ADDR, port))
        self.bs.wait_log(r"listener lb: PROXY v1 header from %s:\d+: client %s:%d "
                         % (re.escape(LB_ADDR), re.escape(CLIENT_ADDR), port))
        self.assertGreaterEqual(harness.metric(self.bs.metrics(),
                                               "brokerside_proxy_protocol_accepted_total",
                                               listener="lb", version="1"), 1)

    def test_hostile_headers(self):
        """Each hostile or broken header closes its connection, is logged with its reason
        and counted; the broker sees none of them."""
        v2_inet = struct.pack(">BBH", 0x21, 0x11, 12) + bytes([10, 9, 8, 7, 127, 0, 0, 1]) \
            + struct.pack(">HH", 4000, 9094)
        cases = [
            # a well-formed header, but from an unlisted source (127.0.0.1)
            ("untrusted_source", "127.0.0.1", b"PROXY TCP4 10.9.8.7 127.0.0.1 4000 9094\r\n"),
            # a TLS client that skips the header
            ("missing_header", LB_ADDR, b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"),
            ("malformed_v1", LB_ADDR, b"PROXY TCP4 10.9.8.7 127.0.0.1 4000\r\n"),
            ("malformed_v1", LB_ADDR, b"PROXY TCP6 10.9.8.7 ::1 4000 9094\r\n"),
            ("malformed_v2", LB_ADDR, V2_SIG + struct.pack(">BBH", 0x21, 0x11, 4) + b"\x0a\x09\x08\x07"),
            ("malformed_v2", LB_ADDR, V2_SIG + struct.pack(">BBH", 0x31, 0x11, 12) + v2_inet[4:]),
            ("malformed_v2", LB_ADDR, V2_SIG + struct.pack(">BBH", 0x21, 0x12, 12) + v2_inet[4:]),
            ("oversized", LB_ADDR, V2_SIG + struct.pack(">BBH", 0x21, 0x11, 60000)),
            ("oversized", LB_ADDR, b"PROXY UNKNOWN " + b"x" * 120),
        ]
        before = {reason: self.rejected(reason) for reason, _, _ in cases}
        counts = {}
        refused = []  # (reason, source address, source port) of every refused connection
        for reason, src, payload in cases:
            mark = self.bs.log_mark()
            s = raw_from(src, self.bs_port, payload)
            refused.append((reason, src, s.getsockname()[1]))
            self.assertTrue(closed_by_peer(s), reason)
            counts[reason] = counts.get(reason, 0) + 1
            self.wait_rejected(reason, before[reason] + counts[reason])
            self.bs.wait_log(r"PROXY protocol: closing connection from %s:\d+ on listener lb: %s \("
                             % (re.escape(src), reason), since=mark)
        # a valid header cut short, then silence: closed at the handshake deadline
        before_t = self.rejected("timeout")
        s = raw_from(LB_ADDR, self.bs_port, (V2_SIG + v2_inet)[:20])
        refused.append(("timeout", LB_ADDR, s.getsockname()[1]))
        self.assertTrue(closed_by_peer(s))
        self.wait_rejected("timeout", before_t + 1)
        # the header with its ClientHello delayed past the deadline counts the same way
        s = raw_from(LB_ADDR, self.bs_port, b"PROXY TCP4 10.9.8.7 127.0.0.1 4000 9094")
        refused.append(("timeout", LB_ADDR, s.getsockname()[1]))
        self.assertTrue(closed_by_peer(s))
        self.wait_rejected("timeout", before_t + 2)
        # every refusal is on the audit trail: one ProxyProtocolRejected per connection, with
        # its reason, the listener and the socket's peer (never an address from the header)
        for reason, src, port in refused:
            ev = self.wait_events(lambda e: e.get("eventName") == "ProxyProtocolRejected"
                                  and e.get("sourcePort") == port,
                                  "ProxyProtocolRejected %s from port %d" % (reason, port))
            self.assertEqual(len(ev), 1, ev)
            e = ev[0]
            self.assertEqual((e["eventType"], e["reason"], e["sourceIPAddress"], e["listener"]),
                             ("KafkaConnection", reason, src, "lb"), e)
            self.assertEqual(e["brokerId"], 1)
            self.assertEqual(e["userIdentity"]["type"], "Anonymous", e)
            self.assertIsInstance(e["connectionId"], int)
            # a bounded description in the sidecar's words; no header bytes beyond it
            self.assertTrue(0 < len(e["detail"]) <= 200, e)
            self.assertNotIn("QUIT", e["detail"])
            self.assertNotIn("xxxx", e["detail"])
        untrusted = [e for e in self.events() if e.get("eventName") == "ProxyProtocolRejected"
                     and e.get("reason") == "untrusted_source"]
        self.assertTrue(all(e["detail"] == "not in proxy_protocol_sources" for e in untrusted))
        # refusals have no ConnectionAccepted / ConnectionClosed pair
        ids = {e["connectionId"] for e in self.events()
               if e.get("eventName") == "ProxyProtocolRejected"}
        self.assertFalse([e for e in self.events() if e.get("connectionId") in ids
                          and e.get("eventName") != "ProxyProtocolRejected"])
        # a header on a listener without proxy_protocol is not interpreted: to a TLS listener
        # it is bytes that are not a ClientHello, refused with a reason that names the mismatch
        fails = harness.metric(self.bs.metrics(), "brokerside_tls_handshake_failures_total",
                               listener="direct", reason="proxy_protocol")
        mark = self.bs.log_mark()
        s = raw_from(LB_ADDR, self.direct_port, V2_SIG + v2_inet)
        self.assertTrue(closed_by_peer(s))
        harness.wait_until(
            lambda: harness.metric(self.bs.metrics(), "brokerside_tls_handshake_failures_total",
                                   listener="direct", reason="proxy_protocol") == fails + 1,
            harness.START_TIMEOUT, "the direct listener's handshake failure")
        self.bs.wait_log(r"PROXY protocol header \(the listener has no proxy_protocol.*\) on TLS "
                         r"listener direct from %s:\d+; closing \(proxy_protocol\)"
                         % re.escape(LB_ADDR), since=mark)
        self.assertFalse([k for k in self.bs.metrics() if k[0] == M_REJECTED
                          and dict(k[1]).get("listener") == "direct"])
        # a client behind HAProxy that writes a header of its own: HAProxy's comes first and
        # is the one believed; the client's is the start of its stream, refused as not TLS
        mark = self.bs.log_mark()
        s = raw_from(CLIENT_ADDR, self.hp2, b"PROXY TCP4 10.9.8.7 127.0.0.1 4000 9094\r\n")
        port = s.getsockname()[1]
        self.assertTrue(closed_by_peer(s))
        self.bs.wait_log(r"second PROXY protocol header \(sent by the client, behind the load "
                         r"balancer's\) on TLS listener lb from %s:%d; closing \(proxy_protocol\)"
                         % (re.escape(CLIENT_ADDR), port), since=mark)
        failed = self.wait_events(lambda e: e.get("eventName") == "TlsHandshakeFailed"
                                  and e.get("sourcePort") == port, "its TlsHandshakeFailed event")
        self.assertEqual((failed[0]["sourceIPAddress"], failed[0]["reason"]),
                         (CLIENT_ADDR, "proxy_protocol"))
        # no audit event names an address from a refused header
        self.assertFalse([e for e in self.events() if e.get("sourceIPAddress") == "10.9.8.7"])
        # and a good client still gets through
        s = raw_from(CLIENT_ADDR, self.hp2)
        with self.tls_ctx().wrap_socket(s) as t:
            t.sendall(harness.kafka_api_versions_request(correlation_id=9, client_id=b"pp-after"))
            size = struct.unpack(">i", harness.recv_exact(t, 4))[0]
            self.assertEqual(struct.unpack(">i", harness.recv_exact(t, size)[:4])[0], 9)
        # the refusals are links of the one chain: it verifies
        self.bs.proc.send_signal(15)
        self.assertEqual(self.bs.proc.wait(60), 0, harness.tail(self.bs.log_path))
        v = subprocess.run([harness.BROKERSIDE, "audit", "verify", "--key", self.key,
                            os.path.join(self.events_dir, "audit.ndjson")],
                           capture_output=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stdout + v.stderr)


if __name__ == "__main__":
    harness.main()
