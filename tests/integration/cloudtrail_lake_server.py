#!/usr/bin/env python3
"""A CloudTrail Lake ingestion endpoint (PutAuditEvents) for tests, built from
the service model, because moto does not serve this API.

What it does, as the service does it:
- SigV4 (AWS4-HMAC-SHA256 in the Authorization header) is verified for real:
  known access key, scope date/region/service ("cloudtrail-data"), request
  time within 15 minutes, the signature recomputed from the canonical request
  (the same canonicalisation is checked against the AWS SigV4 test suite by
  `--self-test`). Failures answer 403 (IncompleteSignatureException,
  UnrecognizedClientException, InvalidSignatureException) or 400
  (MissingAuthenticationTokenException is 403 too) like the AWS front end.
- The request is validated against the service model
  (aws-models/cloudtrail-data/2021-08-11/service-2.json): method and URI,
  query members (channelArn, externalId), required members, list lengths
  (1..100 auditEvents), string lengths and patterns (id), and the 1 MB
  request limit the operation documents. Violations answer 400
  ValidationException. Members the model does not have are refused too
  (deliberately stricter than the service, to catch client bugs).
- Per event, what CloudTrail Lake checks at ingestion, reported in the
  `failed` list with the model's documented codes: InvalidChecksum
  (eventDataChecksum must be base64(SHA-256(eventData))), InvalidData
  (eventData not a JSON object, or fields the integration event schema does
  not have), FieldNotFound (a required schema field missing), FieldTooLong
  (the schema's length limits), InvalidRecipient (recipientAccountId is not
  the channel owner).
- Unknown channel: 400 ChannelNotFound; a channelArn that is no channel ARN:
  400 InvalidChannelARN; a caller from another account than the channel
  owner: 400 ChannelInsufficientPermission; ids repeated inside one request:
  400 DuplicatedAuditEventId. Errors are restJson1: status, header
  `x-amzn-ErrorType: <Code>:http://internal.amazon.com/coral/...`, body
  `{"message": ...}`.
- Accepted events are stored by id (idempotent: a resent id is answered as
  successful again and counted as a resend, the store keeps one copy); with
  --store FILE they are appended to FILE (fsynced) and reloaded at start, so
  the endpoint can be killed and started again without losing its store.

Fault injection by rule (POST /_control/rules, a JSON list; each rule has
`times` (default 1, -1 = always) and applies to PutAuditEvents calls that
passed authentication):
  {"call_error": "ThrottlingException", "status": 400}   whole call refused
  {"call_error": "InternalServerError", "status": 500}   5xx
  {"call_error": "ChannelNotFound"}                       a model error (400)
  {"event_error": "Throttling", "every": 3}               every 3rd event of a call fails
  {"event_error": "InvalidData", "ids": ["..."]}          these ids fail
  {"delay_s": 5}                                          store, then answer late
Control (no signature; loopback only): GET /_control/state (events, calls,
resends, rules left), POST /_control/reset.

Run: cloudtrail_lake_server.py --model SERVICE2.json --key AKID:SECRET:ACCOUNT
     --channel ARN [--port 0] [--store FILE]; prints "PORT <n>" when listening.
     cloudtrail_lake_server.py --self-test SIGV4_SUITE_DIR: canonicalisation
     and verification against the AWS suite; exit status 0 when all pass.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import json
import os
import re
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = "cloudtrail-data"
MAX_SKEW_S = 15 * 60
MAX_BODY = 1000000  # "up to 1 MB" per PutAuditEvents request (decimal: the stricter reading)
ERROR_NS = "http://internal.amazon.com/coral/com.amazonaws.cloudtrail.data/"

# The integration event schema (CloudTrail Lake "integrations event schema"):
# eventData fields, required ones, and the documented length limits.
SCHEMA_FIELDS = {"version", "userIdentity", "userAgent", "eventSource", "eventName", "eventTime",
                 "UID", "requestParameters", "responseElements", "errorCode", "errorMessage",
                 "sourceIPAddress", "recipientAccountId", "additionalEventData"}
SCHEMA_REQUIRED = ["version", "userIdentity", "eventSource", "eventName", "eventTime", "UID",
                   "recipientAccountId"]
SCHEMA_MAX = {"version": 256, "userAgent": 1024, "eventSource": 1024, "eventName": 1024,
              "UID": 1024, "errorCode": 256, "errorMessage": 256, "sourceIPAddress": 1024}
SCHEMA_JSON_MAX = {"requestParameters": 100 * 1024, "responseElements": 100 * 1024,
                   "additionalEventData": 28 * 1024}
EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


# ---- SigV4 -----------------------------------------------------------------

def _uri_encode(s, safe):
    return urllib.parse.quote(s, safe=safe)


def canonical_uri(path, normalize=True):
    """The canonical URI of a (percent-decoded) path, non-S3 rules: dot
    segments removed and empty segments collapsed when normalizing, each
    segment URI-encoded once."""
    if normalize:
        out = []
        for seg in path.split("/"):
            if seg in ("", "."):
                continue
            if seg == "..":
                if out:
                    out.pop()
                continue
            out.append(seg)
        norm = "/" + "/".join(out)
        if path.endswith("/") and out:
            norm += "/"
        path = norm
    return _uri_encode(path, safe="/~") or "/"


def canonical_query(raw_query):
    """Pairs decoded, re-encoded (RFC 3986 unreserved kept), sorted by key then value."""
    pairs = []
    for part in raw_query.split("&") if raw_query else []:
        if not part:
            continue
        k, _, v = part.partition("=")
        k = _uri_encode(urllib.parse.unquote(k), safe="-_.~")
        v = _uri_encode(urllib.parse.unquote(v), safe="-_.~")
        pairs.append((k, v))
    pairs.sort()
    return "&".join("%s=%s" % kv for kv in pairs)


def canonical_headers(headers, signed):
    """headers: list of (name, value) as received (repeats allowed). Values of
    one name are joined by ',', each trimmed with inner whitespace collapsed."""
    vals = {}
    for name, value in headers:
        vals.setdefault(name.lower(), []).append(" ".join(value.split()))
    lines = []
    for name in signed:
        if name not in vals:
            return None
        lines.append("%s:%s\n" % (name, ",".join(vals[name])))
    return "".join(lines)


def canonical_request(method, path, raw_query, headers, signed, payload_hash, normalize=True):
    ch = canonical_headers(headers, signed)
    if ch is None:
        return None
    return "\n".join([method, canonical_uri(path, normalize), canonical_query(raw_query), ch,
                      ";".join(signed), payload_hash])


def signing_key(secret, date, region, service):
    k = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    return k


def signature(secret, amz_date, scope, creq):
    date, region, service = scope.split("/")[:3]
    sts = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(signing_key(secret, date, region, service), sts.encode(),
                    hashlib.sha256).hexdigest()


AUTH_RE = re.compile(r"^AWS4-HMAC-SHA256 +Credential=([^,]+), *SignedHeaders=([^,]+), *"
                     r"Signature=([0-9a-f]{64})$")


class AuthError(Exception):
    def __init__(self, code, message, status=403):
        super().__init__(message)
        self.code, self.status = code, status


def verify_sigv4(method, path, raw_query, headers, body, keys, region, service, now=None,
                 normalize=True):
    """Check a request's SigV4 Authorization header. keys: {akid: (secret, account)}.
    Returns the caller's (akid, account); raises AuthError."""
    h = {}
    for name, value in headers:
        h.setdefault(name.lower(), value)
    auth = h.get("authorization")
    if not auth:
        raise AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    m = AUTH_RE.match(auth.strip())
    if not m:
        raise AuthError("IncompleteSignatureException",
                        "Authorization header requires Credential, SignedHeaders and Signature")
    cred, signed_text, sig = m.groups()
    parts = cred.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise AuthError("IncompleteSignatureException", "Credential is malformed: " + cred)
    akid, date, c_region, c_service = parts[:4]
    if akid not in keys:
        raise AuthError("UnrecognizedClientException",
                        "The security token included in the request is invalid.")
    if c_region != region or c_service != service:
        raise AuthError("InvalidSignatureException",
                        "Credential should be scoped to region '%s' and service '%s'"
                        % (region, service))
    amz_date = h.get("x-amz-date")
    if not amz_date:
        raise AuthError("IncompleteSignatureException", "X-Amz-Date is missing")
    try:
        t = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(
            tzinfo=datetime.timezone.utc)
    except ValueError:
        raise AuthError("IncompleteSignatureException", "X-Amz-Date is malformed")
    if amz_date[:8] != date:
        raise AuthError("InvalidSignatureException", "Credential date does not match X-Amz-Date")
    now = now if now is not None else time.time()
    if abs(t.timestamp() - now) > MAX_SKEW_S:
        raise AuthError("InvalidSignatureException", "Signature expired or not yet valid")
    signed = signed_text.split(";")
    if signed != sorted(signed) or "host" not in signed or "x-amz-date" not in signed:
        raise AuthError("InvalidSignatureException",
                        "SignedHeaders must be sorted and include host and x-amz-date")
    payload = h.get("x-amz-content-sha256") or hashlib.sha256(body).hexdigest()
    if payload != "UNSIGNED-PAYLOAD" and payload != hashlib.sha256(body).hexdigest():
        raise AuthError("InvalidSignatureException", "x-amz-content-sha256 does not match the body")
    creq = canonical_request(method, path, raw_query, headers, signed, payload, normalize)
    if creq is None:
        raise AuthError("InvalidSignatureException", "a signed header is missing")
    secret = keys[akid][0]
    want = signature(secret, amz_date, "/".join(parts[1:]), creq)
    if not hmac.compare_digest(want, sig):
        raise AuthError("InvalidSignatureException",
                        "The request signature we calculated does not match the signature you "
                        "provided.")
    return akid, keys[akid][1]


