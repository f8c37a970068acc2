"""brokerside beside a real Apache Kafka broker, against Kroxylicious (issue 10, part kafka-real).

The standard tools of the pinned Apache Kafka release, ProducerPerformance and
ConsumerPerformance (kafka-producer-perf-test / kafka-consumer-perf-test), move N records of
1 KiB through each path below, in interleaved rounds (the order rotates every round), against one
single-node KRaft cluster (harness.KafkaCluster):

  direct      plaintext straight to the broker (its INTERNAL listener; no proxy, no TLS)
  bs-tcp      brokerside `tcp` listener, TLS terminated, bytes passed through (the broker's
              CLIENT listener advertises this port, as an opaque proxy needs)
  bs-kafka    brokerside `kafka` listener, TLS (framing, rewriting, metrics)
  bs-enc      bs-kafka plus encryption of record values, local keyring
  bs-enc-kms  bs-kafka plus encryption, AWS KMS provider against moto_server (SigV4 checked)
  bs-audit    bs-kafka plus audit.data_events `each` (one chained event per request, file sink)
  kx-tls      Kroxylicious 0.12.0, TLS termination (no filter)
  kx-enc      Kroxylicious 0.12.0, TLS and its RecordEncryption filter, AWS KMS provider
              against the same moto_server
Every TLS path uses the same server certificate (dev CA, ECDSA P-256) and the clients pin TLS 1.3
with TLS_AES_128_GCM_SHA256, so no proxy negotiates anything cheaper. Each proxy is its own
process (brokerside with its defaults: one worker per core, readiness probe every 5 s;
Kroxylicious with its defaults and -Xmx1g).

Per path and round: a fresh topic of P partitions, ProducerPerformance (--throughput -1, the
producer's defaults) then ConsumerPerformance reading the same N records. Recorded: the tools'
own MB/s (2^20 bytes, as they print it; the consumer's fetch MB/s, without the group join), the
producer's p99 latency, and the proxy's CPU time (utime + stime of the whole process from
/proc/PID/stat, all threads, GC and JIT included) over each tool run, divided by the 10^6-byte
MB moved. Before the rounds every path gets one untimed warm-up run (JIT of the JVMs).

Checks, so a broken path fails the run instead of reporting numbers: the producer sent N records,
the consumer read N records of exactly N KiB of values (an encrypting path that did not decrypt
would return larger values); in the first round, the broker's own segment files of each path's
topic hold the plaintext (runs of the tool's A-Z payload) exactly when the path does not
encrypt.

Ratios are the median over rounds of per-round paired ratios (both paths of a pair ran in the
same round under about the same load): throughput mode/base, p99 mode/base, CPU per MB
mode/base. Goals (issue 10): bs-kafka/bs-tcp throughput >= 0.95; encrypted produce >= 0.85 and
decrypting consume >= 0.80 of bs-kafka; brokerside >= Kroxylicious throughput in each mode and
<= 1/5 of its CPU per MB.

usage: /usr/bin/python3 kafka_real_bench.py [--records N] [--rounds R] [--partitions P]
           [--warmup-records W] [--modes a,b,...] [--short]
--short: 2000 records, 1 round, no warm-up (the ctest check of this script; no verdicts).
BS_BUILD_DIR selects the brokerside build, as for the integration tests. The Kroxylicious
modes need tests/bench/kroxylicious/fetch.sh (run by `make bench`; Maven); without it they are
reported as not measured, with the reason."""

import argparse
import functools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from kafka_bench import MSG, median  # noqa: E402
from test_aws_kms import moto_server_path, python_with_boto3  # noqa: E402

REGION = "eu-west-1"
KX_FETCH = os.path.join(HERE, "kroxylicious", "fetch.sh")
KX_ALIAS = "KEK_brokerside_bench"
MODES = ("direct", "bs-tcp", "bs-kafka", "bs-enc", "bs-enc-kms", "bs-audit", "kx-tls", "kx-enc")
ENCRYPTING = ("bs-enc", "bs-enc-kms", "kx-enc")
# JVM of the perf tools and of Kroxylicious: full JIT (the harness's one-shot tool flags stop at
# C1), a heap that never limits 1 KiB records.
TOOL_JVM = ["-Xms256m", "-Xmx512m", "-Djava.awt.headless=true"]
KX_JVM = ["-Xms256m", "-Xmx1g", "-Djava.awt.headless=true",
          "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn"]
