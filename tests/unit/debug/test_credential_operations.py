"""Operations that would mint credentials outliving a debug session are refused, however the
request names them; everything else passes with its body unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from alien.errors import Forbidden, PayloadTooLarge
from alien.platforms.aws.credential_operations import (
    MAX_SCREENED_BODY,
    named_operations,
    screen_operations,
)
from alien.protocol.http_exchange import RequestHead

FORM = ("content-type", "application/x-www-form-urlencoded; charset=utf-8")
ECR = "AmazonEC2ContainerRegistry_V20150921."


def head(target: str = "/", *headers: tuple[str, str], method: str = "POST") -> RequestHead:
    return RequestHead.create(method, target, [("host", "127.0.0.1"), *headers])


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def screen(service: str, request: RequestHead, *parts: bytes) -> bytes:
    async def run() -> bytes:
        body = await screen_operations(service, request, _chunks(*parts))
        return b"".join([chunk async for chunk in body])

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("service", "request_head", "body"),
    [
        ("sts", head("/", FORM), b"Action=AssumeRole&Version=2011-06-15&RoleArn=x"),
        ("sts", head("/", FORM), b"Version=2011-06-15&Action=GetSessionToken"),
        ("sts", head("/?Action=GetFederationToken&Name=x", method="GET"), b""),
        ("iam", head("/", FORM), b"Action=CreateAccessKey&UserName=u&Version=2010-05-08"),
        ("iam", head("/", FORM), b"Action=UpdateAssumeRolePolicy&RoleName=r"),
        ("iam", head("/", FORM), b"Action=createaccesskey&UserName=u"),  # any spelling
        ("iam", head("/", FORM), b"aCtIoN=CreateAccessKey&UserName=u"),
        ("iam", head("/", FORM), b"Action=ListUsers&Action=CreateAccessKey"),  # a second one
        ("iam", head("/?Action=ListUsers", FORM), b"Action=CreateAccessKey"),  # query vs body
        ("iam", head("/", FORM), b"Action=Create%41ccessKey"),  # percent-encoded
        ("iam", head("/", FORM), b"x=" + b"a" * 9000 + b"&Action=CreateAccessKey"),  # past a peek
        ("iam", head("/", ("content-type", "text/plain")), b"Action=CreateAccessKey"),
        (
            "ecr",
            head(
                "/", ("x-amz-target", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken")
            ),
            b"{}",
        ),
        (
            "ecr",
            head(
                "/",
                ("x-amz-target", ECR + "DescribeRepositories"),
                ("x-amz-target", ECR + "GetAuthorizationToken"),
            ),
            b"{}",
        ),
    ],
)
def test_credential_minting_is_refused_however_it_is_named(
    service: str, request_head: RequestHead, body: bytes
) -> None:
    with pytest.raises(Forbidden) as refused:
        screen(service, request_head, body[:5], body[5:])  # split across chunks too
    assert refused.value.details["aws_code"] == "AccessDenied"
    assert refused.value.field == "operation" and "outlive" in refused.value.message


@pytest.mark.parametrize(
    ("service", "request_head", "body"),
    [
        ("sts", head("/", FORM), b"Action=GetCallerIdentity&Version=2011-06-15"),
        ("iam", head("/", FORM), b"Action=ListUsers&Version=2010-05-08"),
        ("iam", head("/", FORM), b"Action=ListAccessKeys&UserName=u"),
        ("s3", head("/bucket/key?uploads", method="POST"), b"Action=AssumeRole"),  # not STS
        ("sqs", head("/", FORM), b"Action=SendMessage&MessageBody=Action%3DAssumeRole"),
        ("sts", head("/", FORM), b""),
    ],
)
def test_everything_else_passes_with_the_same_bytes(
    service: str, request_head: RequestHead, body: bytes
) -> None:
    assert screen(service, request_head, body[:3], body[3:]) == body


def test_a_screened_body_in_signed_chunks_is_refused() -> None:
    chunked = head("/", FORM, ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"))
    with pytest.raises(Forbidden, match="signed chunks"):
        screen("sts", chunked, b"Action=GetCallerIdentity")
    encoded = head("/", FORM, ("content-encoding", "aws-chunked"))
    with pytest.raises(Forbidden, match="signed chunks"):
        screen("iam", encoded, b"Action=ListUsers")


def test_a_screened_body_past_the_limit_is_refused_unread_beyond_it() -> None:
    read: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        while True:
            read.append(1)
            yield b"a" * 16384

    async def run() -> None:
        await screen_operations("iam", head("/", FORM), endless())

    with pytest.raises(PayloadTooLarge):
        asyncio.run(run())
    assert len(read) * 16384 <= MAX_SCREENED_BODY + 16384


def test_operations_are_named_from_headers_query_and_body() -> None:
    request = head("/?Action=A&x=1", ("x-amz-target", "Svc_2020.B"), method="POST")
    assert named_operations(request, b"Action=C&action=D") == ["B", "A", "C", "D"]
