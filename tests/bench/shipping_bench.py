"""Cost of shipping events on proxy throughput (issue 6, goal: under 5%).

Three brokerside processes front the same dev broker with a TLS `kafka`
listener each:
  none  no audit/metrics/logs sections: nothing is recorded or shipped;
  file  audit `aggregate` + metrics every 1 s + one tailed log4j file (a
        thread appends to it during the whole run), all shipped to a `file`
        sink through the spool;
  aws   the same three streams shipped to moto_server (SigV4 verification
        on): audit and logs to CloudWatch Logs, metrics to CloudWatch metrics.
kcat produces and consumes N messages of 1 KiB through each, order rotated
per round, for R rounds. Reports the best throughput per path, the ratios
file/none and aws/none, and the sidecar's CPU time per MB (the steadier
figure on a shared machine). Exits non-zero, printing no numbers, if a
setup fails or a sink did not receive events (file sink files non-empty;
CloudWatch read back with boto3).

usage: /usr/bin/python3 shipping_bench.py [--messages N] [--rounds R]
(BS_BUILD_DIR selects the build, as for the integration tests)"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from kafka_bench import MSG, cpu_seconds, paired_ratio_lines, timed  # noqa: E402
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402

REGION = "eu-west-1"
NAMESPACE = "BrokersideShipBench"
PATHS = ("none", "file", "aws")


def start_moto(tmp):
    """moto_server on a free port with SigV4 checked after the three setup
    calls; returns (Proc, endpoint, creds, python with boto3)."""
    moto, py = moto_server_path(), python_with_boto3()
    if not moto or not py:
        raise SystemExit("shipping_bench: moto_server and a python3 with boto3 are required")
    port = harness.free_port()
    endpoint = "http://127.0.0.1:%d" % port
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = harness.Proc([moto, "-H", "127.0.0.1", "-p", str(port)],
                        log_path=os.path.join(tmp, "moto.log"), env=env)

    def up():
        if not proc.alive():
            raise SystemExit("shipping_bench: moto_server exited (see its log)")
        try:
            urllib.request.urlopen(endpoint + "/moto-api/", timeout=2).read()
            return True
        except OSError:
            return False
    harness.wait_until(up, what="moto_server")
    out = subprocess.run([py, os.path.join(HERE, "..", "integration", "aws_moto_setup.py"),
                          endpoint + "/", REGION], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise SystemExit("shipping_bench: moto setup failed:\n" + out.stderr[-2000:])
    return proc, endpoint, json.loads(out.stdout.strip().splitlines()[-1]), py


def boto(py, endpoint, creds, *args):
    """aws_sinks_boto.py's JSON answer, or None when the call failed."""
    out = subprocess.run([py, os.path.join(HERE, "..", "integration", "aws_sinks_boto.py"),
                          endpoint, REGION, creds["access_key_id"], creds["secret_access_key"]]
                         + list(args), capture_output=True, text=True, timeout=120)
    return json.loads(out.stdout) if out.returncode == 0 else None


class LogWriter(threading.Thread):
    """Appends log4j lines (and now and then a stack trace) to each path
    while the benchmark runs, as a busy broker's server.log would."""

    def __init__(self, paths):
        super().__init__(daemon=True)
        self.paths, self.stop_ev, self.lines = paths, threading.Event(), 0

    def run(self):
        fs = [open(p, "a") for p in self.paths]
        try:
            while not self.stop_ev.wait(0.01):
                ts = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
                text = "[%s,000] INFO [ReplicaManager broker=1] line %d appended\n" % (ts, self.lines)
                if self.lines % 50 == 0:
                    text += ("[%s,000] ERROR [Log partition=b-0] failure %d\n"
                             "java.io.IOException: bench\n\tat kafka.log.Log.append(Log.scala:1)\n"
                             % (ts, self.lines))
                for f in fs:
                    f.write(text)
                    f.flush()
                self.lines += 1
        finally:
            for f in fs:
                f.close()