TICK = os.sysconf("SC_CLK_TCK")
PLAIN_RUN = re.compile(rb"[A-Z]{64}")
PRODUCER_FINAL = re.compile(r"(\d+) records sent, [\d.]+ records/sec \(([\d.]+) MB/sec\), "
                            r"[\d.]+ ms avg latency, [\d.]+ ms max latency, \d+ ms 50th, "
                            r"\d+ ms 95th, (\d+) ms 99th")


class BenchError(Exception):
    """A path that did not work: the run stops with this message."""


def proc_cpu_seconds(pid):
    """utime + stime of process `pid` (every thread, live and exited) from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


@functools.lru_cache(maxsize=None)
def kafka_libs():
    """The pinned release's jar directory (harness.kafka_libs runs fetch.sh: once is enough)."""
    return harness.kafka_libs()


def tool(main_class, args, timeout, tmp):
    """Run a Java tool of the pinned Kafka release; its stdout (text), or BenchError. A
    registered harness.Proc, so an interrupted run (run.sh's TERM) stops it too."""
    out_path, err_path = os.path.join(tmp, "tool.out"), os.path.join(tmp, "tool.err")
    for path in (out_path, err_path):
        if os.path.exists(path):
            os.unlink(path)
    argv = (["java"] + TOOL_JVM + ["-Dlog4j2.configurationFile=" + harness.KAFKA_LOG4J_TOOLS,
                                   "-cp", os.path.join(kafka_libs(), "*"), main_class] + list(args))
    with open(out_path, "wb") as out_f:
        p = harness.Proc(argv, log_path=err_path, stdout=out_f)
        rc = p.wait(timeout)
        p.kill()
    with open(out_path, "rb") as f:
        out = f.read().decode(errors="replace")
    if rc != 0:
        with open(err_path, "rb") as f:
            err = f.read().decode(errors="replace")
        raise BenchError("%s %s:\n%s%s" % (main_class.rsplit(".", 1)[1],
                                           "timed out after %.0f s" % timeout if rc is None else "exited %d" % rc,
                                           out[-1500:], err[-1500:]))
    return out


def parse_producer(out, n):
    """(MB/s, p99 ms) from ProducerPerformance's final line; BenchError unless n were sent."""
    m = None
    for m in PRODUCER_FINAL.finditer(out):
        pass
    if not m:
        raise BenchError("ProducerPerformance printed no final summary:\n" + out[-1500:])
    if int(m.group(1)) != n:
        raise BenchError("ProducerPerformance sent %s of %d records" % (m.group(1), n))
    return float(m.group(2)), float(m.group(3))


def parse_consumer(out, n):
    """fetch MB/s from ConsumerPerformance's CSV line; BenchError unless it read n records whose
    values total exactly n KiB (what the producer wrote, i.e. decrypted where encrypted)."""
    lines = [ln for ln in out.splitlines() if ln.strip()]
    head = next((i for i, ln in enumerate(lines) if ln.startswith("start.time")), None)
    if head is None or head + 1 >= len(lines):
        raise BenchError("ConsumerPerformance printed no result:\n" + out[-1500:])
    row = dict(zip([c.strip() for c in lines[head].split(",")],
                   [c.strip() for c in lines[head + 1].split(",")]))
    try:
        got, mib, fetch_mbs = int(row["data.consumed.in.nMsg"]), float(row["data.consumed.in.MB"]), \
            float(row["fetch.MB.sec"])
    except (KeyError, ValueError):
        raise BenchError("ConsumerPerformance result unreadable: %r" % row)
    if got != n:
        raise BenchError("ConsumerPerformance read %d of %d records" % (got, n))
    if abs(mib - n * MSG / 1048576.0) > 0.0002:
        raise BenchError("ConsumerPerformance read %.4f MB of values, expected %.4f (values not "
                         "returned as produced)" % (mib, n * MSG / 1048576.0))
    return fetch_mbs


