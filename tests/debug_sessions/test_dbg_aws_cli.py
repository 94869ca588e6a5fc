"""``alien debug`` with the real aws CLI: CLI → loopback proxy → tunnel → manager (re-signs with
the deployment's role) → moto with signature checks on. Every request is audited."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from dbg_world import AWS, REGION, World, s3_round_trip, signed_chunk_uploads
from debug_moto import ACCOUNT, ROLE_NAME, USER_NAME


def test_caller_identity_is_the_deployments_role_named_after_the_session(world: World) -> None:
    result = world.debug(AWS, "sts", "get-caller-identity", "--query", "Arn", "--output", "text")
    assert result.returncode == 0, result.stderr
    session = world.latest_session()
    arn = result.stdout.strip()
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/alien-debug-{session['id']}"
    assert USER_NAME not in arn
    assert session["state"] == "closed" and session["exit_code"] == 0
    [request] = world.requests(session["id"])
    assert request["details"]["service"] == "sts"
    assert request["details"]["operation"] == "GetCallerIdentity"
    assert request["details"]["status"] == 200 and request["outcome"] == "succeeded"
    assert request["actor"] == {"kind": "debug_session", "id": session["id"], "role": None}
    assert request["target"] == "sts:GetCallerIdentity"
    assert request["deployment_id"] == world.deployment_id


@pytest.mark.slow
def test_s3_50mb_up_and_down_through_the_tunnel(world: World, tmp_path: Path) -> None:
    s3_round_trip(world, tmp_path, size_mib=50, bucket=world.ref.split("/")[1])


def test_signed_chunk_uploads_are_resigned_for_the_deployment(world: World) -> None:
    signed_chunk_uploads(world, bucket=world.ref.split("/")[1] + "-chunks")


def test_service_outside_the_allowlist_is_refused_and_audited(world: World) -> None:
    result = world.debug(AWS, "dynamodb", "list-tables", options=("--json-audit",))
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr and "'dynamodb' is not allowed" in result.stderr
    session = world.latest_session()
    assert session["exit_code"] == result.returncode
    printed = json.loads(result.stderr.strip().splitlines()[-1])
    assert printed["session"]["id"] == session["id"]
    [request] = world.requests(session["id"])
    assert printed["requests"][0]["hash"] == request["hash"]
    assert request["outcome"] == "denied" and request["target"] == "dynamodb:ListTables"
    assert request["details"]["service"] == "dynamodb"
    assert request["details"]["operation"] == "ListTables"
    assert request["details"]["status"] == 403


def test_minting_credentials_is_refused_and_audited(world: World) -> None:
    result = world.debug(AWS, "sts", "get-session-token")
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr and "outlive the debug session" in result.stderr
    [request] = world.requests(world.latest_session()["id"])
    assert request["outcome"] == "denied" and request["target"] == "sts:GetSessionToken"
    assert request["details"]["status"] == 403


def test_another_local_process_without_the_session_keys_is_refused(world: World) -> None:
    """While a session runs, a second local client that finds the proxy but lacks the session's
    dummy keys gets nothing through, and nothing it sends reaches the manager."""
    waiter = "import os,sys; print(os.environ['AWS_ENDPOINT_URL'], flush=True); sys.stdin.read()"
    process = world.start_debug("python3", "-c", waiter)
    assert process.stdout is not None and process.stdin is not None
    proxy_url = process.stdout.readline().strip()
    assert proxy_url.startswith("http://127.0.0.1:"), process.stderr and process.stderr.read()
    try:
        for key, secret in (("AKIAOTHERPROCESS0000", "secret"), ("ASIAALIENGUESSED0000", "x")):
            sts = boto3.client(
                "sts",
                endpoint_url=proxy_url,
                region_name=REGION,
                aws_access_key_id=key,
                aws_secret_access_key=secret,
                config=Config(retries={"max_attempts": 1}),
            )
            with pytest.raises(ClientError) as refused:
                sts.get_caller_identity()
            assert refused.value.response["Error"]["Code"] == "InvalidClientTokenId"
        unsigned = boto3.client(
            "s3",
            endpoint_url=proxy_url,
            region_name=REGION,
            config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
        )
        with pytest.raises(ClientError) as refused:
            unsigned.list_buckets()
        assert refused.value.response["Error"]["Code"] == "MissingAuthenticationToken"
    finally:
        process.stdin.close()
        assert process.wait(timeout=60) == 0
    session = world.latest_session()
    assert session["requests"] == 0 and world.requests(session["id"]) == []


OUTSIDE = """
import os, boto3, httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
try:
    boto3.client("s3", region_name="us-west-2").list_buckets()
    print("region: allowed")
except ClientError as exc:
    print("region:", exc.response["Error"]["Code"], exc.response["Error"]["Message"])
request = AWSRequest(
    method="POST", url="https://sts.amazonaws.com/",
    data=b"Action=GetCallerIdentity&Version=2011-06-15",
    headers={"Content-Type": "application/x-www-form-urlencoded", "Host": "sts.amazonaws.com"},
)
keys = Credentials(os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"])
SigV4Auth(keys, "sts", "eu-west-1").add_auth(request)
answer = httpx.post(os.environ["AWS_ENDPOINT_URL"], content=request.body,
                    headers=dict(request.headers.items()))
print("host:", answer.status_code, answer.text.replace("\\n", " "))
"""


def test_a_region_or_host_outside_the_deployment_is_refused(world: World) -> None:
    """Even signed with the session's own keys: no other region, no host of the caller's
    choosing (the proxy serves only requests addressed to itself)."""
    result = world.debug("python3", "-c", OUTSIDE)
    assert result.returncode == 0, result.stderr
    region, host = result.stdout.strip().splitlines()
    assert region.startswith("region: AccessDenied") and "outside this deployment" in region
    assert host.startswith("host: 403") and "only serves requests addressed to itself" in host
    session = world.latest_session()
    [refused] = world.requests(session["id"])  # the host refusal never left the engineer's machine
    assert refused["outcome"] == "denied" and refused["target"] == "s3:ListBuckets"
