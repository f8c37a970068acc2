#!/usr/bin/env python3
"""boto3 side of tests/integration/test_aws_sinks.py (run with a python that has boto3).

Usage: aws_sinks_boto.py ENDPOINT REGION ACCESS_KEY SECRET COMMAND [ARGS...]
Commands (each prints one JSON value):
  create-group GROUP | create-stream GROUP STREAM | read-logs GROUP STREAM
  create-bucket BUCKET | read-s3 BUCKET PREFIX | list-uploads BUCKET
  start-upload BUCKET KEY
  create-firehose NAME BUCKET
  read-metrics NAMESPACE | metric-stats NAMESPACE NAME DIMS_JSON START END
"""
import datetime
import gzip
import json
import sys

import boto3


def main():
    endpoint, region, akid, secret, cmd = sys.argv[1:6]
    args = sys.argv[6:]
    kw = dict(endpoint_url=endpoint, region_name=region, aws_access_key_id=akid,
              aws_secret_access_key=secret)
    out = None
    if cmd == "create-group":
        boto3.client("logs", **kw).create_log_group(logGroupName=args[0])
    elif cmd == "create-stream":
        boto3.client("logs", **kw).create_log_stream(logGroupName=args[0], logStreamName=args[1])
    elif cmd == "read-logs":
        logs = boto3.client("logs", **kw)
        evs, token = [], None
        while True:
            a = dict(logGroupName=args[0], logStreamName=args[1], startFromHead=True)
            if token:
                a["nextToken"] = token
            r = logs.get_log_events(**a)
            evs += [{"timestamp": e["timestamp"], "message": e["message"]} for e in r["events"]]
            if not r["events"] or r.get("nextForwardToken") == token:
                break
            token = r.get("nextForwardToken")
        out = evs
    elif cmd == "create-bucket":
        s3 = boto3.client("s3", **kw)
        if region == "us-east-1":
            s3.create_bucket(Bucket=args[0])
        else:
            s3.create_bucket(Bucket=args[0],
                             CreateBucketConfiguration={"LocationConstraint": region})
    elif cmd == "read-s3":
        s3 = boto3.client("s3", **kw)
        objs = []
        # moto rejects the signature of a prefix= containing '/': filter here instead
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=args[0]):
            for o in page.get("Contents", []):
                if not o["Key"].startswith(args[1]):
                    continue
                body = s3.get_object(Bucket=args[0], Key=o["Key"])["Body"].read()
                if o["Key"].endswith(".gz"):
                    body = gzip.decompress(body)
                objs.append({"key": o["Key"], "size": o["Size"],
                             "lines": body.decode().splitlines()})
        out = objs
    elif cmd == "list-uploads":
        r = boto3.client("s3", **kw).list_multipart_uploads(Bucket=args[0])
        out = [{"key": u["Key"], "id": u["UploadId"]} for u in r.get("Uploads", [])]
    elif cmd == "start-upload":
        out = boto3.client("s3", **kw).create_multipart_upload(Bucket=args[0], Key=args[1])["UploadId"]
    elif cmd == "create-firehose":
        boto3.client("firehose", **kw).create_delivery_stream(
            DeliveryStreamName=args[0], DeliveryStreamType="DirectPut",
            ExtendedS3DestinationConfiguration={
                "RoleARN": "arn:aws:iam::123456789012:role/firehose",
                "BucketARN": "arn:aws:s3:::" + args[1],
                "Prefix": "fh/",
                "BufferingHints": {"SizeInMBs": 1, "IntervalInSeconds": 60}})
    elif cmd == "read-metrics":
        cw = boto3.client("cloudwatch", **kw)
        ms = []
        for page in cw.get_paginator("list_metrics").paginate(Namespace=args[0]):
            ms += [{"name": m["MetricName"],
                    "dims": sorted([d["Name"], d["Value"]] for d in m.get("Dimensions", []))}
                   for m in page["Metrics"]]
        out = ms
    elif cmd == "metric-stats":
        cw = boto3.client("cloudwatch", **kw)
        dims = [{"Name": n, "Value": v} for n, v in json.loads(args[2])]
        r = cw.get_metric_statistics(
            Namespace=args[0], MetricName=args[1], Dimensions=dims,
            StartTime=datetime.datetime.fromtimestamp(int(args[3]), datetime.timezone.utc),
            EndTime=datetime.datetime.fromtimestamp(int(args[4]), datetime.timezone.utc),
            Period=60, Statistics=["SampleCount", "Sum", "Minimum", "Maximum"])
        out = [{k: dp[k] for k in ("SampleCount", "Sum", "Minimum", "Maximum")}
               for dp in r["Datapoints"]]
    else:
        raise SystemExit("unknown command " + cmd)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
