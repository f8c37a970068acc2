"""The ready-made operations in ops/ (docs/operations.md, "Dashboards, alerts and alarms") only
use metrics the sidecar really exports.

One sidecar runs in front of the real Apache Kafka broker (harness.KafkaCluster) with a kafka
listener, encryption (local keyring), audit and EMF metric snapshots to a file sink, and the
consumer-lag monitor when this build has one (src/lag). Clients produce and consume through it
(a consumer group commits part of what was produced), a plaintext HTTP request hits its TLS
port, it reloads once. Then:

* the exported set is what its /metrics shows, plus the names registered in the source
  (string literals "brokerside_..." under src/: series that appear only on an event, such as
  brokerside_kafka_unmapped_node_total); histogram names count with their _bucket, _sum and
  _count suffixes only, and `up` is Prometheus's own. Every metric a Grafana panel or an alert
  rule uses must be in it;
* every dashboard query parses (promtool, Grafana variables substituted) and the dashboard has
  a data source variable and the panels operators look for;
* the CloudWatch alarms template references only namespaces, metric names and dimension sets
  that the sidecar's real EMF snapshot has, and every alarm is created in moto_server (SigV4
  checked) with PutMetricAlarm (moto's CloudFormation has no AWS::CloudWatch::Alarm: the test
  resolves the template's parameters and intrinsic functions itself).
"""

import copy
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.request
import uuid

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = harness.SOURCE_DIR
OPS = os.path.join(SOURCE, "ops")
DASHBOARD = os.path.join(OPS, "grafana", "brokerside-dashboard.json")
RULES = os.path.join(OPS, "prometheus", "brokerside-alerts.yml")
ALARMS = os.path.join(OPS, "cloudwatch", "brokerside-alarms.json")
KEYGEN = os.path.join(harness.BUILD_DIR, "bs_keygen")
REGION = "us-east-1"

# Names Prometheus itself adds to every scrape (not the sidecar's to export).
PROMETHEUS_OWN = {"up"}
HIST_SUFFIXES = ("_bucket", "_sum", "_count")
PROMQL_WORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
                "group_right", "offset", "bool", "inf", "nan", "atan2"}

# ------------------------------------------------------------------ PromQL and the files


def promql_metric_names(expr):
    """The metric names a PromQL expression selects: label matchers, ranges, grouping clauses,
    strings, Grafana variables and function/aggregation names removed."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", " ", e)
    e = re.sub(r"\[[^\]]*\]", " ", e)
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\{?\w+\}?", " ", e)
    names = set()
    for m in re.finditer(r"(?<![\w.:])([A-Za-z_:][\w:]*)(\s*\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def dashboard_exprs(dash):
    """(panel title, expr) of every target of every panel, rows' nested panels included."""
    out = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                out.append((p.get("title", "?"), t["expr"]))
            walk(p.get("panels", []))
    walk(dash["panels"])
    return out


def rule_exprs(rules):
    return [(r.get("alert") or r.get("record"), r["expr"]) for g in rules["groups"]
            for r in g["rules"]]


def grafana_to_promql(expr):
    """A dashboard query with its Grafana variables replaced by what Grafana would put there."""
    return (expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            .replace("${datasource}", "").replace("$job", ".*").replace("$instance", ".*")
            .replace("$listener", ".*"))


def source_metric_names():
    """(every "brokerside_..." string literal under src/, the histogram families among them)."""
    names, hists = set(), set()
    lit = re.compile(r'"(brokerside_[a-z0-9_]+)"')
    hist = re.compile(r'bs_metrics_histogram(?:_kv)?\(\s*"(brokerside_[a-z0-9_]+)"')
    for path in glob.glob(os.path.join(SOURCE, "src", "**", "*.c"), recursive=True):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        names.update(lit.findall(text))
        hists.update(hist.findall(text))
    return names, hists


def exported_by(name, live, src_names, src_hists):
    """Where `name` is known to be exported ("live", "source", "prometheus"), or None."""
    if name in live:
        return "live"
    if name in PROMETHEUS_OWN:
        return "prometheus"
    for suf in HIST_SUFFIXES:
        if name.endswith(suf) and name[:-len(suf)] in src_hists:
            return "source"
    if name in src_names and name not in src_hists:
        return "source"
    return None


# ------------------------------------------------------------------ CloudFormation


class NoValue:
    pass


