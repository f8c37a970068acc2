#!/usr/bin/env python3
"""Set up a fresh moto_server for SigV4-checked tests (run with a python that has boto3).

Usage: aws_moto_setup.py ENDPOINT REGION [ALIAS...]
Makes exactly the three unauthenticated IAM calls moto allows with
INITIAL_NO_AUTH_ACTION_COUNT=3 (create_user, put_user_policy allowing
everything, create_access_key), then, signed with the new key, creates a
symmetric KMS key and gives it each ALIAS (alias/ALIAS). Prints one JSON
object: access_key_id, secret_access_key, key_id.
"""
import json
import sys

import boto3


def main():
    endpoint, region = sys.argv[1], sys.argv[2]
    anon = dict(endpoint_url=endpoint, region_name=region,
                aws_access_key_id="AKIDSETUP", aws_secret_access_key="setup-secret")
    iam = boto3.client("iam", **anon)
    iam.create_user(UserName="brokerside-test")
    iam.put_user_policy(UserName="brokerside-test", PolicyName="all", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
    key = iam.create_access_key(UserName="brokerside-test")["AccessKey"]
    kms = boto3.client("kms", endpoint_url=endpoint, region_name=region,
                       aws_access_key_id=key["AccessKeyId"],
                       aws_secret_access_key=key["SecretAccessKey"])
    key_id = kms.create_key(Description="brokerside test key")["KeyMetadata"]["KeyId"]
    for alias in sys.argv[3:]:
        kms.create_alias(AliasName="alias/" + alias, TargetKeyId=key_id)
    print(json.dumps({"access_key_id": key["AccessKeyId"],
                      "secret_access_key": key["SecretAccessKey"], "key_id": key_id}))


if __name__ == "__main__":
    main()
