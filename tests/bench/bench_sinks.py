#!/usr/bin/python3
"""Run bs_bench_sinks for every AWS sink against a fresh moto_server (SigV4 on).

Usage: tests/bench/bench_sinks.py [BUILD_DIR] [EVENTS]   (defaults: build, 20000)
Starts moto on a free port, creates the IAM user/key (aws_moto_setup.py), a
bucket, a Firehose delivery stream, and lets the logs sink create its group;
prints one result line per sink; kills moto at the end (also on SIGTERM).
Each line ends with the endpoint's side of the same run, measured from /proc:
moto_cpu_s (user + system CPU of moto_server and its descendants during that
sink's run) and moto_cpu_s_per_10k, so brokerside's CPU per 10,000 events can be
compared with the endpoint's. A sink that fails prints "sink=NAME failed: ..."
and makes the script exit 1 after the other sinks ran.
"""
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from test_aws_kms import free_port, moto_server_path, python_with_boto3  # noqa: E402

sys.path.insert(0, HERE)
from kafka_bench import tree_cpu_seconds  # noqa: E402  (the bench scripts' shared helpers)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build")
    events = sys.argv[2] if len(sys.argv) > 2 else "20000"
    # run.sh stops this script with SIGTERM: turn it into an exit so moto is killed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = 0
    py = python_with_boto3()
    port = free_port()
    ep = "http://127.0.0.1:%d" % port
    moto = subprocess.Popen([moto_server_path(), "-H", "127.0.0.1", "-p", str(port)],
                            env=dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT="3"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(ep + "/moto-api/", timeout=2).read()
                break
            except OSError:
                time.sleep(0.3)
        out = subprocess.run([py, os.path.join(HERE, "..", "integration", "aws_moto_setup.py"),
                              ep + "/", "us-east-1"], capture_output=True, text=True, check=True)
        creds = json.loads(out.stdout.strip().splitlines()[-1])
        boto = [py, os.path.join(HERE, "..", "integration", "aws_sinks_boto.py"), ep, "us-east-1",
                creds["access_key_id"], creds["secret_access_key"]]
        for args in (["create-bucket", "bench-bucket"], ["create-bucket", "bench-fh"],
                     ["create-firehose", "bench-fh", "bench-fh"]):
            subprocess.run(boto + args, check=True, capture_output=True)
        env = dict(os.environ, AWS_ACCESS_KEY_ID=creds["access_key_id"],
                   AWS_SECRET_ACCESS_KEY=creds["secret_access_key"])
        runs = [("firehose", ["delivery_stream=bench-fh"]),
                ("cloudwatch_logs", ["group=/bench", "log_stream=b"]),
                ("cloudwatch_metrics", []),
                ("s3", ["bucket=bench-bucket"])]
        for sink, opts in runs:
            cmd = [os.path.join(build, "bs_bench_sinks"), "--sink", sink, "--endpoint", ep,
                   "--events", events]
            for o in opts:
                cmd += ["--opt", o]
            cpu0 = tree_cpu_seconds(moto.pid)
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            moto_cpu = tree_cpu_seconds(moto.pid) - cpu0
            if r.returncode != 0 or not r.stdout.strip():
                failed = 1
                print("sink=%s failed: exit %d: %s" % (sink, r.returncode,
                      (r.stdout + r.stderr).strip()[-500:].replace("\n", " | ")), flush=True)
                continue
            print("%s moto_cpu_s=%.3f moto_cpu_s_per_10k=%.4f" %
                  (r.stdout.strip(), moto_cpu, moto_cpu * 10000.0 / int(events)), flush=True)
    finally:
        moto.kill()
        moto.wait()
    return failed


if __name__ == "__main__":
    sys.exit(main())
