"""A real moto server in a subprocess, with signature checks switched on after set-up.

moto verifies SigV4 only when started with ``INITIAL_NO_AUTH_ACTION_COUNT=N``: the first N calls
are unchecked (we use exactly those to create the manager's IAM user and the deployment's
management role), every later call is verified and IAM policies apply. Tests of re-signing against
a moto that checks nothing would prove nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import boto3

from support.processes import terminate

ACCOUNT = "123456789012"
ROLE_NAME = "deployment-management"
USER_NAME = "alien-manager"
SETUP_CALLS = 5
_RUNNING = re.compile(rb"Running on (http://127\.0\.0\.1:\d+)")

ROLE_PERMISSIONS = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Action": ["s3:*", "sts:GetCallerIdentity", "sqs:*", "iam:List*", "dynamodb:*"],
            "Resource": "*",
        }
    ],
}


@dataclass
class MotoServer:
    url: str
    process: subprocess.Popen[bytes]
    manager_key_id: str
    manager_secret: str
    role_arn: str

    def stop(self) -> None:
        terminate(self.process)


def _wait_for_url(process: subprocess.Popen[bytes], timeout: float) -> str:
    """Read moto's stderr until it names its port (it binds port 0 itself)."""
    found: list[str] = []
    done = threading.Event()

    def reader() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            match = _RUNNING.search(line)
            if match and not found:
                found.append(match.group(1).decode())
                done.set()
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    if not done.wait(timeout) or not found:
        process.kill()
        raise RuntimeError("moto_server did not start")
    return found[0]


def start_moto(region: str) -> MotoServer:
    executable = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", "0"],
        env={"INITIAL_NO_AUTH_ACTION_COUNT": str(SETUP_CALLS), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = _wait_for_url(process, timeout=30)
    iam = boto3.client(
        "iam",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )
    # Exactly SETUP_CALLS unchecked calls; everything after this is signature-checked.
    iam.create_user(UserName=USER_NAME)
    key = iam.create_access_key(UserName=USER_NAME)["AccessKey"]
    iam.put_user_policy(
        UserName=USER_NAME,
        PolicyName="assume",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}],
            }
        ),
    )
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:user/{USER_NAME}"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=json.dumps(trust))
    iam.put_role_policy(
        RoleName=ROLE_NAME, PolicyName="debug", PolicyDocument=json.dumps(ROLE_PERMISSIONS)
    )
    return MotoServer(
        url=url,
        process=process,
        manager_key_id=key["AccessKeyId"],
        manager_secret=key["SecretAccessKey"],
        role_arn=role["Role"]["Arn"],
    )
