#!/usr/bin/python3
"""Integration: the AWS sinks (firehose, cloudwatch_logs, cloudwatch_metrics,
s3) from a real spool to moto_server with SigV4 verification on, read back with
boto3; failure paths against tests/integration/fault_server.py.

Drives BS_BUILD_DIR/aws_sink_run (tests/tools/aws_sink_run.c). boto3 runs in
a subprocess (tests/integration/aws_sinks_boto.py) with the python on PATH
that has it (pyenv's on the dev machine).
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
BUILD = os.environ.get("BS_BUILD_DIR", os.path.join(HERE, "..", "..", "build"))
RUN = os.path.join(BUILD, "aws_sink_run")
REGION = "us-east-1"
sys.path.insert(0, HERE)
from test_aws_kms import free_port, moto_server_path, python_with_boto3  # noqa: E402


def now_ms():
    return int(time.time() * 1000)


def run_sink(sink, spool, endpoint, opts=(), inp=None, stream="logs", env=None, timeout_s=60,
             extra=()):
    """Run aws_sink_run to completion; returns (exit code, stats dict, stderr)."""
    cmd = [RUN, "--sink", sink, "--spool", spool, "--region", REGION, "--endpoint", endpoint,
           "--stream", stream, "--timeout-s", str(timeout_s)] + list(extra)
    if inp:
        cmd += ["--input", inp]
    for o in opts:
        cmd += ["--opt", o]
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout_s + 60)
    if "Sanitizer" in p.stderr or "runtime error:" in p.stderr:
        raise AssertionError("sanitizer report from aws_sink_run:\n" + p.stderr[-4000:])
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    return p.returncode, (json.loads(lines[-1]) if lines else {}), p.stderr


def metric(stats, prefix):
    """Sum of the registry series whose key starts with `prefix`."""
    return sum(v for k, v in stats.get("metrics", {}).items() if k.startswith(prefix))


def write_events(path, events):
    with open(path, "w") as f:
        for e in events:
            f.write(json.dumps(e, separators=(",", ":")) + "\n")


class MotoSinks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.moto = None
        cls.py = python_with_boto3()
        if not moto_server_path() or not cls.py:
            raise RuntimeError("moto_server and a python3 with boto3 are required (make deps)")
        if not os.access(RUN, os.X_OK):
            raise RuntimeError("%s not built" % RUN)
        cls.port = free_port()
        cls.endpoint = "http://127.0.0.1:%d" % cls.port
        env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
        cls.moto_log = open(os.path.join(BUILD, "moto-aws-sinks-%d.log" % cls.port), "w")
        cls.moto = subprocess.Popen([moto_server_path(), "-H", "127.0.0.1", "-p", str(cls.port)],
                                    env=env, stdout=cls.moto_log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(cls.endpoint + "/moto-api/", timeout=2).read()
                    break
                except OSError:
                    if time.time() > deadline or cls.moto.poll() is not None:
                        raise RuntimeError("moto_server did not start")
                    time.sleep(0.3)
            out = subprocess.run([cls.py, os.path.join(HERE, "aws_moto_setup.py"),
                                  cls.endpoint + "/", REGION],
                                 capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                raise RuntimeError("moto set-up failed: " + out.stderr[-2000:])
            cls.creds = json.loads(out.stdout.strip().splitlines()[-1])
        except BaseException:
            cls.tearDownClass()
            raise
        cls.env = dict(os.environ, AWS_ACCESS_KEY_ID=cls.creds["access_key_id"],
                       AWS_SECRET_ACCESS_KEY=cls.creds["secret_access_key"])
        cls.env.pop("AWS_SESSION_TOKEN", None)
        cls.env.pop("AWS_PROFILE", None)

    @classmethod
    def tearDownClass(cls):
        if cls.moto:
            cls.moto.kill()
            cls.moto.wait()
            cls.moto = None
            cls.moto_log.close()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="bs-awssinks-")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def boto(self, *args):
        out = subprocess.run([self.py, os.path.join(HERE, "aws_sinks_boto.py"), self.endpoint,
                              REGION, self.creds["access_key_id"], self.creds["secret_access_key"]]
                             + [str(a) for a in args], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        return json.loads(out.stdout)

    def events(self, n, tag, **extra):
        evs = [dict({"n": i, "tag": tag, "timestamp": now_ms() - (n - i) * 10}, **extra)
               for i in range(n)]
        path = os.path.join(self.tmp, tag + ".ndjson")
        write_events(path, evs)
        return evs, path

    def test_firehose_delivers_every_record(self):
        self.boto("create-bucket", "fh-dest")
        self.boto("create-firehose", "fh-stream", "fh-dest")
        evs, path = self.events(1203, "fh")  # three PutRecordBatch calls (500 per call)
        rc, st, err = run_sink("firehose", os.path.join(self.tmp, "spool"), self.endpoint,
                               ["delivery_stream=fh-stream"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 1203)
        self.assertGreaterEqual(st["batches"], 3)
        got = [json.loads(l) for o in self.boto("read-s3", "fh-dest", "") for l in o["lines"]]
        self.assertEqual(sorted(got, key=lambda e: e["n"]), evs)

    def test_logs_auto_create_templates_sorted(self):
        base = now_ms() - 3600 * 1000
        # out of time order in the spool; one event without a time field
        evs = [{"n": i, "timestamp": base + ((i * 7919) % 100) * 1000} for i in range(100)]
        evs.append({"n": 100, "msg": "no time"})
        path = os.path.join(self.tmp, "logs.ndjson")
        write_events(path, evs)
        rc, st, err = run_sink("cloudwatch_logs", os.path.join(self.tmp, "spool"), self.endpoint,
                               ["group=/bs/{broker_id}", "log_stream={hostname}-{stream}",
                                "auto_create=1", "hostname=h1", "broker_id=7"], path,
                               stream="audit", env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 101)
        got = self.boto("read-logs", "/bs/7", "h1-audit")
        self.assertEqual(sorted(json.loads(g["message"])["n"] for g in got), list(range(101)))
        ts = [g["timestamp"] for g in got]
        self.assertEqual(ts, sorted(ts))
        for g in got:
            m = json.loads(g["message"])
            if "timestamp" in m:
                self.assertEqual(g["timestamp"], m["timestamp"])

    def test_logs_missing_group_is_counted_then_recovers(self):
        path = self.events(5, "nogroup")[1]
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=/missing", "log_stream=s"], path, env=self.env,
                               timeout_s=8, extra=["--http-attempts", "1"])
        self.assertNotEqual(rc, 0)
        self.assertEqual(st["delivered"], 0)
        self.assertGreaterEqual(metric(st, 'brokerside_sink_api_errors_total{sink="cloudwatch_logs",'
                                           'api="PutLogEvents",code="ResourceNotFoundException"'), 1)
        self.assertIn("ResourceNotFoundException", err)
        # the operator creates the group and stream: the same spool delivers everything
        self.boto("create-group", "/missing")
        self.boto("create-stream", "/missing", "s")
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=/missing", "log_stream=s"], None, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 5)
        self.assertEqual(len(self.boto("read-logs", "/missing", "s")), 5)

    def emf(self, n):
        evs = []
        t = (int(time.time()) - 120) * 1000
        for i in range(n):
            evs.append({"_aws": {"Timestamp": t, "CloudWatchMetrics": [{
                "Namespace": "BrokersideTest", "Dimensions": [["Broker"], ["Broker", "Api"]],
                "Metrics": [{"Name": "Requests", "Unit": "Count"},
                            {"Name": "LatencyMs", "Unit": "Milliseconds"}]}]},
                "Broker": "b%d" % (i % 2), "Api": "Produce", "Requests": i + 1,
                "LatencyMs": [1.5, 2.5, 1.5, float(i)]})
        return evs, t // 1000

    def check_metrics(self, query):
        evs, t = self.emf(10)
        path = os.path.join(self.tmp, "emf.ndjson")
        write_events(path, evs)
        # plus an event whose only value is infinite (1e999 parses as inf) and a non-EMF event
        with open(path, "a") as f:
            f.write('{"_aws":{"CloudWatchMetrics":[{"Namespace":"BrokersideTest","Dimensions":[],'
                    '"Metrics":[{"Name":"Bad"}]}]},"Bad":1e999}\n')
            f.write('{"not":"emf"}\n')
        rc, st, err = run_sink("cloudwatch_metrics", os.path.join(self.tmp, "spool"),
                               self.endpoint, ["query=1"] if query else [], path,
                               stream="metrics", env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 10)
        self.assertEqual(st["dead_lettered"], 2)
        self.assertEqual(metric(st, 'brokerside_sink_skipped_values_total{sink="cloudwatch_metrics",'
                                    'reason="non_finite"'), 1)
        names = {(m["name"], tuple(map(tuple, m["dims"])))
                 for m in self.boto("read-metrics", "BrokersideTest")}
        for b in ("b0", "b1"):
            self.assertIn(("Requests", (("Broker", b),)), names)
            self.assertIn(("LatencyMs", (("Api", "Produce"), ("Broker", b))), names)
        self.assertNotIn("Bad", {n for n, _ in names})
        # b0 got events 0,2,4,6,8: Requests 1+3+5+7+9; LatencyMs 4 values each
        # the (Broker, Api) dimension set (moto matches a subset of dimensions loosely)
        dims = '[["Broker","b0"],["Api","Produce"]]'
        req = self.boto("metric-stats", "BrokersideTest", "Requests", dims, t - 600, t + 600)
        lat = self.boto("metric-stats", "BrokersideTest", "LatencyMs", dims, t - 600, t + 600)
        return req, lat

    def test_metrics_json_then_query_protocol(self):
        req, lat = self.check_metrics(query=False)
        self.assertEqual(sum(d["Sum"] for d in req), 25.0)
        self.assertEqual(sum(d["SampleCount"] for d in lat), 20.0)
        self.assertEqual(min(d["Minimum"] for d in lat), 0.0)
        req, lat = self.check_metrics(query=True)  # same namespace: values add up
        self.assertEqual(sum(d["Sum"] for d in req), 50.0)
        self.assertEqual(sum(d["SampleCount"] for d in lat), 40.0)

    def test_s3_gzip_objects_and_multipart(self):
        self.boto("create-bucket", "bs-s3")
        evs, path = self.events(300, "s3small")
        rc, st, err = run_sink("s3", os.path.join(self.tmp, "spool"), self.endpoint,
                               ["bucket=bs-s3", "prefix=small/{stream}/%Y/{hostname}-",
                                "hostname=hx"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        objs = self.boto("read-s3", "bs-s3", "small/")
        year = time.strftime("%Y", time.gmtime())
        for o in objs:
            self.assertTrue(o["key"].startswith("small/logs/%s/hx-" % year), o["key"])
            self.assertTrue(o["key"].endswith(".ndjson.gz"), o["key"])
        self.assertEqual([json.loads(l) for o in objs for l in o["lines"]], evs)
        # > 5 MiB without gzip: multipart upload in two 5 MiB-or-more parts
        big = [{"n": i, "pad": "x" * 1000} for i in range(6000)]
        path = os.path.join(self.tmp, "big.ndjson")
        write_events(path, big)
        rc, st, err = run_sink("s3", os.path.join(self.tmp, "spool2"), self.endpoint,
                               ["bucket=bs-s3", "prefix=big/", "no_gzip=1",
                                "threshold=5242880", "part_bytes=5242880",
                                "object_bytes=104857600"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(metric(st, 'brokerside_sink_s3_objects_total{sink="s3",method="multipart"'), 1)
        objs = self.boto("read-s3", "bs-s3", "big/")
        self.assertEqual(len(objs), 1)
        self.assertEqual([json.loads(l) for l in objs[0]["lines"]], big)
        self.assertEqual(self.boto("list-uploads", "bs-s3"), [])

    def test_s3_stale_upload_of_this_spool_is_aborted(self):
        self.boto("create-bucket", "bs-stale")
        spool = os.path.join(self.tmp, "spool")
        path = self.events(3, "one")[1]
        rc, st, err = run_sink("s3", spool, self.endpoint, ["bucket=bs-stale", "prefix=p/"], path,
                               env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        key = self.boto("read-s3", "bs-stale", "p/")[0]["key"]
        spool_id = key[len("p/"):].split("-")[0]
        # an upload left behind by a crashed run of this spool, and a foreign one
        self.boto("start-upload", "bs-stale", "p/%s-999.ndjson.gz" % spool_id)
        self.boto("start-upload", "bs-stale", "p/someone-else.ndjson.gz")
        path = self.events(3, "two")[1]
        rc, st, err = run_sink("s3", spool, self.endpoint, ["bucket=bs-stale", "prefix=p/"], path,
                               env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        left = [u["key"] for u in self.boto("list-uploads", "bs-stale")]
        self.assertEqual(left, ["p/someone-else.ndjson.gz"])
        self.assertIn("aborted unfinished upload", err)

    def test_bad_config_is_a_clear_counted_error(self):
        spool = os.path.join(self.tmp, "spool")
        path = self.events(3, "bad")[1]
        # missing bucket
        rc, st, err = run_sink("s3", spool, self.endpoint, ["bucket=does-not-exist"], path,
                               env=self.env, timeout_s=8, extra=["--http-attempts", "1"])
        self.assertNotEqual(rc, 0)
        self.assertEqual(st["delivered"], 0)
        self.assertGreaterEqual(metric(st, 'brokerside_sink_api_errors_total{sink="s3",'
                                           'api="PutObject",code="NoSuchBucket"'), 1)
        # wrong region: the delivery stream exists in us-east-1 only
        self.boto("create-bucket", "fh-region")
        self.boto("create-firehose", "fh-region", "fh-region")
        cmd = [RUN, "--sink", "firehose", "--spool", os.path.join(self.tmp, "spool2"), "--region",
               "eu-west-1", "--endpoint", self.endpoint, "--input", path, "--timeout-s", "8",
               "--http-attempts", "1", "--opt", "delivery_stream=fh-region"]
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env, timeout=60)
        self.assertNotEqual(p.returncode, 0)
        st = json.loads(p.stdout.splitlines()[-1])
        self.assertEqual(st["delivered"], 0)
        self.assertGreaterEqual(metric(st, 'brokerside_sink_api_errors_total{sink="firehose",'
                                           'api="PutRecordBatch",code="ResourceNotFoundException"'), 1)
        # bad credentials: rejected, the client refreshes once, the error is counted
        env = dict(self.env, AWS_SECRET_ACCESS_KEY="wrong-secret")
        rc, st, err = run_sink("firehose", os.path.join(self.tmp, "spool3"), self.endpoint,
                               ["delivery_stream=fh-region"], path, env=env, timeout_s=8,
                               extra=["--http-attempts", "1"])
        self.assertNotEqual(rc, 0)
        self.assertEqual(st["delivered"], 0)
        self.assertGreaterEqual(metric(st, 'brokerside_sink_api_errors_total{sink="firehose",'
                                           'api="PutRecordBatch",code="'), 1)
        self.assertIn("credentials rejected", err)
        # a template with an unknown field is refused at creation
        rc, st, err = run_sink("s3", os.path.join(self.tmp, "spool4"), self.endpoint,
                               ["bucket=ok-bucket", "prefix={nope}/"], path, env=self.env)
        self.assertNotEqual(rc, 0)
        self.assertEqual(st.get("error"), "config")

    def test_kill9_during_delivery_then_restart(self):
        self.boto("create-group", "/k9")
        self.boto("create-stream", "/k9", "s")
        evs, path = self.events(3000, "k9")
        spool = os.path.join(self.tmp, "spool")
        p = subprocess.Popen([RUN, "--sink", "cloudwatch_logs", "--spool", spool, "--region",
                              REGION, "--endpoint", self.endpoint, "--input", path,
                              "--per-tick", "50", "--timeout-s", "60", "--opt", "group=/k9",
                              "--opt", "log_stream=s"], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            # wait until some events arrived, then kill -9 mid-stream
            deadline = time.time() + 60
            while len(self.boto("read-logs", "/k9", "s")) == 0 and time.time() < deadline:
                time.sleep(0.2)
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        # the rest of the input is appended by a second run, which also drains the spool
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=/k9", "log_stream=s"], None, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        got = [json.loads(g["message"])["n"] for g in self.boto("read-logs", "/k9", "s")]
        appended = set(got)
        # every event appended before the kill arrived; duplicates only from the one
        # batch in flight (at-least-once; ids let readers drop them)
        self.assertEqual(appended, set(range(max(appended) + 1)))
        self.assertLessEqual(len(got) - len(appended), 10000)


class FaultSinks(unittest.TestCase):
    def setUp(self):
        if not os.access(RUN, os.X_OK):
            raise RuntimeError("%s not built" % RUN)
        self.tmp = tempfile.mkdtemp(prefix="bs-awsfault-")
        self.log = os.path.join(self.tmp, "requests.ndjson")
        self.srv = None
        self.env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDFAULT", AWS_SECRET_ACCESS_KEY="s")

    def tearDown(self):
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, script, port=0):
        self.srv = subprocess.Popen([sys.executable, os.path.join(HERE, "fault_server.py"),
                                     str(port), self.log, json.dumps(script)],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        line = self.srv.stdout.readline()
        self.assertTrue(line.startswith("PORT "), line)
        self.port = int(line.split()[1])
        self.endpoint = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.srv:
            self.srv.kill()
            self.srv.wait()
            self.srv.stdin.close()
            self.srv.stdout.close()
            self.srv = None

    def requests(self, target, whole=False):
        if not os.path.exists(self.log):
            return []
        with open(self.log) as f:
            return [r if whole else r["body"] for r in map(json.loads, f)
                    if r["target"] == target]

    def write(self, events):
        path = os.path.join(self.tmp, "in.ndjson")
        write_events(path, events)
        return path

    def test_firehose_partial_failure_resends_only_failed_records(self):
        self.start({"Firehose_20150804.PutRecordBatch": ["partial:1,3", "partial:1",
                                                         "partialperm:0"]})
        path = self.write([{"n": i} for i in range(6)])
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("firehose", spool, self.endpoint, ["delivery_stream=x"], path,
                               env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        reqs = self.requests("Firehose_20150804.PutRecordBatch")
        decoded = [[json.loads(base64.b64decode(r["Data"])) for r in q["Records"]] for q in reqs]
        self.assertEqual(len(reqs), 3)
        self.assertEqual(decoded[0], [{"n": i} for i in range(6)])
        self.assertEqual(decoded[1], [{"n": 1}, {"n": 3}])  # only the failed records again
        self.assertEqual(decoded[2], [{"n": 3}])  # n=3 failed again, then permanently
        for q in reqs:
            for r in q["Records"]:
                self.assertTrue(base64.b64decode(r["Data"]).endswith(b"\n"))
        self.assertEqual(st["delivered"], 5)
        self.assertEqual(st["dead_lettered"], 1)
        with open(os.path.join(spool, "deadletter", "firehose.ndjson")) as f:
            dl = f.read()
        self.assertIn("InvalidArgumentException", dl)
        self.assertEqual(metric(st, 'brokerside_sink_failed_records_total{sink="firehose",'
                                    'code="ServiceUnavailableException"'), 3)

    def test_throttling_and_500_are_retried(self):
        self.start({"Firehose_20150804.PutRecordBatch": ["throttle", "500", "throttle"]})
        path = self.write([{"n": i} for i in range(4)])
        rc, st, err = run_sink("firehose", os.path.join(self.tmp, "spool"), self.endpoint,
                               ["delivery_stream=x"], path, env=self.env,
                               extra=["--http-attempts", "1"])
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 4)
        self.assertEqual(st["retried"], 12)  # 3 failed sends of 4 entries
        self.assertEqual(len(self.requests("Firehose_20150804.PutRecordBatch")), 4)
        self.assertEqual(metric(st, 'brokerside_sink_api_errors_total{sink="firehose",'
                                    'api="PutRecordBatch",code="ThrottlingException"'), 2)

    def test_logs_rejected_events_are_dead_lettered_and_spans_split(self):
        self.start({"Logs_20140328.PutLogEvents": [
            {"reject": {"tooOldLogEventEndIndex": 1, "tooNewLogEventStartIndex": 4}}]})
        t0 = now_ms() - 30 * 3600 * 1000
        # 6 events within a few minutes (first call), then 2 that are 30 h later (second call)
        evs = [{"n": i, "timestamp": t0 + (5 - i) * 1000} for i in range(6)]
        iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime((t0 - 2000) // 1000)) + ".%03dZ" % (
            (t0 - 2000) % 1000)
        evs += [{"n": 6, "timestamp": t0 + 30 * 3600 * 1000}, {"n": 7, "eventTime": iso}]
        path = self.write(evs)
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=g", "log_stream=s"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        reqs = self.requests("Logs_20140328.PutLogEvents")
        for q in reqs:
            ts = [e["timestamp"] for e in q["logEvents"]]
            self.assertEqual(ts, sorted(ts))
            self.assertLess(ts[-1] - ts[0], 24 * 3600 * 1000)
        sent = [json.loads(e["message"])["n"] for q in reqs for e in q["logEvents"]]
        self.assertEqual(sorted(sent), list(range(8)))
        self.assertGreaterEqual(len(reqs), 2)
        # first request: n=7 (ISO time, 2 s before the rest) is oldest: too old (index 0);
        # indices 4.. are too new; n=6 (30 h later) goes in a second request
        first = [json.loads(e["message"])["n"] for e in reqs[0]["logEvents"]]
        self.assertEqual(first, [7, 5, 4, 3, 2, 1, 0])
        self.assertEqual(reqs[0]["logEvents"][0]["timestamp"], t0 - 2000)
        self.assertEqual(st["dead_lettered"], 1 + (len(first) - 4))
        self.assertEqual(metric(st, 'brokerside_sink_rejected_log_events_total{sink="cloudwatch_logs",'
                                    'reason="too_old"'), 1)
        self.assertEqual(metric(st, 'brokerside_sink_rejected_log_events_total{sink="cloudwatch_logs",'
                                    'reason="too_new"'), len(first) - 4)
        with open(os.path.join(spool, "deadletter", "cloudwatch_logs.ndjson")) as f:
            dl = f.read()
        self.assertIn("too_old", dl)
        self.assertIn("too_new", dl)

    def test_logs_bad_events_isolated_by_splitting(self):
        # The server refuses a whole PutLogEvents call (InvalidParameterException)
        # when it holds a marked event: only the marked events may be
        # dead-lettered, every other event delivered exactly once.
        self.start({"poison": "POISON"})
        t = now_ms()
        evs = [{"n": i, "timestamp": t + i} for i in range(40)]
        for i in (7, 30):
            evs[i]["bad"] = "POISON"
        path = self.write(evs)
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=g", "log_stream=s"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 38)
        self.assertEqual(st["dead_lettered"], 2)
        reqs = self.requests("Logs_20140328.PutLogEvents")
        accepted = [json.loads(e["message"])["n"] for q in reqs
                    if "POISON" not in json.dumps(q) for e in q["logEvents"]]
        self.assertEqual(sorted(accepted), [i for i in range(40) if i not in (7, 30)])
        # bisection: a handful of calls per bad event, not one per event
        self.assertLess(len(reqs), 20)
        with open(os.path.join(spool, "deadletter", "cloudwatch_logs.ndjson")) as f:
            dl = [json.loads(line) for line in f]
        self.assertEqual(sorted(json.loads(d["event"])["n"] for d in dl), [7, 30])
        for d in dl:
            self.assertIn("InvalidParameterException", d["reason"])

    def test_logs_whole_call_refused_for_every_event_stops_splitting(self):
        # Every call is refused whatever it holds (the call itself is wrong):
        # after 8 lone events refused in a row the rest is dead-lettered with
        # the same reason instead of one call per event.
        self.start({"poison": "logEvents"})
        t = now_ms()
        path = self.write([{"n": i, "timestamp": t + i} for i in range(100)])
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=g", "log_stream=s"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 0)
        self.assertEqual(st["dead_lettered"], 100)
        self.assertLessEqual(len(self.requests("Logs_20140328.PutLogEvents")), 8 * 8)

    def test_s3_stale_upload_sweep_follows_every_page(self):
        # First run: learn this spool's id from the object key it writes.
        self.start({})
        spool = os.path.join(self.tmp, "spool")
        path = self.write([{"n": i} for i in range(3)])
        rc, st, err = run_sink("s3", spool, self.endpoint, ["bucket=bkt", "prefix=p/"], path,
                               env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        puts = self.requests("S3 PUT", whole=True)
        self.assertEqual(len(puts), 1)
        sid = puts[0]["path"].split("/p/")[1].split("-")[0]
        self.stop()
        os.unlink(self.log)
        # Restart: the listing comes in three pages; uploads of this spool are
        # on pages 1 and 3, foreign ones everywhere.
        pages = [[["p/aaa-1.ndjson.gz", "f1"], ["p/%s-900.ndjson.gz" % sid, "u900"]],
                 [["p/bbb-2.ndjson.gz", "f2"]],
                 [["p/%s-901.ndjson.gz" % sid, "u901"], ["p/zzz.ndjson.gz", "f3"]]]
        self.start({"s3_upload_pages": pages})
        path = self.write([{"n": i} for i in range(3, 6)])
        rc, st, err = run_sink("s3", spool, self.endpoint, ["bucket=bkt", "prefix=p/"], path,
                               env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 3)
        lists = [r["path"] for r in self.requests("S3 GET", whole=True)]
        self.assertEqual(len(lists), 3)
        self.assertIn("key-marker=p%2F" + sid + "-900.ndjson.gz", lists[1])
        self.assertIn("upload-id-marker=u900", lists[1])
        self.assertIn("key-marker=p%2Fbbb-2.ndjson.gz", lists[2])
        aborted = sorted(r["path"].split("uploadId=")[1]
                         for r in self.requests("S3 DELETE", whole=True))
        self.assertEqual(aborted, ["u900", "u901"])

    def test_logs_auto_create_limits_and_bad_events(self):
        self.start({"Logs_20140328.PutLogEvents": ["notfound"]})
        t = now_ms()
        big = "x" * (200 * 1024)
        evs = [{"n": i, "timestamp": t + i, "pad": big} for i in range(12)]
        path = self.write(evs)
        with open(path, "ab") as f:
            f.write(b'{"n": 99, "bad": "\xff\xfe"}\n')  # not UTF-8
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("cloudwatch_logs", spool, self.endpoint,
                               ["group=/g/{broker_id}", "log_stream={hostname}", "auto_create=1",
                                "hostname=hh", "broker_id=3"], path, env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 12)
        self.assertEqual(st["dead_lettered"], 1)
        # binary: the framework copies the event's bytes as they are into its dead-letter line
        with open(os.path.join(spool, "deadletter", "cloudwatch_logs.ndjson"), "rb") as f:
            self.assertIn(b"not valid UTF-8", f.read())
        with open(self.log) as f:
            order = [r["target"].split(".")[1] for r in map(json.loads, f)]
        # not found -> group, stream, then the same events again
        self.assertEqual(order[:4], ["PutLogEvents", "CreateLogGroup", "CreateLogStream",
                                     "PutLogEvents"])
        created = self.requests("Logs_20140328.CreateLogStream")[0]
        self.assertEqual(created, {"logGroupName": "/g/3", "logStreamName": "hh"})
        reqs = self.requests("Logs_20140328.PutLogEvents", whole=True)
        for r in reqs:
            self.assertEqual(r["content_type"], "application/x-amz-json-1.1")
            self.assertIn("/logs/aws4_request", r["authorization"])
            size = sum(len(e["message"].encode()) + 26 for e in r["body"]["logEvents"])
            self.assertLessEqual(size, 1048576)
        sent = {json.loads(e["message"])["n"] for r in reqs[1:] for e in r["body"]["logEvents"]}
        self.assertEqual(sent, set(range(12)))
        self.assertGreaterEqual(len(reqs), 4)  # 12 x 200 KiB need three calls after the first

    def test_metrics_request_shape_and_limits(self):
        self.start({})
        t = (int(time.time()) - 60) * 1000
        dims31 = ["d%d" % i for i in range(31)]
        ev_hist = {"_aws": {"Timestamp": t, "CloudWatchMetrics": [{
            "Namespace": "N1", "Dimensions": [["B"], dims31],
            "Metrics": [{"Name": "H", "Unit": "Milliseconds"}]}]},
            "B": "b", "H": [float(i % 400) for i in range(1000)]}
        for d in dims31:
            ev_hist[d] = "v"
        ev_many = {"_aws": {"Timestamp": t, "CloudWatchMetrics": [{
            "Namespace": "N2", "Dimensions": [],
            "Metrics": [{"Name": "m%d" % i} for i in range(1500)]}]}}
        for i in range(1500):
            ev_many["m%d" % i] = i
        path = self.write([ev_hist, ev_many])
        rc, st, err = run_sink("cloudwatch_metrics", os.path.join(self.tmp, "spool"),
                               self.endpoint, [], path, stream="metrics", env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 2)
        self.assertEqual(metric(st, 'brokerside_sink_skipped_values_total{sink="cloudwatch_metrics",'
                                    'reason="too_many_dimensions"'), 1)
        reqs = self.requests("GraniteServiceVersion20100801.PutMetricData", whole=True)
        for r in reqs:
            self.assertEqual(r["content_type"], "application/x-amz-json-1.0")
            self.assertEqual(r["query_mode"], "true")
            self.assertIn("/monitoring/aws4_request", r["authorization"])
            self.assertLessEqual(len(r["body"]["MetricData"]), 1000)
        n1 = [d for r in reqs if r["body"]["Namespace"] == "N1" for d in r["body"]["MetricData"]]
        # 400 distinct values: 150 + 150 + 100 per datum, counts add up to the 1000 samples
        self.assertEqual([len(d["Values"]) for d in n1], [150, 150, 100])
        self.assertEqual(sum(sum(d["Counts"]) for d in n1), 1000)
        self.assertEqual(n1[0]["Dimensions"], [{"Name": "B", "Value": "b"}])
        self.assertEqual(n1[0]["Timestamp"], t // 1000)
        self.assertEqual(n1[0]["Unit"], "Milliseconds")
        n2 = [r for r in reqs if r["body"]["Namespace"] == "N2"]
        self.assertEqual([len(r["body"]["MetricData"]) for r in n2], [1000, 500])
        self.assertEqual(sorted(d["Value"] for r in n2 for d in r["body"]["MetricData"]),
                         list(range(1500)))

    def test_firehose_oversized_record_dead_lettered(self):
        self.start({})
        path = self.write([{"n": 0}, {"n": 1, "pad": "y" * (1000 * 1024)}, {"n": 2}])
        spool = os.path.join(self.tmp, "spool")
        rc, st, err = run_sink("firehose", spool, self.endpoint, ["delivery_stream=fh-{stream}"],
                               path, stream="audit", env=self.env)
        self.assertEqual(rc, 0, err[-3000:])
        self.assertEqual(st["delivered"], 2)
        self.assertEqual(st["dead_lettered"], 1)
        reqs = self.requests("Firehose_20150804.PutRecordBatch")
        self.assertEqual({q["DeliveryStreamName"] for q in reqs}, {"fh-audit"})
        sent = [json.loads(base64.b64decode(r["Data"]))["n"] for q in reqs for r in q["Records"]]
        self.assertEqual(sorted(sent), [0, 2])

    def test_outage_longer_than_retry_window_loses_nothing(self):
        self.start({})
        port = self.port
        n = 3000
        path = self.write([{"n": i} for i in range(n)])
        p = subprocess.Popen([RUN, "--sink", "firehose", "--spool", os.path.join(self.tmp, "spool"),
                              "--region", REGION, "--endpoint", self.endpoint, "--input", path,
                              "--per-tick", "20", "--http-attempts", "2", "--backoff-max-ms", "500",
                              "--timeout-s", "120", "--opt", "delivery_stream=x"],
                             env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 60
            while not self.requests("Firehose_20150804.PutRecordBatch") and time.time() < deadline:
                time.sleep(0.05)
            self.stop()  # the endpoint is gone (connection refused) while appending goes on
            time.sleep(5)  # longer than the HTTP client's retry window (2 attempts, <= 0.5 s)
            self.start({}, port=port)
            out, err = p.communicate(timeout=150)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err[-3000:])
        st = json.loads(out.splitlines()[-1])
        self.assertGreater(st["retried"], 0)
        self.assertEqual(st["delivered"], n)
        got = [json.loads(base64.b64decode(r["Data"]))["n"]
               for q in self.requests("Firehose_20150804.PutRecordBatch") for r in q["Records"]]
        self.assertEqual(set(got), set(range(n)))
        self.assertGreaterEqual(metric(st, 'brokerside_sink_api_errors_total{sink="firehose",'
                                           'api="PutRecordBatch",code="transport"'), 1)


if __name__ == "__main__":
    unittest.main()