def cfn_resolve(node, params, conditions):
    """Resolve Ref, Fn::Sub, Fn::If, Fn::Equals, Fn::Not against `params` (AWS::NoValue is
    dropped from its container). Raises KeyError on an unknown reference."""
    if isinstance(node, list):
        out = [cfn_resolve(x, params, conditions) for x in node]
        return [x for x in out if not isinstance(x, NoValue)]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (k, v), = node.items()
        if k == "Ref":
            if v == "AWS::NoValue":
                return NoValue()
            return params[v]
        if k == "Fn::Sub":
            def sub(m):
                return str(params[m.group(1)])
            return re.sub(r"\$\{([\w:]+)\}", sub, v)
        if k == "Fn::If":
            cond, a, b = v
            return cfn_resolve(a if conditions[cond] else b, params, conditions)
        if k == "Fn::Equals":
            x, y = (cfn_resolve(i, params, conditions) for i in v)
            return x == y
        if k == "Fn::Not":
            return not cfn_resolve(v[0], params, conditions)
        if k.startswith("Fn::"):
            raise KeyError("intrinsic %s not supported by this check" % k)
    out = {}
    for k, v in node.items():
        r = cfn_resolve(v, params, conditions)
        if not isinstance(r, NoValue):
            out[k] = r
    return out


def cfn_alarms(template, overrides=None):
    """{logical id: resolved alarm properties} with the parameters' defaults (+ overrides)."""
    params = {k: v.get("Default") for k, v in template["Parameters"].items()}
    params.update(overrides or {})
    missing = [k for k, v in params.items() if v is None]
    if missing:
        raise KeyError("parameters without a value: %s" % missing)
    conditions = {}
    for k, v in template.get("Conditions", {}).items():
        conditions[k] = cfn_resolve(v, params, conditions)
    for k, r in template["Resources"].items():
        if "Condition" in r and r["Condition"] not in conditions:
            raise KeyError("%s: unknown condition %s" % (k, r["Condition"]))
    return {k: cfn_resolve(r["Properties"], params, conditions)
            for k, r in template["Resources"].items()
            if conditions.get(r.get("Condition"), True)}


INSIGHTS = re.compile(r'^SELECT\s+(AVG|MIN|MAX|SUM|COUNT)\((\w+)\)\s+FROM\s+SCHEMA\(\s*"([^"]+)"\s*,'
                      r'\s*([^)]*)\)(?:\s+WHERE\s+(.*))?$')


def insights_reference(query):
    """(namespace, metric, dimension names, dimensions used in WHERE) of a Metrics Insights
    query; ValueError if it is not the SELECT F(metric) FROM SCHEMA(...) [WHERE ...] form."""
    m = INSIGHTS.match(query.strip())
    if not m:
        raise ValueError("not a Metrics Insights SCHEMA query: %r" % query)
    dims = [d.strip().strip('"') for d in m.group(4).split(",")]
    used = set()
    for cond in re.split(r"\s+AND\s+", m.group(5) or ""):
        if cond:
            used.add(re.match(r'\s*("[^"]+"|\w+)', cond).group(1).strip('"'))
    return m.group(3), m.group(2), frozenset(dims), used


def alarm_references(props):
    """Every (namespace, metric name, frozenset of dimension names) an alarm reads."""
    refs = []
    if "MetricName" in props:
        refs.append((props["Namespace"], props["MetricName"],
                     frozenset(d["Name"] for d in props.get("Dimensions", []))))
    for q in props.get("Metrics", []):
        if "MetricStat" in q:
            m = q["MetricStat"]["Metric"]
            refs.append((m["Namespace"], m["MetricName"],
                         frozenset(d["Name"] for d in m.get("Dimensions", []))))
        elif q.get("Expression", "").lstrip().upper().startswith("SELECT"):
            ns, name, dims, used = insights_reference(q["Expression"])
            if not used <= dims:
                raise ValueError("WHERE uses dimensions outside SCHEMA: %r" % q["Expression"])
            refs.append((ns, name, dims))
    return refs


def emf_emitted(docs):
    """(namespace, metric, frozenset(dimension names)) of every metric of EMF documents."""
    out = set()
    for doc in docs:
        for d in doc["_aws"]["CloudWatchMetrics"]:
            for dims in d["Dimensions"]:
                for m in d["Metrics"]:
                    out.add((d["Namespace"], m["Name"], frozenset(dims)))
    return out


# ------------------------------------------------------------------ the live sidecar


