#!/usr/bin/env python3
"""A fault-injecting stand-in for Firehose, CloudWatch Logs and CloudWatch
metrics, for the failure paths moto cannot produce (tests/integration/test_aws_sinks.py).

Usage: fault_server.py PORT LOGFILE SCRIPT_JSON
  PORT 0 picks a free port; prints "PORT <n>" once listening.
  Every request is appended to LOGFILE as one JSON line {"target", "body",
  "content_type", "query_mode", "authorization"} (the
  file outlives a restart of the server, for the outage test).
  SCRIPT_JSON maps an X-Amz-Target to a list of answers for its 1st, 2nd, ...
  request; after the list (or for unlisted targets) the answer is "ok":
    "ok"                  success (Firehose: every record accepted)
    "throttle"            400 {"__type": "ThrottlingException"}
    "500"                 500 {"__type": "InternalFailure"}
    "notfound"            400 {"__type": "ResourceNotFoundException"}
    "partial:1,3"         Firehose: records 1 and 3 fail with ServiceUnavailableException
    "partialperm:2"       Firehose: record 2 fails with InvalidArgumentException
    {"reject": {...}}     PutLogEvents 200 with that rejectedLogEventsInfo
Signatures are not checked. Exits when stdin closes.
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = {}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("x-amzn-RequestId", "fault-1")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        target = self.headers.get("X-Amz-Target", "")
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        with LOCK:
            i = COUNTS.get(target, 0)
            COUNTS[target] = i + 1
            with open(LOGFILE, "a") as f:
                f.write(json.dumps({"target": target, "body": body,
                                    "content_type": self.headers.get("Content-Type", ""),
                                    "query_mode": self.headers.get("x-amzn-query-mode", ""),
                                    "authorization": self.headers.get("Authorization", "")})
                        + "\n")
        specs = SCRIPT.get(target, [])
        spec = specs[i] if i < len(specs) else "ok"
        if spec == "throttle":
            return self.send(400, {"__type": "ThrottlingException", "message": "Rate exceeded"})
        if spec == "500":
            return self.send(500, {"__type": "InternalFailure", "message": "boom"})
        if spec == "notfound":
            return self.send(400, {"__type": "ResourceNotFoundException",
                                   "message": "The specified resource does not exist."})
        if isinstance(spec, dict) and "reject" in spec:
            return self.send(200, {"rejectedLogEventsInfo": spec["reject"]})
        if target.startswith("Firehose_20150804.PutRecordBatch"):
            recs = body.get("Records", [])
            failed = set()
            code = "ServiceUnavailableException"
            if isinstance(spec, str) and spec.startswith("partial"):
                failed = {int(x) for x in spec.split(":")[1].split(",")}
                if spec.startswith("partialperm"):
                    code = "InvalidArgumentException"
            resps = []
            for k in range(len(recs)):
                if k in failed:
                    resps.append({"ErrorCode": code, "ErrorMessage": "injected"})
                else:
                    resps.append({"RecordId": "r%d" % k})
            return self.send(200, {"FailedPutCount": len(failed), "Encrypted": False,
                                   "RequestResponses": resps})
        return self.send(200, {})


def main():
    global LOGFILE, SCRIPT
    port, LOGFILE, SCRIPT = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    ThreadingHTTPServer.allow_reuse_address = True
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    print("PORT %d" % srv.server_address[1], flush=True)
    sys.stdin.read()  # until the test closes our stdin (or dies)
    srv.shutdown()


if __name__ == "__main__":
    main()