class Path:
    """One way from the tools to the broker: its bootstrap address, whether it is TLS, and the
    proxy process whose CPU is measured (None for direct)."""

    def __init__(self, name, bootstrap, tls, pid):
        self.name, self.bootstrap, self.tls, self.pid = name, bootstrap, tls, pid


def start_moto(tmp):
    """moto_server on a free port (SigV4 checked after the three IAM setup calls), with one
    symmetric key aliased KX_ALIAS; returns (endpoint, creds {access_key_id, secret_access_key,
    key_id})."""
    moto, py = moto_server_path(), python_with_boto3()
    if not moto or not py:
        raise BenchError("moto_server and a python3 with boto3 are required (make deps)")
    port = harness.free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3")
    proc = harness.Proc([moto, "-H", "127.0.0.1", "-p", str(port)],
                        log_path=os.path.join(tmp, "moto.log"), env=env)
    harness.wait_port("127.0.0.1", port, proc=proc)
    endpoint = "http://127.0.0.1:%d" % port
    out = subprocess.run([py, os.path.join(HERE, "..", "integration", "aws_moto_setup.py"),
                          endpoint + "/", REGION, KX_ALIAS], capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        raise BenchError("moto setup failed:\n" + out.stderr[-2000:])
    return proc, endpoint, json.loads(out.stdout.strip().splitlines()[-1])


def start_brokerside(tmp, certs, name, upstream, protocol="kafka", port=None, env=None, **extra):
    """A brokerside process with one TLS listener of `protocol` on `port` (default: a free one)
    in front of `upstream`, otherwise its defaults (one worker per core, readiness probe every
    5 s); `env` replaces the process environment (AWS credentials for the KMS mode). Returns
    (Brokerside, port)."""
    d = os.path.join(tmp, name)
    os.mkdir(d)
    port = port or harness.free_port()
    lst = harness.tls_listener(certs, "127.0.0.1:%d" % port, upstream, protocol=protocol, name=name)
    if protocol == "kafka":
        extra["kafka"] = {"advertise": {"1": "127.0.0.1:%d" % port}}
    cfg = harness.base_config(harness.free_port(), [lst], **extra)
    del cfg["workers"]  # the defaults, as deployed (the harness tunes both for tests)
    del cfg["admin"]["probe_interval_s"]
    cfg["log_level"] = "warn"
    saved = dict(os.environ)
    try:
        if env is not None:
            os.environ.clear()
            os.environ.update(env)
        bs = harness.Brokerside(d, cfg, name=name)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return bs, port


def kroxylicious_cache():
    """The Kroxylicious cache directory (fetch.sh: a no-op when current), or BenchError."""
    r = subprocess.run(["bash", KX_FETCH], capture_output=True, text=True, timeout=900)
    if r.returncode != 0:
        raise BenchError("Kroxylicious not available: " + r.stderr.strip()[-600:])
    return r.stdout.strip().splitlines()[-1]


def free_port_pair():
    """A loopback port p such that p and p + 1 are both free right now."""
    for _ in range(100):
        p = harness.free_port()
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", p + 1))
            return p
        except OSError:
            continue
    raise BenchError("no two consecutive free ports found")


def start_kroxylicious(tmp, cache, certs, name, upstream, filters=None):
    """Kroxylicious (KroxyliciousLauncher) with one virtual cluster in front of `upstream`: a
    TLS gateway, port identifies node (node 1, on the port after the bootstrap port). Returns
    (Proc, bootstrap port)."""
    boot = free_port_pair()
    vc = {"name": "bench",
          "targetCluster": {"bootstrapServers": upstream},
          "gateways": [{"name": "tls",
                        "portIdentifiesNode": {"bootstrapAddress": "127.0.0.1:%d" % boot,
                                               "nodeIdRanges": [{"name": "node", "start": 1, "end": 1}]},
                        "tls": {"key": {"privateKeyFile": certs["server_key"],
                                        "certificateFile": certs["server_crt"]}}}]}
    cfg = {"virtualClusters": [vc]}
    if filters:
        cfg["filterDefinitions"] = filters
        cfg["defaultFilters"] = [f["name"] for f in filters]
    path = os.path.join(tmp, name + ".yaml")
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)  # JSON is YAML
    log = os.path.join(tmp, name + ".log")
    proc = harness.Proc(["java"] + KX_JVM + ["-cp", os.path.join(cache, "libs", "*"),
                                             "brokerside.bench.KroxyliciousLauncher", path],
                        log_path=log)

    def started():
        if not proc.alive():
            raise BenchError("%s exited at start:\n%s" % (name, harness.tail(log)))
        with open(log, "rb") as f:
            return b"kroxylicious-launcher: started" in f.read()
    harness.wait_until(started, timeout=120, what=name + " start")
    for p in (boot, boot + 1):
        harness.wait_port("127.0.0.1", p, proc=proc)
    return proc, boot