class OpsMetricsTest(harness.IntegrationTest):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(DASHBOARD) as f:
            cls.dashboard = json.load(f)
        with open(RULES) as f:
            cls.rules = yaml.safe_load(f)
        with open(ALARMS) as f:
            cls.alarms = json.load(f)
        cls.src_names, cls.src_hists = source_metric_names()
        cls.has_lag = os.path.isdir(os.path.join(SOURCE, "src", "lag"))
        cls.live, cls.emf = cls.run_sidecar()

    @classmethod
    def run_sidecar(cls):
        """Run the sidecars with traffic; returns (names on their /metrics, EMF documents)."""
        kc = harness.module_kafka(nodes=1)
        kc.reset_topics(["enc-ops", "ops-plain"])
        names, docs = cls.one_sidecar(kc, "main", cls.main_traffic, cls.main_ready)
        # A second one whose kafka.advertise does not cover the broker's node (1): the
        # Metadata answer names an unmapped node (brokerside_kafka_unmapped_node_total).
        n2, d2 = cls.one_sidecar(kc, "unmapped", cls.unmapped_traffic, cls.unmapped_ready,
                                 node=7)
        return names | n2, docs + d2

    @classmethod
    def one_sidecar(cls, kc, tag, traffic, ready, node=1):
        tmp = tempfile.mkdtemp(prefix="ops-%s-" % tag, dir=cls.class_tmp)
        key_file = os.path.join(tmp, "master.key")
        subprocess.run([KEYGEN, key_file], check=True, capture_output=True, timeout=30)
        port = harness.free_port()
        lst = harness.tls_listener(cls.certs, "127.0.0.1:%d" % port, kc.node(1).client,
                                   protocol="kafka", name="clients")
        lst["broker_id"] = node
        events = os.path.join(tmp, "events")
        cfg = harness.base_config(
            harness.free_port(), [lst],
            kafka={"advertise": {str(node): "127.0.0.1:%d" % port}},
            encryption={"kms": {"type": "local", "key_file": key_file},
                        "topics": [{"match": "enc-*", "key": "ops-key"}],
                        "unmatched_topics": "plaintext"},
            sinks={"f": {"type": "file", "dir": events}},
            spool={"dir": os.path.join(tmp, "spool")},
            metrics={"interval_s": 1, "sinks": ["f"]},
            audit={"sinks": ["f"]})
        if cls.has_lag and node == 1:
            cfg["lag"] = {"interval_s": 1}
        bs = harness.Brokerside(tmp, cfg, name="brokerside-ops-" + tag)
        try:
            traffic(bs, "127.0.0.1:%d" % port, port)
            path = os.path.join(events, "metrics.ndjson")

            def both():
                names = harness.metric_names(bs.metrics())
                docs = harness.read_ndjson(path)
                return (names, docs) if ready(names, {m for (_, m, _) in emf_emitted(docs)}) \
                    else None
            names, docs = harness.wait_for(both, "the %s sidecar's metrics in /metrics and the "
                                                 "EMF snapshots" % tag, timeout=90)
            return set(names), docs
        except BaseException:
            sys.stderr.write(harness.tail(bs.log_path))
            raise
        finally:
            bs.stop()

    @classmethod
    def main_traffic(cls, bs, bootstrap, port):
        for topic in ("enc-ops", "ops-plain"):
            harness.kcat_produce(bootstrap, topic, ["ops-%d" % i for i in range(20)], cls.certs)
            harness.kcat_consume(bootstrap, topic, 20, cls.certs)
        cls.commit_half(bootstrap)
        # a plaintext HTTP request on the TLS port: a handshake failure (http_request)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            s.settimeout(10)
            try:
                s.recv(100)
            except OSError:
                pass
        mark = bs.log_mark()
        bs.signal(signal.SIGHUP)
        bs.wait_log("reload", since=mark)

    @classmethod
    def main_ready(cls, names, emitted):
        want = ["brokerside_tls_handshake_failures_total"]
        emf_want = ["brokerside_kafka_broker_duration_seconds",
                    "brokerside_kafka_sidecar_duration_seconds"]
        if cls.has_lag:
            want.append("brokerside_consumer_lag_sum_offsets")
            emf_want.append("SumOffsetLag")
        return all(n in names for n in want) and all(n in emitted for n in emf_want)

    @classmethod
    def unmapped_traffic(cls, bs, bootstrap, port):
        harness.kcat(bootstrap, ["-L", "-m", "5"], cls.certs, timeout=30)

    @classmethod
    def unmapped_ready(cls, names, emitted):
        return ("brokerside_kafka_unmapped_node_total" in names
                and "brokerside_kafka_unmapped_node_total" in emitted)

    @classmethod
    def commit_half(cls, bootstrap):
        """A consumer group reads and commits 10 of the 20 records of ops-plain: lag 10."""
        from confluent_kafka import Consumer, TopicPartition
        c = Consumer({"bootstrap.servers": bootstrap, "security.protocol": "SSL",
                      "ssl.ca.location": cls.certs["ca_crt"], "group.id": "ops-check",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        try:
            c.assign([TopicPartition("ops-plain", 0, 0)])
            got = 0
            deadline = time.monotonic() + 60
            while got < 10 and time.monotonic() < deadline:
                m = c.poll(1.0)
                if m is not None and not m.error():
                    got += 1
            if got < 10:
                raise AssertionError("consumed %d of 10 records for the lag group" % got)
            c.commit(offsets=[TopicPartition("ops-plain", 0, 10)], asynchronous=False)
        finally:
            c.close()

    # -------------------------------------------------------------- metric names

    def unknown_names(self, exprs, what):
        bad, from_source = {}, set()
        for title, expr in exprs:
            for n in sorted(promql_metric_names(expr)):
                how = exported_by(n, self.live, self.src_names, self.src_hists)
                if how is None:
                    bad.setdefault(n, []).append("%s %r" % (what, title))
                elif how == "source":
                    from_source.add(n)
        if from_source:
            sys.stderr.write("%s: registered in the source, not on this run's /metrics: %s\n"
                             % (what, ", ".join(sorted(from_source))))
        return bad

    def test_promql_name_extraction(self):
        """The extraction itself: functions, labels, ranges, grouping and variables are not
        metric names; every selected series is."""
        self.assertEqual(promql_metric_names(
            'histogram_quantile(0.99, sum by (api, le) (rate(a_bucket{x=~"$v",job="up"}'
            '[$__rate_interval]))) / on (api) group_left (b) c_total offset 5m > bool 1'),
            {"a_bucket", "c_total"})
        self.assertEqual(promql_metric_names("time() - last_ts{a=\"b\"} and ignoring (r) "
                                             "increase(x_total[10m]) == 0"), {"last_ts", "x_total"})
        self.assertIsNone(exported_by("brokerside_kafka_broker_duration_seconds", set(),
                                      self.src_names, self.src_hists),
                          "a bare histogram name is not a series")
        self.assertEqual(exported_by("brokerside_kafka_broker_duration_seconds_bucket", set(),
                                     self.src_names, self.src_hists), "source")
        self.assertIsNone(exported_by("brokerside_no_such_metric_total", self.live,
                                      self.src_names, self.src_hists))

    def test_live_sidecar_exports_the_split_and_the_new_gauges(self):
        for n in ("brokerside_kafka_broker_duration_seconds_bucket",
                  "brokerside_kafka_sidecar_duration_seconds_count",
                  "brokerside_spool_max_bytes", "brokerside_upstream_up",
                  "brokerside_kms_calls_total"):
            self.assertIn(n, self.live)

    def test_dashboard_metrics_are_exported(self):
        bad = self.unknown_names(dashboard_exprs(self.dashboard), "panel")
        self.assertEqual(bad, {}, "dashboard metrics the sidecar does not export%s" %
                         ("" if self.has_lag else " (no src/lag in this tree: the consumer-lag "
                          "monitor is not merged yet)"))

    def test_alert_rule_metrics_are_exported(self):
        bad = self.unknown_names(rule_exprs(self.rules), "alert")
        self.assertEqual(bad, {}, "alert rule metrics the sidecar does not export%s" %
                         ("" if self.has_lag else " (no src/lag in this tree: the consumer-lag "
                          "monitor is not merged yet)"))

    # -------------------------------------------------------------- the dashboard

    def test_dashboard_structure(self):
        d = self.dashboard
        ds = [v for v in d["templating"]["list"] if v["type"] == "datasource"]
        self.assertEqual(len(ds), 1, "one data source variable")
        self.assertEqual(ds[0]["query"], "prometheus")
        var = "${%s}" % ds[0]["name"]
        ids, covered = set(), set()
        for p in d["panels"]:
            self.assertNotIn(p["id"], ids, "panel ids are unique")
            ids.add(p["id"])
            g = p["gridPos"]
            self.assertLessEqual(g["x"] + g["w"], 24, p["title"])
            if p["type"] == "row":
                continue
            self.assertEqual(p["datasource"], {"type": "prometheus", "uid": var}, p["title"])
            self.assertTrue(p["targets"], p["title"])
            for t in p["targets"]:
                self.assertEqual(t["datasource"]["uid"], var, p["title"])
                covered |= promql_metric_names(t["expr"])
        for v in d["templating"]["list"]:
            if v["type"] == "query":
                self.assertEqual(v["datasource"]["uid"], var, v["name"])
        wanted = ["brokerside_upstream_up", "brokerside_connections_open",
                  "brokerside_kafka_requests_total", "brokerside_kafka_errors_total",
                  "brokerside_kafka_broker_duration_seconds_bucket",
                  "brokerside_kafka_sidecar_duration_seconds_bucket",
                  "brokerside_tls_handshake_failures_total",
                  "brokerside_consumer_lag_sum_offsets",
                  "brokerside_consumer_lag_estimated_max_time_seconds",
                  "brokerside_spool_bytes", "brokerside_spool_max_bytes",
                  "brokerside_sink_events_delivered_total", "brokerside_sink_events_retried_total",
                  "brokerside_sink_events_dead_lettered_total", "brokerside_kms_calls_total",
                  "brokerside_kafka_unmapped_node_total", "brokerside_audit_blocked",
                  "brokerside_authz_denied_total"]
        self.assertEqual([w for w in wanted if w not in covered], [], "panels missing")

    def test_dashboard_queries_parse(self):
        """promtool checks every query (as a recording rule, variables substituted)."""
        exprs = dashboard_exprs(self.dashboard)
        doc = {"groups": [{"name": "dashboard", "rules": [
            {"record": "dashboard:panel_%d" % i, "expr": grafana_to_promql(e)}
            for i, (_, e) in enumerate(exprs)]}]}
        with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
            yaml.safe_dump(doc, f)
        self.addCleanup(os.unlink, f.name)
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # and the check can fail
        doc["groups"][0]["rules"][0]["expr"] = "sum by (api (rate(x[5m]))"
        with open(f.name, "w") as g:
            yaml.safe_dump(doc, g)
        r = subprocess.run(["promtool", "check", "rules", f.name], capture_output=True,
                           text=True, timeout=120)
        self.assertNotEqual(r.returncode, 0)

    # -------------------------------------------------------------- CloudWatch

    def test_cloudwatch_template_references_emitted_metrics(self):
        t = self.alarms
        self.assertEqual(t["AWSTemplateFormatVersion"], "2010-09-09")
        self.assertTrue(t["Resources"])
        for k, r in t["Resources"].items():
            self.assertEqual(r["Type"], "AWS::CloudWatch::Alarm", k)
        emitted = emf_emitted(self.emf)
        namespaces = {ns for (ns, _, _) in emitted}
        self.assertEqual(namespaces, {t["Parameters"]["Namespace"]["Default"]},
                         "the template's default namespace is the sidecar's default")
        # BrokerId dimension: the snapshots' broker_id
        self.assertEqual({d.get("BrokerId") for d in self.emf}, {"1", "7"})
        bad = []
        for k, props in cfn_alarms(t).items():
            for p in ("AlarmName", "EvaluationPeriods", "Threshold", "ComparisonOperator"):
                self.assertIn(p, props, k)
            self.assertTrue(("MetricName" in props) != ("Metrics" in props), k)
            if "Metrics" in props:
                self.assertEqual(sum(1 for q in props["Metrics"] if q.get("ReturnData")), 1, k)
            for ref in alarm_references(props):
                if ref not in emitted:
                    bad.append("%s: %s %s %s" % (k, ref[0], ref[1], sorted(ref[2])))
        # the split histograms are in the snapshot with listener and api
        self.assertIn(("Kafka/Brokerside", "brokerside_kafka_sidecar_duration_seconds",
                       frozenset({"BrokerId", "listener", "api"})), emitted)
        self.maxDiff = None
        self.assertEqual(bad, [], "alarms on metrics the EMF snapshot does not have%s" %
                         ("" if self.has_lag else " (no src/lag in this tree: the MSK lag "
                          "metrics come with the consumer-lag monitor, not merged yet)"))

    def test_cloudwatch_reference_check_can_fail(self):
        t = copy.deepcopy(self.alarms)
        props = next(r["Properties"] for r in t["Resources"].values() if "MetricName" in r["Properties"])
        props["MetricName"] = "brokerside_not_a_metric"
        refs = [ref for p in cfn_alarms(t).values() for ref in alarm_references(p)]
        self.assertTrue([r for r in refs if r not in emf_emitted(self.emf)])
        with self.assertRaises(ValueError):
            insights_reference("SELECT SUM(x) FROM \"ns\"")

    def test_cloudwatch_alarms_create_in_moto(self):
        py = python_with_boto3()
        moto = moto_server_path()
        if not py or not moto:
            raise RuntimeError("moto_server and a python3 with boto3 are required (make deps)")
        port = harness.free_port()
        endpoint = "http://127.0.0.1:%d" % port
        log = open(os.path.join(self.tmp, "moto.log"), "w")
        self.addCleanup(log.close)
        proc = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)],
                                env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3"),
                                stdout=log, stderr=subprocess.STDOUT)

        def stop():
            proc.kill()
            proc.wait()
        self.addCleanup(stop)

        def up():
            try:
                urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
                return True
            except OSError:
                return False
        harness.wait_for(up, "moto_server up", timeout=60)
        out = subprocess.run([py, os.path.join(HERE, "aws_moto_setup.py"), endpoint + "/",
                              REGION], capture_output=True, text=True, timeout=120)
        self.assertEqual(out.returncode, 0, out.stderr[-2000:])
        creds = json.loads(out.stdout.strip().splitlines()[-1])
        env = dict(os.environ, AWS_ACCESS_KEY_ID=creds["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=creds["secret_access_key"])
        env.pop("AWS_SESSION_TOKEN", None)
        env.pop("AWS_PROFILE", None)
        script = r'''
import json, sys, boto3, botocore
endpoint, region = sys.argv[1], sys.argv[2]
req = json.load(sys.stdin)
sns = boto3.client("sns", endpoint_url=endpoint, region_name=region)
topic = sns.create_topic(Name="brokerside-alarms")["TopicArn"]
cw = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region)
for a in req:
    a = json.loads(json.dumps(a).replace("@TOPIC@", topic))
    cw.put_metric_alarm(**a)
got = cw.describe_alarms(MaxRecords=100)["MetricAlarms"]
bad = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region,
                   aws_access_key_id="AKIDWRONG", aws_secret_access_key="wrong")
try:
    bad.describe_alarms()
    refused = False
except botocore.exceptions.ClientError:
    refused = True
print(json.dumps({"topic": topic, "refused_bad_key": refused,
                  "alarms": [{k: a.get(k) for k in ("AlarmName", "Namespace", "MetricName",
                              "Dimensions", "Metrics", "AlarmActions", "Threshold")}
                             for a in got]}, default=str))
'''
        alarms = cfn_alarms(self.alarms, {"AlarmTopicArn": "@TOPIC@"})
        reqs = []
        for props in alarms.values():
            a = dict(props)
            a["Threshold"] = float(a["Threshold"])
            reqs.append(a)
        r = subprocess.run([py, "-c", script, endpoint, REGION], input=json.dumps(reqs),
                           capture_output=True, text=True, env=env, timeout=180)
        self.assertEqual(r.returncode, 0, r.stderr[-3000:])
        res = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertTrue(res["refused_bad_key"], "moto checks SigV4: a wrong key is refused")
        got = {a["AlarmName"]: a for a in res["alarms"]}
        self.assertEqual(sorted(got), sorted(p["AlarmName"] for p in alarms.values()))
        for props in alarms.values():
            a = got[props["AlarmName"]]
            self.assertEqual(a["AlarmActions"], [res["topic"]], props["AlarmName"])
            self.assertEqual(float(a["Threshold"]), float(props["Threshold"]))
            if "MetricName" in props:
                self.assertEqual(a["MetricName"], props["MetricName"])
                self.assertEqual(a["Namespace"], props["Namespace"])
            else:
                self.assertEqual(len(a["Metrics"]), len(props["Metrics"]))
        # without a topic, Fn::If drops the actions
        self.assertNotIn("AlarmActions", next(iter(cfn_alarms(self.alarms).values())))
        # LagAlarms=false (every stack but one): no consumer-lag alarms
        names = {p["AlarmName"] for p in cfn_alarms(self.alarms, {"LagAlarms": "false"}).values()}
        lag = {p["AlarmName"] for p in alarms.values() if "consumer-" in p["AlarmName"]}
        self.assertEqual(len(lag), 3)
        self.assertEqual(names, set(got) - lag)


if __name__ == "__main__":
    harness.main()
