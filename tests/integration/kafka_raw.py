"""A raw Kafka protocol client for tests that need exact control over one
request (several topics in one Produce, a request on a connection kept open
across a reload) and exact sight of the response. Built on kafka-python's
protocol classes (Debian's python3-kafka); every frame is written and read
here, so the test sees exactly what the sidecar answered.
"""

import base64
import hashlib
import hmac
import io
import os
import socket
import ssl
import struct

from kafka.protocol.fetch import FetchRequest, FetchResponse
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.produce import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

PRODUCE_VERSION = 3
FETCH_VERSION = 4
METADATA_VERSION = 4  # Kafka 4 answers v4+ only (KIP-896)


def record_batch(values):
    """A record batch v2 holding `values` (bytes), no key."""
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i, v in enumerate(values):
        b.append(i, timestamp=None, key=None, value=v, headers=[])
    return bytes(b.build())


class Conn:
    """One Kafka connection (plaintext or TLS); send() returns the decoded response."""

    def __init__(self, port, certs=None, client_cert=True, host="127.0.0.1", timeout=30.0):
        raw = socket.create_connection((host, port), timeout=timeout)
        if certs:
            ctx = ssl.create_default_context(cafile=certs["ca_crt"])
            ctx.check_hostname = False
            if client_cert:
                ctx.load_cert_chain(certs["client_crt"], certs["client_key"])
            raw = ctx.wrap_socket(raw, server_hostname="localhost")
        self.sock = raw
        self.corr = 0

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("connection closed after %d of %d bytes" % (len(buf), n))
            buf += chunk
        return buf

    def send_raw(self, api_key, version, body, expect_response=True):
        """Send header + body; return the response body bytes (or None)."""
        self.corr += 1
        cid = b"bs-authz-test"
        hdr = struct.pack(">hhih", api_key, version, self.corr, len(cid)) + cid
        frame = hdr + body
        self.sock.sendall(struct.pack(">i", len(frame)) + frame)
        if not expect_response:
            return None
        size = struct.unpack(">i", self._recv_exact(4))[0]
        data = self._recv_exact(size)
        corr = struct.unpack(">i", data[:4])[0]
        if corr != self.corr:
            raise AssertionError("correlation id %d answers %d" % (corr, self.corr))
        return data[4:]

    def produce(self, topics, acks=1):
        """topics: {topic: {partition: [values]}}. Returns {(topic, partition): error_code}."""
        req = ProduceRequest[PRODUCE_VERSION](
            transactional_id=None, required_acks=acks, timeout=10000,
            topics=[(t, [(p, record_batch(vs)) for p, vs in parts.items()])
                    for t, parts in topics.items()])
        body = self.send_raw(0, PRODUCE_VERSION, req.encode(), expect_response=acks != 0)
        if body is None:
            return None
        resp = ProduceResponse[PRODUCE_VERSION].decode(io.BytesIO(body))
        out = {}
        for topic, parts in resp.topics:
            for p in parts:
                out[(topic, p[0])] = p[1]
        return out

    def fetch(self, topics):
        """topics: {topic: [partitions]} from offset 0. Returns {(topic, partition): (error, n_bytes)}."""
        req = FetchRequest[FETCH_VERSION](
            replica_id=-1, max_wait_time=100, min_bytes=0, max_bytes=1 << 20, isolation_level=0,
            topics=[(t, [(p, 0, 1 << 20) for p in ps]) for t, ps in topics.items()])
        body = self.send_raw(1, FETCH_VERSION, req.encode())
        resp = FetchResponse[FETCH_VERSION].decode(io.BytesIO(body))
        out = {}
        for topic, parts in resp.topics:
            for p in parts:
                out[(topic, p[0])] = (p[1], len(p[-1] or b""))
        return out

    def metadata(self, topics=None, version=METADATA_VERSION):
        """Metadata for `topics` (None: all); v1 for librdkafka's mock broker, v4 for Kafka 4.
        Returns {topic: error_code}."""
        args = {"topics": topics}
        if version >= 4:
            args["allow_auto_topic_creation"] = False
        req = MetadataRequest[version](**args)
        body = self.send_raw(3, version, req.encode())
        resp = MetadataResponse[version].decode(io.BytesIO(body))
        return {t[1]: t[0] for t in resp.topics}

    # ---- SASL (SaslHandshake v1 + SaslAuthenticate v1, as Kafka clients do)

    def sasl_handshake(self, mechanism):
        """Returns the error code."""
        m = mechanism.encode()
        body = self.send_raw(17, 1, struct.pack(">h", len(m)) + m)
        return struct.unpack(">h", body[:2])[0]

    def sasl_authenticate(self, auth_bytes):
        """One SaslAuthenticate v1 round trip: (error_code, server_bytes)."""
        body = self.send_raw(36, 1, struct.pack(">i", len(auth_bytes)) + auth_bytes)
        err = struct.unpack(">h", body[:2])[0]
        mlen = struct.unpack(">h", body[2:4])[0]
        off = 4 + max(mlen, 0)
        alen = struct.unpack(">i", body[off:off + 4])[0]
        return err, body[off + 4:off + 4 + max(alen, 0)]

    def plain(self, user, password):
        """PLAIN login; returns the SaslAuthenticate error code."""
        err = self.sasl_handshake("PLAIN")
        if err:
            return err
        return self.sasl_authenticate(b"\0" + user.encode() + b"\0" + password.encode())[0]

    def scram(self, user, password, mechanism="SCRAM-SHA-512", handshake=True):
        """SCRAM login (RFC 5802); returns the error code of the last round."""
        algo = "sha512" if mechanism.endswith("512") else "sha256"
        if handshake:
            err = self.sasl_handshake(mechanism)
            if err:
                return err
        nonce = base64.b64encode(os.urandom(18)).decode()
        bare = "n=%s,r=%s" % (user.replace("=", "=3D").replace(",", "=2C"), nonce)
        err, first = self.sasl_authenticate(("n,," + bare).encode())
        if err:
            return err
        attrs = dict(kv.split("=", 1) for kv in first.decode().split(","))
        salted = hashlib.pbkdf2_hmac(algo, password.encode(), base64.b64decode(attrs["s"]),
                                     int(attrs["i"]))
        ckey = hmac.new(salted, b"Client Key", algo).digest()
        stored = hashlib.new(algo, ckey).digest()
        without_proof = "c=biws,r=" + attrs["r"]
        auth_msg = ",".join([bare, first.decode(), without_proof]).encode()
        sig = hmac.new(stored, auth_msg, algo).digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(ckey, sig))).decode()
        err, _ = self.sasl_authenticate((without_proof + ",p=" + proof).encode())
        return err

    def closed(self, timeout=10.0):
        """True once the peer closed the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(1) == b""
        except (ConnectionError, ssl.SSLError):
            return True
        except socket.timeout:
            return False
