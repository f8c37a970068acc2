#!/usr/bin/env python3
"""A scripted fake of the AWS endpoints the aws/ unit tests need.

Started by tests/unit/test_aws_credentials.c and test_aws_http.c on an
ephemeral loopback port; prints "PORT <n>" on stdout once listening and exits
when its stdin closes (so it never outlives the test that started it).

With "--tls CERT KEY [BIND_ADDR]" it serves HTTPS instead.

Endpoints:
  PUT /latest/api/token, GET /latest/meta-data/iam/security-credentials/[role]
        EC2 IMDSv2 (token required for the GETs); each credentials fetch
        returns a new key ASIAIMDS<n>, expiring in `imds_expiry_s` seconds.
  GET /ecs/creds   ECS container credentials; requires Authorization: ecs-auth-token.
  POST /control/imds-expiry/<s>   set imds_expiry_s.
  GET /counts      JSON counters of the metadata endpoints.
  ANY /seq/<name>/<spec>,<spec>,...   answers the i-th request on that path
        with the i-th spec (the last one repeats) and records the request.
  GET /log/<name>  JSON list of the recorded requests of /seq/<name>/...
"""
import json
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.RLock()
STATE = {"imds_expiry_s": 3600, "imds_token": "imds-session-token-1", "counts": {}, "seq": {}, "log": {}}


def bump(key):
    with LOCK:
        STATE["counts"][key] = STATE["counts"].get(key, 0) + 1
        return STATE["counts"][key]


def creds_doc(prefix, n, expiry_s):
    exp = datetime.now(timezone.utc) + timedelta(seconds=expiry_s)
    return {
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": "ASIA%s%d" % (prefix, n),
        "SecretAccessKey": "%s-secret-%d" % (prefix.lower(), n),
        "Token": "%s-token-%d" % (prefix.lower(), n),
        "Expiration": exp.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


SPECS = {
    "ok": (200, "application/x-amz-json-1.1", None),
    "throttle": (400, "application/x-amz-json-1.1",
                 '{"__type":"com.amazonaws.kms#ThrottlingException","message":"Rate exceeded"}'),
    "429": (429, "application/json", '{"__type":"TooManyRequestsException","message":"slow down"}'),
    "500": (500, "text/plain", "internal error"),
    "503xml": (503, "application/xml",
               "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>Reduce your rate</Message></Error>"),
    "expired": (400, "application/x-amz-json-1.1", '{"__type":"ExpiredTokenException","message":"token expired"}'),
    "xml403": (403, "application/xml",
               "<Error><Code>SignatureDoesNotMatch</Code><Message>no</Message></Error>"),
    "validation": (400, "application/x-amz-json-1.1",
                   '{"__type":"ValidationException","message":"1 validation error"}'),
    "hdrtype": (400, "application/x-amz-json-1.1", ""),
    "big": (200, "application/octet-stream", "x" * (2 * 1024 * 1024)),
}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep test output clean
        pass

    def reply(self, status, body, ctype="application/json", headers=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "req-%d" % bump("requests"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def handle_any(self):
        path = self.path.split("?", 1)[0]
        body = self.body()
        if path == "/latest/api/token" and self.command == "PUT":
            bump("imds_token")
            if not self.headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return self.reply(400, "missing ttl")
            return self.reply(200, STATE["imds_token"], "text/plain")
        if path.startswith("/latest/meta-data/iam/security-credentials/"):
            if self.headers.get("X-aws-ec2-metadata-token") != STATE["imds_token"]:
                return self.reply(401, "no token", "text/plain")
            role = path[len("/latest/meta-data/iam/security-credentials/"):]
            if role == "":
                return self.reply(200, "test-role\n", "text/plain")
            if role != "test-role":
                return self.reply(404, "no such role", "text/plain")
            n = bump("imds_creds")
            return self.reply(200, json.dumps(creds_doc("IMDS", n, STATE["imds_expiry_s"])))
        if path == "/ecs/creds":
            if self.headers.get("Authorization") != "ecs-auth-token":
                return self.reply(401, '{"message":"bad token"}')
            n = bump("ecs_creds")
            return self.reply(200, json.dumps(creds_doc("ECS", n, 3600)))
        if path.startswith("/control/imds-expiry/"):
            STATE["imds_expiry_s"] = int(path.rsplit("/", 1)[1])
            return self.reply(200, "{}")
        if path == "/counts":
            with LOCK:
                return self.reply(200, json.dumps(STATE["counts"]))
        if path.startswith("/log/"):
            with LOCK:
                return self.reply(200, json.dumps(STATE["log"].get(path[5:], [])))
        if path.startswith("/seq/"):
            parts = path.split("/")
            if len(parts) < 4:
                return self.reply(404, "bad seq path")
            name, specs = parts[2], parts[3].split(",")
            with LOCK:
                i = STATE["seq"].get(name, 0)
                STATE["seq"][name] = i + 1
                STATE["log"].setdefault(name, []).append({
                    "method": self.command,
                    "authorization": self.headers.get("Authorization"),
                    "x-amz-date": self.headers.get("X-Amz-Date"),
                    "x-amz-security-token": self.headers.get("X-Amz-Security-Token"),
                    "x-amz-target": self.headers.get("X-Amz-Target"),
                    "content-type": self.headers.get("Content-Type"),
                    "body": body.decode("utf-8", "replace"),
                })
            spec = specs[min(i, len(specs) - 1)]
            if spec == "slow":
                time.sleep(5)
                spec = "ok"
            status, ctype, text = SPECS.get(spec, (404, "text/plain", "unknown spec"))
            if text is None:
                text = json.dumps({"ok": True, "n": i, "echo": body.decode("utf-8", "replace")})
            headers = {}
            if spec == "hdrtype":
                headers["X-Amzn-ErrorType"] = "ThrottlingException:http://internal.amazon.com/"
            return self.reply(status, text, ctype, headers)
        return self.reply(404, "not found", "text/plain")

    do_GET = do_PUT = do_POST = do_DELETE = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # clients that time out and reset are part of the tests


def main():
    bind = sys.argv[4] if len(sys.argv) == 5 else "127.0.0.1"
    srv = Server((bind, 0), Handler)
    if len(sys.argv) >= 4 and sys.argv[1] == "--tls":  # --tls CERT KEY [BIND]: serve HTTPS
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[2], sys.argv[3])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    sys.stdin.read()  # returns when the test closes our stdin or dies
    srv.shutdown()


if __name__ == "__main__":
    main()
