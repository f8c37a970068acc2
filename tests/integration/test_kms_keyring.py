#!/usr/bin/python3
"""Integration: the aws KMS keyring and the DEK manager (real threads) against
moto_server as the KMS, with SigV4 verification on.

Drives tests/tools/kms_dek.c (BS_BUILD_DIR/kms_dek): worker threads get data
keys from the control thread, which calls KMS GenerateDataKey / Decrypt with
the EncryptionContext {"topic": ...}. The KMS is reached through a small TCP
forwarder in this test, so that it can be taken away (connections refused,
open ones cut) and brought back with its keys intact.
"""
import json
import os
import select
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from test_aws_kms import free_port, moto_server_path, python_with_boto3  # noqa: E402

BUILD = os.environ.get("BS_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
KMS_DEK = os.path.join(BUILD, "kms_dek")
AWS_CALL = os.path.join(BUILD, "aws_call")
REGION = "eu-west-1"


class Forwarder:
    """TCP forwarder 127.0.0.1:port -> 127.0.0.1:target that can be stopped
    (listener closed, live connections cut) and started again on the same port."""

    def __init__(self, target):
        self.target = target
        self.port = free_port()
        self.lsock = None
        self.conns = []
        self.lock = threading.Lock()

    def start(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.lsock = s
        threading.Thread(target=self.accept_loop, args=(s,), daemon=True).start()

    def stop(self):
        s, self.lsock = self.lsock, None
        if s:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def accept_loop(self, s):
        while True:
            try:
                a, _ = s.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                a.close()
                continue
            with self.lock:
                self.conns += [a, b]
            threading.Thread(target=self.pump, args=(a, b), daemon=True).start()

    @staticmethod
    def pump(a, b):
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 60)
                if not r:
                    break
                for x in r:
                    data = x.recv(65536)
                    if not data:
                        return
                    (b if x is a else a).sendall(data)
        except OSError:
            pass
        finally:
            a.close()
            b.close()


class KmsKeyring(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = cls.fwd = cls.tool = None
        moto = moto_server_path()
        py = python_with_boto3()
        if not moto or not py:
            raise RuntimeError("moto_server and a python3 with boto3 are required (make deps)")
        for exe in (KMS_DEK, AWS_CALL):
            if not os.access(exe, os.X_OK):
                raise RuntimeError("%s not built" % exe)
        cls.moto_port = free_port()
        moto_ep = "http://127.0.0.1:%d/" % cls.moto_port
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        cls.moto_log = open(os.path.join(BUILD, "moto-kms-keyring-%d.log" % cls.moto_port), "w")
        cls.moto = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(cls.moto_port)], env=env,
                                    stdout=cls.moto_log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    socket.create_connection(("127.0.0.1", cls.moto_port), timeout=2).close()
                    break
                except OSError:
                    if cls.moto.poll() is not None or time.time() > deadline:
                        raise RuntimeError("moto_server did not start")
                    time.sleep(0.2)
            out = subprocess.run([py, os.path.join(HERE, "aws_moto_setup.py"), moto_ep, REGION],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError("moto set-up failed: " + out.stderr[-2000:])
            cls.creds = json.loads(out.stdout.strip().splitlines()[-1])
            cls.fwd = Forwarder(cls.moto_port)
            cls.fwd.start()
            cls.endpoint = "http://127.0.0.1:%d/" % cls.fwd.port
            cls.tool = subprocess.Popen(
                [KMS_DEK, "--region", REGION, "--endpoint", cls.endpoint, "--workers", "2",
                 "--max-records", "3", "--max-attempts", "2", "--timeout-ms", "5000",
                 "--backoff-ms", "300"],
                env=cls.aws_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def aws_env(cls, secret=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=cls.creds["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=secret or cls.creds["secret_access_key"],
                   AWS_EC2_METADATA_DISABLED="true", HOME="/nonexistent")
        return env

    @classmethod
    def tearDownClass(cls):
        tool_rc = 0
        if cls.tool:
            try:
                cls.tool.stdin.close()
                tool_rc = cls.tool.wait(30)
            except Exception:
                cls.tool.kill()
                tool_rc = cls.tool.wait()
            cls.tool.stdout.close()
        if cls.fwd:
            cls.fwd.stop()
        if cls.moto and cls.moto.poll() is None:
            cls.moto.terminate()
            try:
                cls.moto.wait(10)
            except subprocess.TimeoutExpired:
                cls.moto.kill()
                cls.moto.wait()
        if getattr(cls, "moto_log", None):
            cls.moto_log.close()
            os.unlink(cls.moto_log.name)
        if tool_rc != 0:  # a clean shutdown (and, in sanitizer builds, no leak reports)
            raise RuntimeError("kms_dek exited with %d" % tool_rc)

    def cmd(self, line):
        self.tool.stdin.write(line + "\n")
        self.tool.stdin.flush()
        r, _, _ = select.select([self.tool.stdout], [], [], 120)  # only a hang guard
        self.assertTrue(r, "kms_dek did not answer: " + line)
        return json.loads(self.tool.stdout.readline())

    def key(self):
        return self.creds["key_id"]

    @staticmethod
    def edek_of(envelope_hex):
        """The EDEK bytes of a v1 envelope (docs/encryption-format.md)."""
        b = bytes.fromhex(envelope_hex)
        k = int.from_bytes(b[6:8], "big")
        e = int.from_bytes(b[8 + k:10 + k], "big")
        return b[10 + k:10 + k + e]

    def kms_decrypt(self, edek, topic):
        import base64
        body = {"CiphertextBlob": base64.b64encode(edek).decode(),
                "EncryptionContext": {"topic": topic}}
        out = subprocess.run([AWS_CALL, "--service", "kms", "--region", REGION, "--endpoint",
                              "http://127.0.0.1:%d/" % self.moto_port, "--target",
                              "TrentService.Decrypt", "--body", json.dumps(body)],
                             env=self.aws_env(), capture_output=True, text=True, timeout=120)
        return json.loads(out.stdout)

    def test_1_round_trip_across_workers(self):
        enc = self.cmd("encrypt 0 %s payments hello kms world" % self.key())
        self.assertEqual(enc["status"], "ok", enc)
        self.assertNotIn(b"hello kms world", bytes.fromhex(enc["envelope"]))
        dec = self.cmd("decrypt 1 payments " + enc["envelope"])
        self.assertEqual(dec, {"status": "ok", "value": "hello kms world"})
        # The EDEK in the envelope is a real KMS ciphertext bound to the topic.
        edek = self.edek_of(enc["envelope"])
        self.assertEqual(self.kms_decrypt(edek, "payments")["outcome"], "ok")
        bad = self.kms_decrypt(edek, "other")
        self.assertEqual(bad["outcome"], "client_error", bad)
        self.assertEqual(bad["error_code"], "InvalidCiphertextException")

    def test_2_rotation_and_cache(self):
        before = self.cmd("stats")
        envs = []
        for i in range(7):  # max-records 3: at least two rotations on worker 0
            r = self.cmd("encrypt 0 %s rot record-%d" % (self.key(), i))
            self.assertEqual(r["status"], "ok", r)
            envs.append(r["envelope"])
        edeks = {self.edek_of(e) for e in envs}
        self.assertGreaterEqual(len(edeks), 3)
        for i, e in enumerate(envs):
            self.assertEqual(self.cmd("decrypt 1 rot " + e), {"status": "ok", "value": "record-%d" % i})
        after = self.cmd("stats")
        self.assertGreaterEqual(after["rotations"] - before["rotations"], 2)
        self.assertGreaterEqual(after["generate_ok"] - before["generate_ok"], 3)
        # Keys this process generated are read back from its cache: no Decrypt call.
        self.assertEqual(after["decrypt_ok"], before["decrypt_ok"])
        self.assertGreater(after["hits"], before["hits"])

    def test_3_wrong_topic_fails(self):
        enc = self.cmd("encrypt 0 %s orders secret" % self.key())
        self.assertEqual(enc["status"], "ok", enc)
        before = self.cmd("stats")
        # Presented for another topic, KMS refuses the EDEK (context mismatch).
        dec = self.cmd("decrypt 1 elsewhere " + enc["envelope"])
        self.assertEqual(dec["status"], "crypto", dec)
        after = self.cmd("stats")
        self.assertEqual(after["decrypt_crypto"] - before["decrypt_crypto"], 1)
        # Unknown key: permanent "not found", nothing encrypted.
        self.assertEqual(self.cmd("encrypt 0 alias/no-such-key orders x")["status"], "not_found")

    def test_4_kms_down_fails_closed_then_recovers(self):
        ok = self.cmd("encrypt 0 %s live first" % self.key())
        self.assertEqual(ok["status"], "ok", ok)
        forged = self.envelope_with_foreign_edek("live")
        self.fwd.stop()
        try:
            # A topic with no key yet: the waiting request fails, nothing is encrypted.
            down = self.cmd("encrypt 1 %s newtopic must-not-pass" % self.key())
            self.assertEqual(down["status"], "io", down)
            # Within the backoff the failure answers at once.
            self.assertEqual(self.cmd("encrypt 1 %s newtopic again" % self.key())["status"], "io")
            # A key already held keeps working until its limits.
            self.assertEqual(self.cmd("encrypt 0 %s live second" % self.key())["status"], "ok")
            # An envelope whose EDEK this process never saw cannot be decrypted now.
            self.assertEqual(self.cmd("decrypt 1 live " + forged)["status"], "io")
        finally:
            self.fwd.start()
        time.sleep(0.5)  # past the 300 ms failure backoff
        up = self.cmd("encrypt 1 %s newtopic after-restart" % self.key())
        self.assertEqual(up["status"], "ok", up)
        self.assertEqual(self.cmd("decrypt 0 newtopic " + up["envelope"]),
                         {"status": "ok", "value": "after-restart"})
        self.assertGreaterEqual(self.cmd("stats")["generate_io"], 1)
        # Back up, the foreign EDEK unwraps, but its made-up ciphertext does not
        # authenticate: an error, never bytes passed off as plaintext.
        self.assertEqual(self.cmd("decrypt 1 live " + forged)["status"], "crypto")

    def envelope_with_foreign_edek(self, topic):
        """A well-formed v1 envelope around a real EDEK made directly at the KMS
        (so not in the tool's caches), with random IV, ciphertext and tag."""
        import base64
        body = {"KeyId": self.key(), "KeySpec": "AES_256", "EncryptionContext": {"topic": topic}}
        out = subprocess.run([AWS_CALL, "--service", "kms", "--region", REGION, "--endpoint",
                              "http://127.0.0.1:%d/" % self.moto_port, "--target",
                              "TrentService.GenerateDataKey", "--body", json.dumps(body)],
                             env=self.aws_env(), capture_output=True, text=True, timeout=120)
        res = json.loads(out.stdout)
        self.assertEqual(res["outcome"], "ok", res)
        edek = base64.b64decode(json.loads(res["body"])["CiphertextBlob"])
        keyref = self.key().encode()
        env = (bytes.fromhex("be5ec0de") + b"\x01\x01" + len(keyref).to_bytes(2, "big") + keyref +
               len(edek).to_bytes(2, "big") + edek + os.urandom(12 + 5 + 16))
        return env.hex()


if __name__ == "__main__":
    unittest.main(verbosity=2)