# ---- the service model ------------------------------------------------------

class Model:
    """The parts of a Smithy/botocore JSON model the validator needs."""

    def __init__(self, path):
        with open(path) as f:
            m = json.load(f)
        self.meta = m["metadata"]
        self.shapes = m["shapes"]
        self.op = m["operations"]["PutAuditEvents"]
        self.errors = {e["shape"] for e in self.op.get("errors", [])}
        assert self.meta["signingName"] == SERVICE and self.meta["protocol"] == "rest-json"
        self.input = self.shapes[self.op["input"]["shape"]]

    def validate(self, value, shape_name, path, errs):
        """Append "<path>: problem" for every constraint `value` breaks."""
        s = self.shapes[shape_name]
        t = s["type"]
        if t == "structure":
            if not isinstance(value, dict):
                errs.append("%s: expected an object" % path)
                return
            for r in s.get("required", []):
                if r not in value:
                    errs.append("%s.%s: member must not be null" % (path, r))
            for k, v in value.items():
                mem = s["members"].get(k)
                if mem is None:
                    errs.append("%s.%s: unknown member" % (path, k))
                    continue
                self.validate(v, mem["shape"], "%s.%s" % (path, k), errs)
        elif t == "list":
            if not isinstance(value, list):
                errs.append("%s: expected a list" % path)
                return
            if "min" in s and len(value) < s["min"]:
                errs.append("%s: length %d below %d" % (path, len(value), s["min"]))
            if "max" in s and len(value) > s["max"]:
                errs.append("%s: length %d above %d" % (path, len(value), s["max"]))
            for i, v in enumerate(value):
                self.validate(v, s["member"]["shape"], "%s.%d.member" % (path, i + 1), errs)
        elif t == "string":
            if not isinstance(value, str):
                errs.append("%s: expected a string" % path)
                return
            if "min" in s and len(value) < s["min"]:
                errs.append("%s: length %d below %d" % (path, len(value), s["min"]))
            if "max" in s and len(value) > s["max"]:
                errs.append("%s: length %d above %d" % (path, len(value), s["max"]))
            if "pattern" in s and not re.search(s["pattern"], value):
                errs.append("%s: does not match %s" % (path, s["pattern"]))
        else:
            errs.append("%s: shape type %s not supported by this endpoint" % (path, t))


