"""Requests signed by botocore itself, as the aws CLI would sign them, for the SigV4 tests."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from alien.platforms.aws.sigv4 import parse_amz_date

KEY_ID = "ASIAALIENTESTKEY0001"
SECRET = "session-secret-0123456789abcdefghij"
HOST = "127.0.0.1:4567"


def _as_received(request: AWSRequest) -> tuple[str, str, list[tuple[str, str]]]:
    parts = urlsplit(request.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = [
        (k.lower(), v if isinstance(v, str) else v.decode()) for k, v in request.headers.items()
    ]
    return request.method, target, headers


def signed(
    method: str = "GET",
    path: str = "/",
    *,
    service: str = "s3",
    region: str = "eu-west-1",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    key_id: str = KEY_ID,
    secret: str = SECRET,
    payload_hash: str | None = None,
) -> tuple[str, str, list[tuple[str, str]], datetime]:
    """A header-signed request as the proxy receives it, plus the time it was signed.

    With ``payload_hash`` the request declares that hash instead of the body's (botocore's S3
    signer would overwrite it; its generic signer keeps it, and "/b/k"-style paths canonicalise
    the same way for both).
    """
    if payload_hash is not None:
        headers = {**(headers or {}), "X-Amz-Content-SHA256": payload_hash}
    request = AWSRequest(
        method=method,
        url=f"http://{HOST}{path}",
        data=body,
        headers={"Host": HOST, **(headers or {})},
    )
    signer_cls = S3SigV4Auth if service == "s3" and payload_hash is None else SigV4Auth
    signer_cls(Credentials(key_id, secret), service, region).add_auth(request)
    method, target, received = _as_received(request)
    return method, target, received, parse_amz_date(request.context["timestamp"])


def presigned(
    path: str = "/bucket/key",
    *,
    region: str = "eu-west-1",
    expires: int = 60,
    key_id: str = KEY_ID,
    secret: str = SECRET,
) -> tuple[str, str, list[tuple[str, str]], datetime]:
    """A presigned S3 GET as the proxy receives it, plus the time it was signed."""
    request = AWSRequest(method="GET", url=f"http://{HOST}{path}", headers={"Host": HOST})
    S3SigV4QueryAuth(Credentials(key_id, secret), "s3", region, expires=expires).add_auth(request)
    method, target, received = _as_received(request)
    return method, target, received, parse_amz_date(request.context["timestamp"])
