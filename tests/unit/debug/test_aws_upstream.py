"""The re-signing upstream's refusals: AWS-shaped, in the caller's protocol, never forwarded."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from xml.etree import ElementTree

import pytest
from sigv4_helpers import signed

from alien.errors import Forbidden
from alien.platforms.aws.credentials import AwsCredentials, StaticCredentialSource
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.platforms.aws.upstream import AwsResigningUpstream
from alien.protocol.http_exchange import RequestHead, iterate_once

CREDS = StaticCredentialSource(AwsCredentials("AKIAUPSTREAM00000001", "upstream-secret"))
FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _read(response) -> bytes:
    try:
        return b"".join([chunk async for chunk in response.body])
    finally:
        await response.aclose()


def _head(**kwargs) -> RequestHead:
    method, target, headers, _ = signed(**kwargs)
    return RequestHead.create(method, target, headers)


async def test_refusal_speaks_json_to_json_protocol_callers() -> None:
    upstream = AwsResigningUpstream(AwsEndpointPolicy.create("eu-west-1", ["s3"]), CREDS)
    head = _head(
        method="POST",
        service="dynamodb",
        body=b"{}",
        headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "X.ListTables"},
    )
    response = await upstream.send(head, iterate_once(b"{}"))
    assert response.head.status == 403
    assert response.head.get("x-amzn-errortype") == "AccessDenied"
    assert b"'dynamodb' is not allowed" in await _read(response)
    await upstream.aclose()


async def test_refusal_speaks_xml_to_query_and_rest_xml_callers() -> None:
    upstream = AwsResigningUpstream(AwsEndpointPolicy.create("eu-west-1", ["s3"]), CREDS)
    response = await upstream.send(_head(region="us-west-2"), iterate_once(b""))
    assert response.head.status == 403
    error = ElementTree.fromstring(await _read(response)).find("Error")
    assert error is not None
    assert error.findtext("Code") == "AccessDenied"
    assert "outside this deployment" in (error.findtext("Message") or "")
    await upstream.aclose()


async def test_unreachable_endpoint_is_service_unavailable() -> None:
    policy = AwsEndpointPolicy.create(
        "eu-west-1", ["s3"], endpoint_override=f"http://127.0.0.1:{_closed_port()}"
    )
    upstream = AwsResigningUpstream(policy, CREDS)
    response = await upstream.send(_head(), iterate_once(b""))
    assert response.head.status == 500
    assert b"<Code>ServiceUnavailable</Code>" in await _read(response)
    await upstream.aclose()


async def test_admit_raises_what_it_refuses_and_reads_a_screened_body_once() -> None:
    """``admit`` is the one screen a wrapper (the manager's audit, the agent's marking) runs:
    refusals come out as errors to record, and a screened form is read from the caller once
    and handed on whole."""
    policy = AwsEndpointPolicy.create(
        "eu-west-1", ["s3", "sts"], endpoint_override=f"http://127.0.0.1:{_closed_port()}"
    )
    upstream = AwsResigningUpstream(policy, CREDS)
    with pytest.raises(Forbidden) as refused:
        await upstream.admit(_head(service="dynamodb"), iterate_once(b""))
    assert refused.value.details["aws_code"] == "AccessDenied"

    form = b"Action=GetSessionToken&Version=2011-06-15"
    minting = _head(method="POST", service="sts", body=form, headers=FORM)
    with pytest.raises(Forbidden, match="GetSessionToken"):
        await upstream.admit(minting, iterate_once(form))

    reads = 0

    async def caller_body() -> AsyncIterator[bytes]:
        nonlocal reads
        for part in (b"Action=GetCallerIdentity", b"&Version=2011-06-15"):
            reads += 1
            yield part

    form = b"Action=GetCallerIdentity&Version=2011-06-15"
    head = _head(method="POST", service="sts", body=form, headers=FORM)
    admitted = await upstream.admit(head, caller_body())
    assert admitted.route.service == "sts"
    assert b"".join([chunk async for chunk in admitted.body]) == form
    assert reads == 2
    await upstream.aclose()