# ---- the endpoint -----------------------------------------------------------

class Lake:
    def __init__(self, model, keys, region, channels, store_path=None):
        self.model, self.keys, self.region = model, keys, region
        self.channels = channels  # arn -> owner account
        self.lock = threading.Lock()
        self.events = {}  # id -> stored record
        self.order = []
        self.calls = []
        self.resends = 0
        self.rules = []
        self.store_path = store_path
        if store_path and os.path.exists(store_path):
            with open(store_path) as f:
                for line in f:
                    if line.endswith("\n"):
                        rec = json.loads(line)
                        if rec["id"] not in self.events:
                            self.events[rec["id"]] = rec
                            self.order.append(rec["id"])

    def store(self, recs):
        """Keep new records (by id); returns the number of resends among them."""
        new = [r for r in recs if r["id"] not in self.events]
        if self.store_path and new:
            with open(self.store_path, "a") as f:
                f.write("".join(json.dumps(r) + "\n" for r in new))
                f.flush()
                os.fsync(f.fileno())
        for r in new:
            self.events[r["id"]] = r
            self.order.append(r["id"])
        return len(recs) - len(new)

    def take_rule(self, kind):
        """The first live rule with key `kind`, its use counted."""
        for r in self.rules:
            if kind in r and r.get("times", 1) != 0:
                if r.get("times", 1) > 0:
                    r["times"] = r.get("times", 1) - 1
                return r
        return None