def events_config(d, sink_names, metric_sinks, sinks):
    return {"audit": {"data_events": "aggregate", "sinks": sink_names},
            "metrics": {"interval_s": 1, "namespace": NAMESPACE, "sinks": metric_sinks},
            "logs": {"files": [{"path": os.path.join(d, "server.log"), "format": "log4j"}],
                     "sinks": sink_names},
            "sinks": sinks,
            "spool": {"dir": os.path.join(d, "spool")}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--partitions", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    n = args.messages
    tmp = tempfile.mkdtemp(prefix="bs-ship-bench-")
    procs = []
    writer = None
    try:
        certs = harness.make_certs(os.path.join(tmp, "certs"))
        moto, endpoint, creds, py = start_moto(tmp)
        procs.append(moto)
        # Inherited by the sidecars (harness.Brokerside passes no env): the
        # SigV4 credentials of the moto user, nothing from the real machine.
        os.environ["AWS_ACCESS_KEY_ID"] = creds["access_key_id"]
        os.environ["AWS_SECRET_ACCESS_KEY"] = creds["secret_access_key"]
        for k in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
            os.environ.pop(k, None)
        db = harness.DevBroker(tmp, brokers=1, topics=["b:1"])
        procs.append(db)
        paths = {}
        for name in PATHS:
            port = harness.free_port()
            d = os.path.join(tmp, name)
            os.mkdir(d)
            lst = harness.tls_listener(certs, "127.0.0.1:%d" % port, db.listen_addr(1),
                                       protocol="kafka", name=name)
            extra = {}
            if name == "file":
                extra = events_config(d, ["f"], ["f"],
                                      {"f": {"type": "file", "dir": os.path.join(d, "events")}})
            elif name == "aws":
                extra = events_config(d, ["cw"], ["cwm"], {
                    "cw": {"type": "cloudwatch_logs", "endpoint": endpoint,
                           "log_group": "/bench/{stream}", "log_stream": "{stream}",
                           "auto_create": True},
                    "cwm": {"type": "cloudwatch_metrics", "endpoint": endpoint}})
                extra["aws"] = {"region": REGION}
            if name != "none":
                open(os.path.join(d, "server.log"), "w").close()
            cfg = harness.base_config(harness.free_port(), [lst],
                                      kafka={"advertise": {"1": "127.0.0.1:%d" % port}}, **extra)
            cfg["log_level"] = "warn"
            bs = harness.Brokerside(d, cfg)
            procs.append(bs)
            paths[name] = ("127.0.0.1:%d" % port, bs, d)
        writer = LogWriter([os.path.join(paths[p][2], "server.log") for p in ("file", "aws")])
        writer.start()
        # Background cost of shipping: each sidecar's CPU per wall-clock second
        # with no Kafka traffic (metrics snapshots, log tailing, sinks' HTTP
        # and fsyncs run on time, not per byte proxied).
        idle_s = 5.0
        time.sleep(1.0)
        idle0 = {p: cpu_seconds(paths[p][1].proc.popen.pid) for p in PATHS}
        t0 = time.monotonic()
        time.sleep(idle_s)
        wall = time.monotonic() - t0
        idle_cpu = {p: (cpu_seconds(paths[p][1].proc.popen.pid) - idle0[p]) / wall for p in PATHS}
        payload = b"".join(b"%08d" % i + b"x" * (MSG - 9) + b"\n" for i in range(n))
        best = {p: {"produce": None, "consume": None} for p in PATHS}
        cpu = {p: {"produce": 0.0, "consume": 0.0} for p in PATHS}
        times = {p: {"produce": [], "consume": []} for p in PATHS}
        cpus = {p: {"produce": [], "consume": []} for p in PATHS}
        for rnd in range(args.rounds):
            names = list(PATHS)[rnd % 3:] + list(PATHS)[:rnd % 3]
            for name in names:
                broker, bs, _ = paths[name]
                if not bs.proc.alive():
                    raise SystemExit("shipping_bench: sidecar %s exited" % name)
                pid = bs.proc.popen.pid
                topic = "ship-%s-%d" % (name, rnd)
                db.command("topic %s %d 1" % (topic, args.partitions))
                base = ["kcat", "-b", broker] + harness.kcat_tls(certs, client_cert=False)
                c0 = cpu_seconds(pid)
                dt, _ = timed(base + ["-P", "-t", topic, "-X", "linger.ms=5",
                                      "-X", "batch.num.messages=10000",
                                      "-X", "sticky.partitioning.linger.ms=0"], data=payload)
                c1 = cpu_seconds(pid)
                ct, r = timed(base + ["-C", "-t", topic, "-o", "beginning", "-c", str(n), "-e", "-q"])
                c2 = cpu_seconds(pid)
                cpu[name]["produce"] += c1 - c0
                cpu[name]["consume"] += c2 - c1
                times[name]["produce"].append(dt)
                times[name]["consume"].append(ct)
                cpus[name]["produce"].append(c1 - c0)
                cpus[name]["consume"].append(c2 - c1)
                got = r.stdout.count(b"\n")
                if got != n:
                    raise SystemExit("shipping_bench: %s: consumed %d of %d" % (name, got, n))
                for k, v in (("produce", dt), ("consume", ct)):
                    if best[name][k] is None or v < best[name][k]:
                        best[name][k] = v
        time.sleep(2)  # at least one more metrics interval and log poll
        writer.stop_ev.set()
        writer.join()

        # Delivery checks before any number is printed.
        checks = []
        _, bs_file, d = paths["file"]
        bs_file.proc.send_signal(15)
        if bs_file.proc.wait(60) is None and bs_file.proc.alive():
            raise SystemExit("shipping_bench: the file sidecar did not stop")
        for stream in ("audit", "metrics", "logs"):
            p = os.path.join(d, "events", stream + ".ndjson")
            size = os.path.getsize(p) if os.path.exists(p) else 0
            if size == 0:
                raise SystemExit("shipping_bench: file sink wrote no %s events (%s)" % (stream, p))
            with open(p, encoding="utf-8") as f:
                checks.append("file %s=%d" % (stream, sum(1 for _ in f)))

        def cw_count(stream):
            evs = boto(py, endpoint, creds, "read-logs", "/bench/" + stream, stream)
            return len(evs) if evs else 0

        def metric_count():
            ms = boto(py, endpoint, creds, "read-metrics", NAMESPACE)
            return len(ms) if ms else 0
        try:
            harness.wait_until(lambda: cw_count("audit") > 0 and cw_count("logs") > 0
                               and metric_count() > 0, timeout=120,
                               what="audit, logs and metrics in moto")
        except Exception as e:  # noqa: BLE001 - any failure here means no delivery
            raise SystemExit("shipping_bench: AWS sinks did not deliver: %s" % e)
        checks += ["cloudwatch_logs audit=%d" % cw_count("audit"),
                   "cloudwatch_logs logs=%d" % cw_count("logs"),
                   "cloudwatch metric names=%d" % metric_count()]

        mb = n * MSG / 1e6
        total_mb = mb * args.rounds
        print("shipping_bench: %d messages x %d B, %d partitions, best of %d rounds (kcat, "
              "1 mock broker, TLS kafka listener; log writer appended %d lines per log file)"
              % (n, MSG, args.partitions, args.rounds, writer.lines))
        print("%-6s %12s %12s %16s %16s" % ("events", "produce MB/s", "consume MB/s",
                                            "produce CPU ms/MB", "consume CPU ms/MB"))
        for name in PATHS:
            print("%-6s %12.1f %12.1f %16.2f %16.2f" % (
                name, mb / best[name]["produce"], mb / best[name]["consume"],
                1000 * cpu[name]["produce"] / total_mb, 1000 * cpu[name]["consume"] / total_mb))
        for mode in ("file", "aws"):
            for k in ("produce", "consume"):
                print("%s/none %s throughput ratio: %.3f   sidecar CPU ratio: %.3f" % (
                    mode, k, best["none"][k] / best[mode][k],
                    cpu[mode][k] / cpu["none"][k] if cpu["none"][k] > 0 else float("nan")))
        for line in paired_ratio_lines(times, cpus, "none", ("file", "aws")):
            print(line)
        busy = {k: sum(cpus["none"][k]) / sum(times["none"][k]) for k in ("produce", "consume")}
        print("background CPU with no traffic (CPU s per s over %.0f s): %s" % (
            idle_s, ", ".join("%s %.4f" % (p, idle_cpu[p]) for p in PATHS)))
        for mode in ("file", "aws"):
            extra = idle_cpu[mode] - idle_cpu["none"]
            print("%s: shipping's background CPU is %.1f%% of what the `none` sidecar uses while "
                  "producing (%.3f CPU s per s; consuming: %.3f, bound by the mock broker)" % (
                      mode, 100 * extra / busy["produce"], busy["produce"], busy["consume"]))
        print("check: events delivered: " + ", ".join(checks))
    finally:
        if writer is not None:
            writer.stop_ev.set()
        for p in reversed(procs):
            p.stop() if hasattr(p, "stop") else p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