def client_props(tmp, certs):
    """The perf tools' TLS client config: dev CA, TLS 1.3 with TLS_AES_128_GCM_SHA256 only."""
    path = os.path.join(tmp, "client-tls.properties")
    with open(path, "w") as f:
        f.write("security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location=%s\n"
                "ssl.enabled.protocols=TLSv1.3\nssl.protocol=TLSv1.3\n"
                "ssl.cipher.suites=TLS_AES_128_GCM_SHA256\n" % certs["ca_crt"])
    return path


def run_path(kc, path, topic, n, partitions, tls_props, timeout, tmp):
    """Produce then consume n records through `path` on a fresh topic. Returns a dict:
    produce_mbs, p99_ms, consume_mbs, produce_cpu, consume_cpu (proxy CPU seconds, None for
    direct)."""
    kc.reset_topics(["%s:%d" % (topic, partitions)])
    extra = ["--command-config", tls_props] if path.tls else []
    cpu = (lambda: proc_cpu_seconds(path.pid)) if path.pid else (lambda: 0.0)
    c0 = cpu()
    out = tool("org.apache.kafka.tools.ProducerPerformance",
               ["--bootstrap-server", path.bootstrap, "--topic", topic, "--num-records", str(n),
                "--record-size", str(MSG), "--throughput", "-1"] + extra, timeout, tmp)
    c1 = cpu()
    produce_mbs, p99 = parse_producer(out, n)
    out = tool("org.apache.kafka.tools.ConsumerPerformance",
               ["--bootstrap-server", path.bootstrap, "--topic", topic, "--num-records", str(n),
                "--timeout", "60000"] + extra, timeout, tmp)
    c2 = cpu()
    consume_mbs = parse_consumer(out, n)
    return {"produce_mbs": produce_mbs, "p99_ms": p99, "consume_mbs": consume_mbs,
            "produce_cpu": (c1 - c0) if path.pid else None,
            "consume_cpu": (c2 - c1) if path.pid else None}


def check_at_rest(kc, name, topic):
    """The broker's segment files of `topic` hold the producer's A-Z payload exactly when the
    path does not encrypt."""
    data = kc.read_segments(topic)
    if not data:
        raise BenchError("%s: no segment data for %s" % (name, topic))
    plain = PLAIN_RUN.search(data) is not None
    if name in ENCRYPTING and plain:
        raise BenchError("%s: the broker's log of %s holds plaintext values" % (name, topic))
    if name not in ENCRYPTING and not plain:
        raise BenchError("%s: the broker's log of %s holds no plaintext values" % (name, topic))
    return "ciphertext" if name in ENCRYPTING else "plaintext"