def check_event_data(text, checksum, owner):
    """(errorCode, message) for an event CloudTrail Lake would not ingest, else None."""
    want = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    if checksum is not None and checksum != want:
        return "InvalidChecksum", "eventDataChecksum is not base64(SHA-256(eventData))"
    try:
        d = json.loads(text)
    except ValueError:
        return "InvalidData", "eventData is not JSON"
    if not isinstance(d, dict):
        return "InvalidData", "eventData is not a JSON object"
    extra = sorted(set(d) - SCHEMA_FIELDS)
    if extra:
        return "InvalidData", "fields not in the schema: " + ", ".join(extra)
    for k in SCHEMA_REQUIRED:
        if k not in d or d[k] in (None, ""):
            return "FieldNotFound", "required field %s is missing" % k
    ui = d["userIdentity"]
    if not isinstance(ui, dict) or not isinstance(ui.get("type"), str) or \
            not isinstance(ui.get("principalId"), str) or not ui["type"] or not ui["principalId"]:
        return "FieldNotFound", "userIdentity needs type and principalId"
    if len(ui["type"]) > 128 or len(ui["principalId"]) > 1024:
        return "FieldTooLong", "userIdentity.type/principalId too long"
    for k, n in SCHEMA_MAX.items():
        if k in d:
            if not isinstance(d[k], str):
                return "InvalidData", "%s must be a string" % k
            if len(d[k].encode()) > n:
                return "FieldTooLong", "%s is longer than %d" % (k, n)
    for k, n in SCHEMA_JSON_MAX.items():
        if k in d:
            if not isinstance(d[k], dict):
                return "InvalidData", "%s must be a JSON object" % k
            if len(json.dumps(d[k], separators=(",", ":"), ensure_ascii=False).encode()) > n:
                return "FieldTooLong", "%s is larger than %d bytes" % (k, n)
    if not isinstance(d["eventTime"], str) or not EVENT_TIME.match(d["eventTime"]):
        return "InvalidData", "eventTime is not yyyy-MM-ddTHH:mm:ssZ"
    if d["recipientAccountId"] != owner:
        return "InvalidRecipient", "recipientAccountId is not the channel owner's account"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    lake = None  # set by serve()

    def log_message(self, fmt, *args):
        pass

    def reply(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", "%032x" % int.from_bytes(os.urandom(16), "big"))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (killed mid-flight): nothing to answer

    def error(self, status, code, message):
        self.reply(status, {"message": message}, {"x-amzn-ErrorType": "%s:%s" % (code, ERROR_NS)})

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_GET(self):
        if self.path == "/_control/state":
            lk = self.lake
            with lk.lock:
                self.reply(200, {"events": [lk.events[i] for i in lk.order], "calls": lk.calls,
                                 "resends": lk.resends, "rules": lk.rules})
            return
        self.error(404, "UnknownOperationException", "no such operation")

    def do_POST(self):
        lk = self.lake
        body = self.body()
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/_control/rules":
            with lk.lock:
                lk.rules.extend(json.loads(body))
            self.reply(200, {})
            return
        if url.path == "/_control/reset":
            with lk.lock:
                lk.rules, lk.calls = [], []
            self.reply(200, {})
            return
        self.put_audit_events(lk, url, body)

    def put_audit_events(self, lk, url, body):
        model = lk.model
        http = model.op["http"]
        try:
            _, account = verify_sigv4(self.command, urllib.parse.unquote(url.path), url.query,
                                      list(self.headers.items()), body, lk.keys, lk.region,
                                      SERVICE)
        except AuthError as e:
            self.error(e.status, e.code, str(e))
            return
        if self.command != http["method"] or url.path != http["requestUri"]:
            self.error(404, "UnknownOperationException", "no such operation")
            return
        if len(body) > MAX_BODY:
            self.error(400, "ValidationException",
                       "request of %d bytes exceeds the 1 MB limit of PutAuditEvents" % len(body))
            return
        # query members from the model's locations, then the JSON body
        q = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        req = {}
        for name, mem in model.input["members"].items():
            if mem.get("location") == "querystring" and mem.get("locationName", name) in q:
                req[name] = q[mem.get("locationName", name)][0]
        try:
            doc = json.loads(body or b"{}")
        except ValueError:
            self.error(400, "SerializationException", "body is not JSON")
            return
        if not isinstance(doc, dict):
            self.error(400, "SerializationException", "body is not a JSON object")
            return
        for k, v in doc.items():
            mem = model.input["members"].get(k)
            if mem is not None and mem.get("location"):
                self.error(400, "ValidationException", "%s belongs in the query string" % k)
                return
            req[k] = v
        errs = []
        model.validate(req, model.op["input"]["shape"], "PutAuditEventsRequest", errs)
        if errs:
            self.error(400, "ValidationException",
                       "%d validation error(s) detected: %s" % (len(errs), "; ".join(errs[:10])))
            return
        arn = req["channelArn"]
        m = re.match(r"^arn:[a-z-]+:cloudtrail:[a-z0-9-]+:\d{12}:channel/[-_A-Za-z0-9]+$", arn)
        if not m:
            self.error(400, "InvalidChannelARN", "%s is not a valid channel ARN" % arn)
            return
        if arn not in lk.channels:
            self.error(400, "ChannelNotFound", "channel %s not found" % arn)
            return
        owner = lk.channels[arn]
        if account != owner:
            self.error(400, "ChannelInsufficientPermission",
                       "the caller's account must own the channel")
            return
        ids = [e["id"] for e in req["auditEvents"]]
        if len(set(ids)) != len(ids):
            self.error(400, "DuplicatedAuditEventId", "two or more entries have the same id")
            return
        with lk.lock:
            call = {"ids": ids, "bytes": len(body), "status": 200, "delayed": False}
            lk.calls.append(call)
            rule = lk.take_rule("call_error")
            if rule:
                code = rule["call_error"]
                if code not in model.errors and code not in (
                        "ThrottlingException", "InternalServerError", "ServiceUnavailableException",
                        "ValidationException", "AccessDeniedException"):
                    raise ValueError("rule names an error the service does not answer: " + code)
                call["status"] = rule.get("status", 400)
                call["error"] = code
            erule = delay = None
            if not rule:
                erule = lk.take_rule("event_error")
                delay = lk.take_rule("delay_s")
            call["delayed"] = bool(delay)
        if rule:
            self.error(call["status"], code, "injected: " + code)
            return
        ok, failed, keep = [], [], []
        for i, e in enumerate(req["auditEvents"]):
            bad = check_event_data(e["eventData"], e.get("eventDataChecksum"), owner)
            if not bad and erule and ((erule.get("every") and i % erule["every"] == 0) or
                                      e["id"] in erule.get("ids", ())):
                bad = erule["event_error"], "injected"
            if bad:
                failed.append({"id": e["id"], "errorCode": bad[0], "errorMessage": bad[1]})
                continue
            keep.append({"id": e["id"], "eventData": e["eventData"], "channelArn": arn,
                         "checksum": e.get("eventDataChecksum"),
                         "externalId": req.get("externalId")})
        with lk.lock:
            lk.resends += lk.store(keep)
            for r in keep:
                ok.append({"id": r["id"], "eventID": hashlib.sha256(
                    (arn + r["id"]).encode()).hexdigest()[:36]})
            call["failed"] = [f["id"] for f in failed]
        if delay:
            time.sleep(delay["delay_s"])
        self.reply(200, {"successful": ok, "failed": failed})


# ---- for tests: the endpoint as a child process ------------------------------

def spec_dir():
    """The shared spec directory (BS_SPEC_DIR, else <source>/../shared/spec)."""
    src = os.environ.get("BS_SOURCE_DIR") or os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "..", "..")
    return os.environ.get("BS_SPEC_DIR") or os.path.join(src, "..", "shared", "spec")


