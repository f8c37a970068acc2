#!/usr/bin/python3
"""Integration: brokerside's AWS layer (SigV4, credential chain, async HTTP
client) against moto_server as KMS, with real signature verification.

Drives tests/tools/aws_call.c (built as BS_BUILD_DIR/aws_call). moto_server and
boto3 (for the set-up calls only) come from the python on PATH that has them
(pyenv's on the dev machine).
"""
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BS_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
AWS_CALL = os.path.join(BUILD, "aws_call")
REGION = "eu-west-1"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_with_boto3():
    """The first python3 on PATH (or pyenv's shim) that can import boto3."""
    cands = [p for p in os.environ.get("PATH", "").split(os.pathsep)]
    cands = [os.path.join(p, "python3") for p in cands]
    cands.append(os.path.expanduser("~/.pyenv/shims/python3"))
    for c in cands:
        if os.access(c, os.X_OK) and subprocess.run([c, "-c", "import boto3"],
                                                    capture_output=True).returncode == 0:
            return c
    return None


def moto_server_path():
    p = shutil.which("moto_server")
    if p:
        return p
    p = os.path.expanduser("~/.pyenv/shims/moto_server")
    return p if os.access(p, os.X_OK) else None


class MotoKms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = None
        moto = moto_server_path()
        py = python_with_boto3()
        if not moto or not py:
            raise RuntimeError("moto_server and a python3 with boto3 are required (make deps)")
        if not os.access(AWS_CALL, os.X_OK):
            raise RuntimeError("%s not built" % AWS_CALL)
        cls.port = free_port()
        cls.endpoint = "http://127.0.0.1:%d/" % cls.port
        cls.start_moto()
        try:
            out = subprocess.run([py, os.path.join(HERE, "aws_moto_setup.py"), cls.endpoint, REGION],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError("moto set-up failed: " + out.stderr[-2000:])
            cls.creds = json.loads(out.stdout.strip().splitlines()[-1])
        except BaseException:
            cls.stop_moto()
            raise

    @classmethod
    def start_moto(cls):
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        cls.moto_log = open(os.path.join(BUILD, "moto-aws-kms-%d.log" % cls.port), "w")
        cls.moto = subprocess.Popen([moto_server_path(), "-H", "127.0.0.1", "-p", str(cls.port)],
                                    env=env, stdout=cls.moto_log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/moto-api/" % cls.port, timeout=2)
                return
            except Exception:
                if cls.moto.poll() is not None or time.time() > deadline:
                    cls.stop_moto()
                    raise RuntimeError("moto_server did not start")
                time.sleep(0.2)

    @classmethod
    def stop_moto(cls):
        if cls.moto and cls.moto.poll() is None:
            cls.moto.terminate()
            try:
                cls.moto.wait(10)
            except subprocess.TimeoutExpired:
                cls.moto.kill()
                cls.moto.wait()
        cls.moto = None
        if getattr(cls, "moto_log", None):
            cls.moto_log.close()
            os.unlink(cls.moto_log.name)
            cls.moto_log = None

    @classmethod
    def tearDownClass(cls):
        cls.stop_moto()

    def call(self, target, body, secret=None, attempts=None, timeout_ms=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.creds["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=secret or self.creds["secret_access_key"],
                   AWS_EC2_METADATA_DISABLED="true", HOME="/nonexistent")
        cmd = [AWS_CALL, "--service", "kms", "--region", REGION, "--endpoint", self.endpoint,
               "--target", "TrentService." + target, "--body", json.dumps(body)]
        if attempts:
            cmd += ["--max-attempts", str(attempts)]
        if timeout_ms:
            cmd += ["--timeout-ms", str(timeout_ms)]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        self.assertIn(out.returncode, (0, 1), out.stderr)
        res = json.loads(out.stdout)
        res["exit"] = out.returncode
        return res

    def test_1_generate_data_key_and_decrypt(self):
        ctx = {"topic": "payments", "cluster": "c1"}
        gen = self.call("GenerateDataKey", {"KeyId": self.creds["key_id"], "KeySpec": "AES_256",
                                            "EncryptionContext": ctx})
        self.assertEqual(gen["outcome"], "ok", gen)
        self.assertEqual(gen["status"], 200)
        self.assertEqual(gen["attempts"], 1)
        g = json.loads(gen["body"])
        plaintext = base64.b64decode(g["Plaintext"])
        self.assertEqual(len(plaintext), 32)
        self.assertNotEqual(g["CiphertextBlob"], g["Plaintext"])

        dec = self.call("Decrypt", {"CiphertextBlob": g["CiphertextBlob"], "EncryptionContext": ctx})
        self.assertEqual(dec["outcome"], "ok", dec)
        d = json.loads(dec["body"])
        self.assertEqual(base64.b64decode(d["Plaintext"]), plaintext)
        self.assertIn(self.creds["key_id"], d["KeyId"])

        # The encryption context is bound to the ciphertext: a different one fails, permanently.
        bad = self.call("Decrypt", {"CiphertextBlob": g["CiphertextBlob"],
                                    "EncryptionContext": {"topic": "other"}})
        self.assertEqual(bad["outcome"], "client_error", bad)
        self.assertEqual(bad["attempts"], 1)
        self.assertEqual(bad["exit"], 1)

    def test_2_unknown_key_is_permanent(self):
        res = self.call("GenerateDataKey", {"KeyId": "alias/does-not-exist", "KeySpec": "AES_256"})
        self.assertEqual(res["outcome"], "client_error", res)
        self.assertEqual(res["error_code"], "NotFoundException")
        self.assertEqual(res["attempts"], 1)

    def test_3_wrong_secret_is_auth(self):
        res = self.call("GenerateDataKey", {"KeyId": self.creds["key_id"], "KeySpec": "AES_256"},
                        secret="not-the-secret")
        self.assertEqual(res["status"], 403, res)
        self.assertEqual(res["outcome"], "auth", res)
        self.assertIn(res["error_code"], ("InvalidSignatureException", "SignatureDoesNotMatch",
                                          "UnrecognizedClientException"))
        # Refreshed credentials (same static ones here) and retried exactly once.
        self.assertEqual(res["attempts"], 2)

    def raw(self, method, path, body=None, headers=()):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=self.creds["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=self.creds["secret_access_key"],
                   AWS_EC2_METADATA_DISABLED="true", HOME="/nonexistent")
        cmd = [AWS_CALL, "--service", "s3", "--region", "us-east-1", "--method", method,
               "--url", self.endpoint.rstrip("/") + path]
        if body is not None:
            cmd += ["--body", body]
        for h in headers:
            cmd += ["--header", h]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        self.assertIn(out.returncode, (0, 1), out.stderr)
        return json.loads(out.stdout)

    def test_4_s3_signing_round_trip(self):
        # S3 signs the path as sent (single encoding) and X-Amz-Content-SHA256.
        # (No '+' or '%' in the key: moto_server rejects botocore's own signature for those.)
        res = self.raw("PUT", "/bs-test-bucket")  # us-east-1: no location constraint
        self.assertEqual(res["outcome"], "ok", res)
        body = "hello sigv4 \u00e9\n"
        md5 = base64.b64encode(__import__("hashlib").md5(body.encode()).digest()).decode()
        res = self.raw("PUT", "/bs-test-bucket/dir/obj%201~.txt", body,
                       ["Content-Type: text/plain", "Content-MD5: " + md5])
        self.assertEqual(res["outcome"], "ok", res)
        res = self.raw("GET", "/bs-test-bucket/dir/obj%201~.txt")
        self.assertEqual(res["outcome"], "ok", res)
        self.assertEqual(res["body"], body)
        # A missing bucket is the server's permanent refusal, not a retry.
        res = self.raw("PUT", "/no-such-bucket-here/x", body)
        self.assertEqual(res["outcome"], "client_error", res)
        self.assertEqual(res["error_code"], "NoSuchBucket")
        self.assertEqual(res["attempts"], 1)
        res = self.raw("GET", "/bs-test-bucket/missing")
        self.assertEqual(res["status"], 404, res)
        self.assertEqual(res["error_code"], "NoSuchKey")

    def test_5_credentials_from_shared_file_profile(self):
        import tempfile
        with tempfile.TemporaryDirectory(prefix="bs-aws-home-") as home:
            os.mkdir(os.path.join(home, ".aws"))
            with open(os.path.join(home, ".aws", "credentials"), "w") as f:
                f.write("[default]\naws_access_key_id = AKIAWRONG\naws_secret_access_key = wrong\n"
                        "[kafka]\naws_access_key_id = %s\naws_secret_access_key = %s\n"
                        % (self.creds["access_key_id"], self.creds["secret_access_key"]))
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(HOME=home, AWS_EC2_METADATA_DISABLED="true")
            base = [AWS_CALL, "--service", "kms", "--region", REGION, "--endpoint", self.endpoint,
                    "--target", "TrentService.ListKeys", "--body", "{}"]
            ok = subprocess.run(base + ["--profile", "kafka"], env=env, capture_output=True,
                                text=True, timeout=120)
            res = json.loads(ok.stdout)
            self.assertEqual(res["outcome"], "ok", res)
            self.assertIn(self.creds["key_id"], res["body"])
            # AWS_PROFILE selects it too; the default profile's wrong key is refused by moto.
            env["AWS_PROFILE"] = "kafka"
            res = json.loads(subprocess.run(base, env=env, capture_output=True, text=True,
                                            timeout=120).stdout)
            self.assertEqual(res["outcome"], "ok", res)
            del env["AWS_PROFILE"]
            res = json.loads(subprocess.run(base, env=env, capture_output=True, text=True,
                                            timeout=120).stdout)
            self.assertEqual(res["outcome"], "auth", res)

    def test_9_stopped_server_gives_retried_transport_errors(self):
        type(self).stop_moto()
        res = self.call("GenerateDataKey", {"KeyId": self.creds["key_id"], "KeySpec": "AES_256"},
                        attempts=3, timeout_ms=5000)
        self.assertEqual(res["outcome"], "transport", res)
        self.assertEqual(res["attempts"], 3)
        self.assertEqual(res["status"], 0)
        self.assertNotEqual(res["transport_error"], "")


if __name__ == "__main__":
    unittest.main(verbosity=2)