def fmt(v, spec="%.2f"):
    return "n/a" if v is None else spec % v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=60000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--warmup-records", type=int, default=60000)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--short", action="store_true")
    args = ap.parse_args()
    if args.short:
        args.records, args.rounds, args.warmup_records = 2000, 1, 0
    modes = [m for m in args.modes.split(",") if m]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        ap.error("unknown mode(s) %s (known: %s)" % (",".join(bad), ",".join(MODES)))
    if args.records < 1 or args.rounds < 1 or args.partitions < 1 or args.warmup_records < 0:
        ap.error("--records, --rounds and --partitions must be >= 1, --warmup-records >= 0")
    n = args.records
    timeout = 90 + n / 500  # only so a stuck path cannot hang the run (>= 0.5 MB/s)
    tmp = tempfile.mkdtemp(prefix="bs-kafka-real-bench-")
    procs = []
    notes = []
    t_start = time.monotonic()
    try:
        certs = harness.make_certs(os.path.join(tmp, "certs"))
        tls_props = client_props(tmp, certs)
        tcp_port = harness.free_port()
        # The CLIENT listener advertises the bs-tcp port (an opaque proxy cannot rewrite); the
        # kafka listeners and Kroxylicious rewrite node 1 to themselves. direct and Kroxylicious
        # use the INTERNAL listener, which advertises itself.
        kc = harness.KafkaCluster(os.path.join(tmp, "kafka"), nodes=1,
                                  advertise={1: "127.0.0.1:%d" % tcp_port})
        procs.append(kc)
        node = kc.node(1)
        paths = {}
        if "direct" in modes:
            paths["direct"] = Path("direct", node.internal, False, None)
        if "bs-tcp" in modes:
            bs, port = start_brokerside(tmp, certs, "bs-tcp", node.client, protocol="tcp", port=tcp_port)
            procs.append(bs)
            paths["bs-tcp"] = Path("bs-tcp", "127.0.0.1:%d" % port, True, bs.proc.pid)
        for name, extra in (("bs-kafka", {}),
                            ("bs-audit", {"audit": {"data_events": "each", "sinks": ["files"]},
                                          "sinks": {"files": {"type": "file",
                                                              "dir": os.path.join(tmp, "audit-events")}},
                                          "spool": {"dir": os.path.join(tmp, "audit-spool")}})):
            if name in modes:
                bs, port = start_brokerside(tmp, certs, name, node.client, **extra)
                procs.append(bs)
                paths[name] = Path(name, "127.0.0.1:%d" % port, True, bs.proc.pid)
        if "bs-enc" in modes:
            key = os.path.join(tmp, "master.key")
            subprocess.run([os.path.join(harness.BUILD_DIR, "bs_keygen"), key], check=True,
                           capture_output=True)
            bs, port = start_brokerside(tmp, certs, "bs-enc", node.client, encryption={
                "kms": {"type": "local", "key_file": key},
                "topics": [{"match": "*", "key": "bench"}], "unmatched_topics": "plaintext"})
            procs.append(bs)
            paths["bs-enc"] = Path("bs-enc", "127.0.0.1:%d" % port, True, bs.proc.pid)
        moto = None
        if "bs-enc-kms" in modes or "kx-enc" in modes:
            mp, endpoint, creds = start_moto(tmp)
            procs.append(mp)
            moto = (endpoint, creds)
        if "bs-enc-kms" in modes:
            endpoint, creds = moto
            env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
            env.update(AWS_ACCESS_KEY_ID=creds["access_key_id"],
                       AWS_SECRET_ACCESS_KEY=creds["secret_access_key"],
                       AWS_EC2_METADATA_DISABLED="true", HOME=tmp)
            bs, port = start_brokerside(tmp, certs, "bs-enc-kms", node.client, env=env,
                                        aws={"region": REGION},
                                        encryption={"kms": {"type": "aws", "region": REGION,
                                                            "endpoint": endpoint + "/"},
                                                    "topics": [{"match": "*", "key": creds["key_id"]}],
                                                    "unmatched_topics": "plaintext"})
            procs.append(bs)
            paths["bs-enc-kms"] = Path("bs-enc-kms", "127.0.0.1:%d" % port, True, bs.proc.pid)
        kx_modes = [m for m in modes if m.startswith("kx-")]
        if kx_modes:
            try:
                cache = kroxylicious_cache()
            except BenchError as e:
                notes.append("%s not measured: %s" % (", ".join(kx_modes), e))
                kx_modes = []
            for name in kx_modes:
                filters = None
                if name == "kx-enc":
                    endpoint, creds = moto
                    filters = [{"name": "encrypt", "type": "RecordEncryption", "config": {
                        "kms": "AwsKmsService",
                        "kmsConfig": {"endpointUrl": endpoint, "region": REGION,
                                      "longTermCredentials": {
                                          "accessKeyId": {"password": creds["access_key_id"]},
                                          "secretAccessKey": {"password": creds["secret_access_key"]}}},
                        "selector": "TemplateKekSelector",
                        "selectorConfig": {"template": KX_ALIAS},
                        "unresolvedKeyPolicy": "REJECT"}}]
                proc, port = start_kroxylicious(tmp, cache, certs, name, node.internal, filters)
                procs.append(proc)
                paths[name] = Path(name, "127.0.0.1:%d" % port, True, proc.pid)
        order = [m for m in MODES if m in paths]
        setup_s = time.monotonic() - t_start

        if args.warmup_records:
            for name in order:
                run_path(kc, paths[name], "warm-%s" % name, args.warmup_records, args.partitions,
                         tls_props, timeout, tmp)
                kc.delete_topics(["warm-%s" % name])
        res = {m: [] for m in order}
        at_rest = {}
        for rnd in range(args.rounds):
            k = rnd % len(order)
            for name in order[k:] + order[:k]:
                topic = "bench-%s-%d" % (name, rnd)
                r = run_path(kc, paths[name], topic, n, args.partitions, tls_props, timeout, tmp)
                if rnd == 0:
                    at_rest[name] = check_at_rest(kc, name, topic)
                kc.delete_topics([topic])
                res[name].append(r)
                print("kafka_real_bench: round %d %-10s produce %7.1f MB/s p99 %6.0f ms  consume %7.1f MB/s"
                      "  proxy CPU %s / %s s" % (rnd + 1, name, r["produce_mbs"], r["p99_ms"],
                                                  r["consume_mbs"], fmt(r["produce_cpu"]),
                                                  fmt(r["consume_cpu"])), file=sys.stderr, flush=True)
        report(args, order, res, at_rest, notes, setup_s, time.monotonic() - t_start)
    except (BenchError, AssertionError) as e:  # AssertionError: a harness wait gave up
        print("kafka_real_bench: FAILED: %s" % e)
        for p in procs:  # the proxies' own logs say why a path failed
            log = getattr(p, "log_path", None)
            if log and os.path.exists(log):
                print("--- %s (last lines)\n%s" % (log, harness.tail(log, 15)))
        sys.exit(1)
    finally:
        for p in reversed(procs):
            p.stop() if hasattr(p, "stop") else p.kill()
        if os.environ.get("BS_KEEP_TMP") == "1":
            print("kafka_real_bench: kept %s" % tmp, file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(args, order, res, at_rest, notes, setup_s, total_s):
    """Print the per-path medians, the paired ratios and the goal verdicts."""
    n, mb = args.records, args.records * MSG / 1e6

    def per_mb(r, k):
        return None if r[k] is None else 1000 * r[k] / mb

    print("kafka_real_bench: %d records x %d B per run, %d partitions, %d round(s), order rotating, "
          "warm-up %d records per path; Apache Kafka %s (1 KRaft node), ProducerPerformance and "
          "ConsumerPerformance; setup %.0f s, total %.0f s; loadavg %s" % (
              n, MSG, args.partitions, args.rounds, args.warmup_records, harness.kafka_version(),
              setup_s, total_s, open("/proc/loadavg").read().split(" ", 3)[:3]))
    for note in notes:
        print("NOTE: " + note)
    print()
    print("%-11s %12s %10s %12s %16s %16s  %s" % ("path", "produce MB/s", "p99 ms", "consume MB/s",
                                                  "produce CPU ms/MB", "consume CPU ms/MB", "broker log"))
    for m in order:
        rs = res[m]
        pc = [per_mb(r, "produce_cpu") for r in rs]
        cc = [per_mb(r, "consume_cpu") for r in rs]
        print("%-11s %12.1f %10.0f %12.1f %16s %16s  %s" % (
            m, median([r["produce_mbs"] for r in rs]), median([r["p99_ms"] for r in rs]),
            median([r["consume_mbs"] for r in rs]),
            fmt(median(pc) if pc[0] is not None else None),
            fmt(median(cc) if cc[0] is not None else None), at_rest.get(m, "-")))
    print()
    print("raw per round (produce MB/s, p99 ms, consume MB/s, produce / consume proxy CPU ms/MB):")
    for m in order:
        print("  %-11s %s" % (m, "; ".join("%.1f %.0f %.1f %s/%s" % (
            r["produce_mbs"], r["p99_ms"], r["consume_mbs"], fmt(per_mb(r, "produce_cpu"), "%.1f"),
            fmt(per_mb(r, "consume_cpu"), "%.1f")) for r in res[m])))
    print()

    def paired(a, b, key):
        """Median over rounds of res[a][i][key] / res[b][i][key] (CPU keys per MB); None when a
        path is missing or a base value is zero."""
        if a not in res or b not in res:
            return None
        xs = []
        for ra, rb in zip(res[a], res[b]):
            va, vb = ra[key], rb[key]
            if va is None or vb is None or vb <= 0:
                continue
            xs.append(va / vb)
        return median(xs) if xs else None

    rows = []  # (label, value, "min"/"max", limit)
    print("%-34s %9s %9s %9s %9s %9s" % ("paired ratio (median of rounds)", "produce", "consume",
                                         "p99", "CPU/MB p", "CPU/MB c"))
    for a, b in (("bs-tcp", "direct"), ("bs-kafka", "direct"), ("bs-kafka", "bs-tcp"),
                 ("bs-enc", "bs-kafka"), ("bs-enc-kms", "bs-kafka"), ("bs-audit", "bs-kafka"),
                 ("kx-tls", "direct"), ("bs-tcp", "kx-tls"), ("bs-kafka", "kx-tls"),
                 ("bs-enc-kms", "kx-enc"), ("bs-enc", "kx-enc"), ("kx-enc", "kx-tls")):
        if a not in res or b not in res:
            continue
        v = [paired(a, b, "produce_mbs"), paired(a, b, "consume_mbs"), paired(a, b, "p99_ms"),
             paired(a, b, "produce_cpu"), paired(a, b, "consume_cpu")]
        print("%-34s %9s %9s %9s %9s %9s" % ("%s / %s" % (a, b), *[fmt(x, "%.3f") for x in v]))
    print()
    goals = []  # (label, path a, path b, metric, "min"/"max", limit)
    for k, lim in (("produce", 0.95), ("consume", 0.95)):
        goals.append(("kafka/tcp %s throughput" % k, "bs-kafka", "bs-tcp", k + "_mbs", "min", lim))
    for e in ("bs-enc", "bs-enc-kms"):
        goals += [(e + "/bs-kafka produce throughput", e, "bs-kafka", "produce_mbs", "min", 0.85),
                  (e + "/bs-kafka consume throughput", e, "bs-kafka", "consume_mbs", "min", 0.80)]
    for b, k in (("bs-kafka", "kx-tls"), ("bs-enc-kms", "kx-enc"), ("bs-enc", "kx-enc")):
        for m in ("produce", "consume"):
            goals.append(("%s/%s %s throughput" % (b, k, m), b, k, m + "_mbs", "min", 1.0))
        for m in ("produce", "consume"):
            goals.append(("%s/%s %s CPU per MB" % (b, k, m), b, k, m + "_cpu", "max", 0.20))
    print("%-44s %8s %8s  %s" % ("goal", "ratio", "target", "verdict"))
    for label, a, b, key, kind, lim in goals:
        if a not in res or b not in res:
            continue
        v = paired(a, b, key)
        if args.short or v is None:
            verdict = "not judged (--short)" if args.short else "not measured"
        else:
            verdict = "PASS" if (v >= lim if kind == "min" else v <= lim) else "FAIL"
        print("%-44s %8s %8s  %s" % (label, fmt(v, "%.3f"),
                                     "%s %.2f" % (">=" if kind == "min" else "<=", lim), verdict))


if __name__ == "__main__":
    main()