def model_path():
    p = os.path.join(spec_dir(), "aws-models", "cloudtrail-data", "2021-08-11", "service-2.json")
    if not os.path.exists(p):
        raise RuntimeError("the CloudTrail Data service model is missing: %s (set BS_SPEC_DIR)" % p)
    return p


class Endpoint:
    """This server as a child process: start(), stop() (SIGKILL: the port refuses), start()
    again on the same port with the same store; state(), rules(...) over the control API."""

    def __init__(self, workdir, keys, channels, region, port=0):
        import subprocess  # noqa: F401 (only tests need it)
        self.workdir, self.keys, self.channels, self.region = workdir, keys, channels, region
        self.port = port
        self.store = os.path.join(workdir, "lake-store.ndjson")
        self.proc = None

    def start(self):
        import subprocess
        argv = [sys.executable, os.path.abspath(__file__), "--model", model_path(), "--region",
                self.region, "--port", str(self.port), "--store", self.store]
        for k in self.keys:
            argv += ["--key", k]
        for c in self.channels:
            argv += ["--channel", c]
        log = open(os.path.join(self.workdir, "lake-endpoint.log"), "ab")
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=log,
                                     start_new_session=True)
        log.close()
        line = self.proc.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError("the CloudTrail Lake endpoint did not start: %r" % line)
        self.port = int(line.split()[1])
        return self

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()

    def _call(self, method, path, body=None):
        import urllib.request
        req = urllib.request.Request(self.url + path, method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())

    def state(self):
        return self._call("GET", "/_control/state")

    def rules(self, *rules):
        self._call("POST", "/_control/rules", list(rules))


