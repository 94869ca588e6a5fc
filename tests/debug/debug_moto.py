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
from typing import Any

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


def launch_moto(setup_calls: int) -> tuple[str, subprocess.Popen[bytes]]:
    """A moto server that checks signatures and IAM policies after ``setup_calls`` calls."""
    executable = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(
        [str(executable), "-H", "127.0.0.1", "-p", "0"],
        env={"INITIAL_NO_AUTH_ACTION_COUNT": str(setup_calls), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return _wait_for_url(process, timeout=30), process


def setup_iam(url: str, region: str) -> Any:
    """An IAM client for moto's unchecked set-up calls."""
    return boto3.client(
        "iam",
        endpoint_url=url,
        region_name=region,
        aws_access_key_id="setup",
        aws_secret_access_key="setup",
    )


def create_user(iam: Any, name: str, actions: list[str], resource: str = "*") -> dict[str, str]:
    """A user allowed ``actions`` on ``resource``, and its access key (3 calls)."""
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    statement = {"Effect": "Allow", "Action": actions, "Resource": resource}
    policy = {"Version": "2012-10-17", "Statement": [statement]}
    iam.put_user_policy(UserName=name, PolicyName="allow", PolicyDocument=json.dumps(policy))
    return key  # type: ignore[no-any-return]


def start_moto(region: str) -> MotoServer:
    url, process = launch_moto(SETUP_CALLS)
    iam = setup_iam(url, region)
    # Exactly SETUP_CALLS unchecked calls; everything after this is signature-checked.
    key = create_user(iam, USER_NAME, ["sts:AssumeRole"])
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
