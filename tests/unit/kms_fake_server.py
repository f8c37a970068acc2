#!/usr/bin/env python3
"""A small stand-in for a KMS that speaks the AWS KMS JSON 1.1 API, for
tests/unit/test_keyring_aws.c.

Started on an ephemeral loopback port; prints "PORT <n>" on stdout once
listening and exits when its stdin closes (it never outlives its test).

POST / with X-Amz-Target:
  TrentService.GenerateDataKey  KeyId must be a known key ("alias/test" or
        "key-1", the same key) and KeySpec AES_256; returns a random 32-byte
        Plaintext and an opaque CiphertextBlob remembered with its key id and
        EncryptionContext.
  TrentService.Decrypt  the CiphertextBlob must be known, the
        EncryptionContext equal to the one it was made with
        (InvalidCiphertextException otherwise) and KeyId, if given, its key
        (IncorrectKeyException otherwise).
Control:
  POST /control/script  body: JSON list of modes applied to the next KMS
        requests, one each: an error name from ERRORS, or a malformed reply:
        "noplaintext", "badb64", "shortkey", "notjson".
  GET /control/log      JSON list of the KMS requests received (target,
        content type, body, whether an Authorization header was present).
"""
import base64
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
KEYS = {"alias/test": "key-1", "key-1": "key-1"}
BLOBS = {}
SCRIPT = []
LOG = []

ERRORS = {
    "notfound": (400, "NotFoundException", "Key 'x' does not exist"),
    "disabled": (400, "DisabledException", "key is disabled"),
    "denied": (400, "AccessDeniedException", "not authorized to perform kms:GenerateDataKey"),
    "invalidstate": (400, "KMSInvalidStateException", "key is pending deletion"),
    "throttle": (400, "ThrottlingException", "Rate exceeded"),
    "internal": (500, "KMSInternalException", "internal"),
    "validation": (400, "ValidationException", "1 validation error"),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj):
        data = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "fake-%d" % len(LOG))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, msg):
        self.reply(status, {"__type": code, "message": msg})

    def do_GET(self):
        if self.path == "/control/log":
            with LOCK:
                return self.reply(200, LOG)
        self.reply(404, {})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        if self.path == "/control/script":
            with LOCK:
                SCRIPT.extend(json.loads(body))
            return self.reply(200, {})
        target = self.headers.get("X-Amz-Target", "")
        with LOCK:
            LOG.append({"target": target, "content_type": self.headers.get("Content-Type"),
                        "signed": self.headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256 "),
                        "body": body.decode("utf-8", "replace")})
            mode = SCRIPT.pop(0) if SCRIPT else None
        if mode in ERRORS:
            return self.error(*ERRORS[mode])
        try:
            req = json.loads(body)
        except ValueError:
            return self.error(400, "SerializationException", "bad json")
        ctx = req.get("EncryptionContext", {})
        if target == "TrentService.GenerateDataKey":
            key_id = KEYS.get(req.get("KeyId"))
            if key_id is None:
                return self.error(400, "NotFoundException", "no such key")
            if req.get("KeySpec") != "AES_256":
                return self.error(400, "ValidationException", "KeySpec")
            key = os.urandom(32)
            blob = os.urandom(48)
            with LOCK:
                BLOBS[blob] = (key_id, key, ctx)
            pt = base64.b64encode(key).decode()
            if mode == "noplaintext":
                pt = None
            elif mode == "badb64":
                pt = "!!not base64!!"
            elif mode == "shortkey":
                pt = base64.b64encode(key[:16]).decode()
            if mode == "notjson":
                return self.reply(200, b"<html>surprise</html>")
            out = {"CiphertextBlob": base64.b64encode(blob).decode(),
                   "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/" + key_id}
            if pt is not None:
                out["Plaintext"] = pt
            return self.reply(200, out)
        if target == "TrentService.Decrypt":
            try:
                blob = base64.b64decode(req.get("CiphertextBlob", ""), validate=True)
            except ValueError:
                return self.error(400, "InvalidCiphertextException", "bad blob")
            with LOCK:
                found = BLOBS.get(blob)
            if found is None or found[2] != ctx:
                return self.error(400, "InvalidCiphertextException", "")
            if "KeyId" in req and KEYS.get(req["KeyId"]) != found[0]:
                return self.error(400, "IncorrectKeyException", "wrong key")
            return self.reply(200, {"Plaintext": base64.b64encode(found[1]).decode(),
                                    "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/" + found[0],
                                    "EncryptionAlgorithm": "SYMMETRIC_DEFAULT"})
        return self.error(400, "UnknownOperationException", target)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    sys.stdin.read()
    srv.shutdown()


if __name__ == "__main__":
    main()