def serve(args):
    keys = {}
    for k in args.key:
        akid, secret, account = k.split(":", 2)
        keys[akid] = (secret, account)
    channels = {}
    for arn in args.channel:
        channels[arn] = arn.split(":")[4]
    lake = Lake(Model(args.model), keys, args.region, channels, args.store)
    Handler.lake = lake
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    print("PORT %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


# ---- self-test against the AWS SigV4 test suite ------------------------------

def parse_suite_request(text):
    """(method, path, query, [(name, value)], body) of a suite request.txt."""
    head, _, body = text.partition("\n\n")
    lines = head.split("\n")
    method, _, target = lines[0].partition(" ")
    target = target.rsplit(" ", 1)[0]
    path, _, query = target.partition("?")
    headers = []
    for ln in lines[1:]:
        if ln[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + ln.strip())
        elif ln:
            n, _, v = ln.partition(":")
            headers.append((n, v))
    return method, path, query, headers, body.encode()


def self_test(suite):
    """Every case of the suite: our canonical request and signature equal the
    suite's, the signed request verifies, and a flipped signature does not."""
    failures, cases = [], 0
    for name in sorted(os.listdir(suite)):
        d = os.path.join(suite, name)
        if not os.path.isdir(d):
            continue
        cases += 1
        ctx = json.load(open(os.path.join(d, "context.json")))
        creds = ctx["credentials"]
        ts = datetime.datetime.strptime(ctx["timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=datetime.timezone.utc)
        amz = ts.strftime("%Y%m%dT%H%M%SZ")
        method, path, query, headers, body = parse_suite_request(
            open(os.path.join(d, "request.txt")).read())
        if not any(n.lower() == "x-amz-date" for n, _ in headers):
            headers.append(("X-Amz-Date", amz))
        if creds.get("token") and not any(n.lower() == "x-amz-security-token" for n, _ in headers):
            headers.append(("X-Amz-Security-Token", creds["token"]))
        want_creq = open(os.path.join(d, "header-canonical-request.txt")).read()
        signed = want_creq.split("\n")[-2].split(";")
        have = {n.lower() for n, _ in headers}
        # headers the signer adds to the suite's request (the suite lists them signed)
        if "content-length" in signed and "content-length" not in have:
            headers.append(("Content-Length", str(len(body))))
        if "x-amz-content-sha256" in signed and "x-amz-content-sha256" not in have:
            headers.append(("X-Amz-Content-Sha256", hashlib.sha256(body).hexdigest()))
        creq = canonical_request(method, path, query, headers, signed,
                                 hashlib.sha256(body).hexdigest(), ctx.get("normalize", True))
        if creq != want_creq:
            failures.append("%s: canonical request differs:\n%s\n---\n%s" % (name, creq, want_creq))
            continue
        scope = "%s/%s/%s/aws4_request" % (amz[:8], ctx["region"], ctx["service"])
        sig = signature(creds["secret_access_key"], amz, scope, creq)
        want_sig = open(os.path.join(d, "header-signature.txt")).read().strip()
        if sig != want_sig:
            failures.append("%s: signature %s, suite %s" % (name, sig, want_sig))
            continue
        auth = ("AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s"
                % (creds["access_key_id"], scope, ";".join(signed), sig))
        keys = {creds["access_key_id"]: (creds["secret_access_key"], "000000000000")}
        try:
            verify_sigv4(method, path, query, headers + [("Authorization", auth)], body, keys,
                         ctx["region"], ctx["service"], now=ts.timestamp(),
                         normalize=ctx.get("normalize", True))
        except AuthError as e:
            failures.append("%s: the suite's signed request does not verify: %s" % (name, e))
            continue
        bad = auth[:-1] + ("0" if auth[-1] != "0" else "1")
        try:
            verify_sigv4(method, path, query, headers + [("Authorization", bad)], body, keys,
                         ctx["region"], ctx["service"], now=ts.timestamp(),
                         normalize=ctx.get("normalize", True))
            failures.append("%s: a wrong signature verified" % name)
        except AuthError:
            pass
    for f in failures:
        print("FAIL " + f)
    print("%d case(s), %d failure(s)" % (cases, len(failures)))
    return 0 if cases >= 30 and not failures else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model")
    ap.add_argument("--key", action="append", default=[], help="AKID:SECRET:ACCOUNT")
    ap.add_argument("--channel", action="append", default=[], help="channel ARN")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--store")
    ap.add_argument("--self-test", metavar="SIGV4_SUITE_DIR")
    args = ap.parse_args()
    if args.self_test:
        sys.exit(self_test(args.self_test))
    if not args.model or not args.key or not args.channel:
        ap.error("--model, --key and --channel are required")
    serve(args)


if __name__ == "__main__":
    main()
