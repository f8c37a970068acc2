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
  and, for every request of any target (checked first):
    "poison": "MARK"      400 InvalidParameterException when the body contains MARK
  S3 (path-style, for the stale-upload sweep): GET ?uploads answers from
    "s3_upload_pages": [[[key, upload_id], ...], ...]: the page after the one
    whose last upload is (key-marker, upload-id-marker), IsTruncated while
    pages remain; PUT (PutObject) 200 with an ETag; DELETE 204. Logged with
    target "S3 <METHOD>" and "path" (query included).
Signatures are not checked. Exits when stdin closes.
"""
import json
import sys
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = {}


def s3_log(handler, method, body=None):
    with LOCK:
        with open(LOGFILE, "a") as f:
            f.write(json.dumps({"target": "S3 " + method, "path": handler.path,
                                "body": body}) + "\n")


def xml_escape(t):
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class S3Handler:
    """Path-style S3 answers (a base of Handler)."""

    def s3_send(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        s3_log(self, "GET")
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query,
                                  keep_blank_values=True)
        if "uploads" not in q:
            return self.s3_send(404)
        pages = SCRIPT.get("s3_upload_pages") or [[]]
        marker = (q.get("key-marker", [""])[0], q.get("upload-id-marker", [""])[0])
        i = 0
        if marker[0]:
            i = next((k + 1 for k, pg in enumerate(pages) if pg and tuple(pg[-1]) == marker),
                     len(pages))
        page = pages[i] if i < len(pages) else []
        more = i + 1 < len(pages)
        x = ["<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListMultipartUploadsResult>",
             "<Bucket>b</Bucket><IsTruncated>%s</IsTruncated>" % ("true" if more else "false")]
        if more:
            x.append("<NextKeyMarker>%s</NextKeyMarker><NextUploadIdMarker>%s"
                     "</NextUploadIdMarker>" % (xml_escape(page[-1][0]), xml_escape(page[-1][1])))
        for key, uid in page:
            x.append("<Upload><Key>%s</Key><UploadId>%s</UploadId></Upload>"
                     % (xml_escape(key), xml_escape(uid)))
        x.append("</ListMultipartUploadsResult>")
        return self.s3_send(200, "".join(x).encode(), [("Content-Type", "application/xml")])

    def do_PUT(self):
        n = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(n)
        s3_log(self, "PUT")
        return self.s3_send(200, b"", [("ETag", '"fault-etag"')])

    def do_DELETE(self):
        s3_log(self, "DELETE")
        return self.s3_send(204)


class Handler(S3Handler, BaseHTTPRequestHandler):
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
        mark = SCRIPT.get("poison")
        if mark and mark in raw.decode(errors="replace"):
            return self.send(400, {"__type": "InvalidParameterException",
                                   "message": "injected: the call holds a bad event"})
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
