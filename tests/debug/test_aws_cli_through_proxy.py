"""The real aws CLI -> loopback proxy -> re-signer -> moto (signature checks on), end to end."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import boto3
import httpx
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from debug_moto import ACCOUNT, ROLE_NAME, USER_NAME, MotoServer
from debug_session import REGION, SESSION_ID, DebugSession

MiB = 1024 * 1024


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _write_random(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        for _ in range(size // MiB):
            handle.write(os.urandom(MiB))


def test_moto_checks_signatures(moto: MotoServer) -> None:
    """The fixture is meaningful only if moto refuses a wrong secret."""
    sts = boto3.client(
        "sts",
        endpoint_url=moto.url,
        region_name=REGION,
        aws_access_key_id=moto.manager_key_id,
        aws_secret_access_key="not-the-secret",
    )
    with pytest.raises(ClientError) as refused:
        sts.get_caller_identity()
    assert refused.value.response["Error"]["Code"] == "SignatureDoesNotMatch"


def test_caller_identity_is_the_assumed_role(session: DebugSession) -> None:
    result = session.aws("sts", "get-caller-identity", "--output", "text", "--query", "Arn")
    assert result.returncode == 0, result.stderr
    arn = result.stdout.strip()
    assert arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/alien-debug-{SESSION_ID}"
    assert USER_NAME not in arn


def test_s3_large_object_round_trip_streams(session: DebugSession, tmp_path: Path) -> None:
    bucket = "s3://debug-roundtrip"
    assert session.aws("s3", "mb", bucket).returncode == 0
    small = tmp_path / "small.bin"
    _write_random(small, MiB)
    # Warm up every code path (single and multipart PUT, HEAD, GET) before taking the baseline.
    assert session.aws("s3", "cp", str(small), f"{bucket}/small.bin").returncode == 0
    assert session.aws("s3", "cp", f"{bucket}/small.bin", str(tmp_path / "s.out")).returncode == 0
    baseline = session.peak_rss_kib()

    big = tmp_path / "big.bin"
    _write_random(big, 50 * MiB)
    upload = session.aws("s3", "cp", str(big), f"{bucket}/dir/big.bin")
    assert upload.returncode == 0, upload.stderr
    listing = session.aws("s3", "ls", f"{bucket}/dir/")
    assert listing.returncode == 0, listing.stderr
    assert str(50 * MiB) in listing.stdout and "big.bin" in listing.stdout
    downloaded = tmp_path / "big.out"
    download = session.aws("s3", "cp", f"{bucket}/dir/big.bin", str(downloaded))
    assert download.returncode == 0, download.stderr
    assert _sha256(downloaded) == _sha256(big)

    growth_mib = (session.peak_rss_kib() - baseline) / 1024
    assert growth_mib < 25, f"proxy peak memory grew by {growth_mib:.0f} MiB for 100 MB moved"


def test_key_with_dot_segments_and_escapes_keeps_its_path(session: DebugSession) -> None:
    """S3 keys are not paths: '..', '%', '+' and spaces must reach S3 byte for byte."""
    assert session.aws("s3", "mb", "s3://debug-keys").returncode == 0
    key = "a/../b c+d%e.txt"
    put = session.aws("s3api", "put-object", "--bucket", "debug-keys", "--key", key)
    assert put.returncode == 0, put.stderr
    listed = session.aws(
        "s3api", "list-objects-v2", "--bucket", "debug-keys", "--query", "Contents[].Key"
    )
    assert listed.returncode == 0, listed.stderr
    assert key in listed.stdout


def test_sqs_reaches_the_proxy_despite_cli_v1_pinning(session: DebugSession) -> None:
    created = session.aws("sqs", "create-queue", "--queue-name", "debug-q")
    assert created.returncode == 0, created.stderr
    listed = session.aws("sqs", "list-queues")
    assert listed.returncode == 0, listed.stderr
    assert "debug-q" in listed.stdout


def test_presigned_url_is_checked_by_the_proxy(session: DebugSession) -> None:
    """``aws s3 presign`` signs locally with the session keys; the proxy verifies such a URL and
    passes it on re-signed as presigned. moto answers every presigned request with a 500 once its
    signature checks are on (it reads only the Authorization header), so the re-signed URL itself
    is checked in the unit tests; here: a valid URL gets past the proxy, a tampered one does not."""
    presigned = session.aws("s3", "presign", "s3://debug-presign/k", "--expires-in", "60")
    assert presigned.returncode == 0, presigned.stderr
    url = presigned.stdout.strip()
    assert url.startswith(session.url + "/debug-presign/k?X-Amz-Algorithm=AWS4-HMAC-SHA256")
    passed = httpx.get(url, timeout=30)
    assert b"debug session" not in passed.content and b"SignatureDoesNotMatch" not in passed.content
    tampered = httpx.get(url.replace("/k?", "/other?"), timeout=30)
    assert tampered.status_code == 403
    assert b"SignatureDoesNotMatch" in tampered.content


def test_service_outside_allowlist_is_refused(session: DebugSession) -> None:
    result = session.aws("dynamodb", "list-tables")
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr
    assert "'dynamodb' is not allowed" in result.stderr


def test_credentials_that_would_outlive_the_session_are_not_minted(
    session: DebugSession,
) -> None:
    """IAM and STS are allowed here, and the role may create keys; the session still may not."""
    listed = session.aws("iam", "list-users")
    assert listed.returncode == 0, listed.stderr
    for args in (
        ("iam", "create-access-key", "--user-name", USER_NAME),
        ("sts", "get-session-token"),
        (
            "sts",
            "assume-role",
            "--role-arn",
            f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}",
            "--role-session-name",
            "escape",
        ),
    ):
        result = session.aws(*args)
        assert result.returncode != 0, args
        assert "AccessDenied" in result.stderr and "outlive the debug session" in result.stderr
    assert USER_NAME in session.aws("iam", "list-users").stdout  # nothing else changed


def test_region_outside_deployment_is_refused(session: DebugSession) -> None:
    result = session.aws("sqs", "list-queues", "--region", "us-west-2")
    assert result.returncode != 0
    assert "AccessDenied" in result.stderr and "outside this deployment" in result.stderr


@pytest.mark.parametrize(
    ("key_id", "secret", "code"),
    [
        (None, "wrong-secret-0123456789", "SignatureDoesNotMatch"),
        ("AKIAOTHERCLIENT00000", None, "InvalidClientTokenId"),
    ],
)
def test_client_without_the_session_secret_is_refused(
    session: DebugSession, key_id: str | None, secret: str | None, code: str
) -> None:
    env = dict(session.env)
    if key_id is not None:
        env["AWS_ACCESS_KEY_ID"] = key_id
    if secret is not None:
        env["AWS_SECRET_ACCESS_KEY"] = secret
    result = session.aws("s3", "ls", env=env)
    assert result.returncode != 0
    assert code in result.stderr


def test_unsigned_requests_are_refused(session: DebugSession) -> None:
    result = session.aws("s3", "ls", "--no-sign-request")
    assert result.returncode != 0
    assert "MissingAuthenticationToken" in result.stderr
    raw = httpx.post(session.url + "/", data={"Action": "GetCallerIdentity"}, timeout=30)
    assert raw.status_code == 403
    assert b"MissingAuthenticationToken" in raw.content


def test_signed_request_for_another_host_is_refused(session: DebugSession) -> None:
    """Even with the session keys, the proxy is no relay to a host of the caller's choosing."""
    request = AWSRequest(
        method="POST",
        url="http://sts.amazonaws.com/",
        data=b"Action=GetCallerIdentity&Version=2011-06-15",
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Host": "sts.amazonaws.com",
        },
    )
    credentials = Credentials(session.keys.aws_access_key_id, session.keys.aws_secret_access_key)
    SigV4Auth(credentials, "sts", REGION).add_auth(request)
    response = httpx.post(
        session.url + "/",
        content=request.body,
        headers=dict(request.headers.items()),
        timeout=30,
    )
    assert response.status_code == 403
    assert b"only serves requests addressed to itself" in response.content
