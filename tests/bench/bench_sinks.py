#!/usr/bin/python3
"""Run bs_bench_sinks for every AWS sink against a fresh moto_server (SigV4 on).

Usage: tests/bench/bench_sinks.py [BUILD_DIR] [EVENTS]   (defaults: build, 20000)
Starts moto on a free port, creates the IAM user/key (aws_moto_setup.py), a
bucket, a Firehose delivery stream, and lets the logs sink create its group;
prints one result line per sink; kills moto at the end.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from test_aws_kms import free_port, moto_server_path, python_with_boto3  # noqa: E402


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "..", "..", "build")
    events = sys.argv[2] if len(sys.argv) > 2 else "20000"
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
            r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
            print(r.stdout.strip() or ("sink=%s failed: %s" % (sink, r.stderr[-500:])), flush=True)
    finally:
        moto.kill()
        moto.wait()


if __name__ == "__main__":
    main()
