"""Operations that would mint credentials outliving a debug session are refused, however the
request names them; a screened service's request whose operation cannot be told for certain is
refused too; everything else passes with its body unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import botocore.session
import pytest

from alien.errors import Forbidden, PayloadTooLarge
from alien.platforms.aws.credential_operations import (
    MAX_SCREENED_BODY,
    POLICY_ONLY_DENIES,
    REFUSED_OPERATIONS,
    SESSION_POLICY,
    screen_operations,
)
from alien.protocol.http_exchange import RequestHead

FORM = ("content-type", "application/x-www-form-urlencoded; charset=utf-8")
JSON11 = ("content-type", "application/x-amz-json-1.1")
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
        ("sts", head("/", FORM), b"Action=GetWebIdentityToken&Version=2011-06-15"),
        ("sts", head("/?Action=GetFederationToken&Name=x", method="GET"), b""),
        ("iam", head("/", FORM), b"Action=CreateAccessKey&UserName=u&Version=2010-05-08"),
        ("iam", head("/", FORM), b"Action=UpdateAssumeRolePolicy&RoleName=r"),
        ("iam", head("/", FORM), b"Action=CreateRole&RoleName=r&AssumeRolePolicyDocument=x"),
        ("iam", head("/", FORM), b"Action=CreateOpenIDConnectProvider&Url=https%3A%2F%2Fx"),
        ("iam", head("/", FORM), b"Action=createaccesskey&UserName=u"),  # any spelling
        ("iam", head("/", FORM), b"aCtIoN=CreateAccessKey&UserName=u"),
        ("iam", head("/", FORM), b"Action=Create%41ccessKey"),  # percent-encoded
        ("iam", head("/", FORM), b"x=" + b"a" * 9000 + b"&Action=CreateAccessKey"),  # past a peek
        ("ecr", head("/", JSON11, ("x-amz-target", ECR + "GetAuthorizationToken")), b"{}"),
        (
            "redshift-serverless",
            head("/", JSON11, ("x-amz-target", "RedshiftServerless.GetCredentials")),
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
        ("iam", head("/", FORM), b"Action=ListUsers&Action=CreateAccessKey"),  # a second one
        ("iam", head("/?Action=ListUsers", FORM), b"Action=CreateAccessKey"),  # query vs body
        ("iam", head("/", FORM), b"UserName=u"),  # none at all
        ("sts", head("/", FORM), b""),
        ("sts", head("/", FORM), b"Action=AssumeRole+"),  # not a plain name
        ("sts", head("/", FORM), b"Action=AssumeRole%00"),
        ("sts", head("/", FORM), b"Action=ListUsers;Action=AssumeRole"),  # another separator
        ("sts", head("/", ("content-type", "text/plain")), b"Action=GetCallerIdentity"),
        (
            "sts",
            head("/", ("content-type", "application/x-www-form-urlencoded; charset=ibm037")),
            b"Action=GetCallerIdentity",
        ),
        ("sts", head("/", FORM), "Action=GetCallerIdentity&x=é".encode()),  # not ASCII
        ("sts", head("/", FORM, ("content-encoding", "gzip")), b"Action=GetCallerIdentity"),
        ("sts", head("/", FORM, ("content-encoding", "aws-chunked")), b"Action=GetCallerIdentity"),
        (
            "sts",
            head("/", FORM, ("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")),
            b"Action=GetCallerIdentity",
        ),
        (
            "sts",
            head("/service/AWSSecurityTokenServiceV20110615/operation/AssumeRole"),
            b"",
        ),
        (  # two targets, or one naming two operations
            "ecr",
            head(
                "/",
                JSON11,
                ("x-amz-target", ECR + "DescribeRepositories"),
                ("x-amz-target", ECR + "GetAuthorizationToken"),
            ),
            b"{}",
        ),
        (
            "ecr",
            head("/", JSON11, ("x-amz-target", f"{ECR}GetAuthorizationToken, {ECR}ListImages")),
            b"{}",
        ),
        ("ecr", head("/", JSON11, ("x-amz-target", ECR + "ListImages ")), b"{}"),
        ("ecr", head("/?Action=GetAuthorizationToken", JSON11, ("x-amz-target", ECR + "X")), b""),
    ],
)
def test_an_operation_not_told_for_certain_is_refused(
    service: str, request_head: RequestHead, body: bytes
) -> None:
    with pytest.raises(Forbidden) as refused:
        screen(service, request_head, body)
    assert refused.value.details["aws_code"] == "AccessDenied"
    assert "for certain" in refused.value.message


@pytest.mark.parametrize(
    ("service", "request_head", "body"),
    [
        ("sts", head("/", FORM), b"Action=GetCallerIdentity&Version=2011-06-15"),
        ("sts", head("/?Action=GetCallerIdentity&Version=2011-06-15", method="GET"), b""),
        ("iam", head("/", FORM), b"Action=ListUsers&Version=2010-05-08"),
        ("iam", head("/", FORM), b"Action=ListAccessKeys&UserName=u"),
        ("iam", head("/", ("content-type", "application/x-www-form-urlencoded")), b"Action=X"),
        ("s3", head("/bucket/key?uploads", method="POST"), b"Action=AssumeRole"),  # not STS
        ("sqs", head("/", FORM), b"Action=SendMessage&MessageBody=Action%3DAssumeRole"),
        ("ecr", head("/", JSON11, ("x-amz-target", ECR + "DescribeRepositories")), b"{}"),
    ],
)
def test_everything_else_passes_with_the_same_bytes(
    service: str, request_head: RequestHead, body: bytes
) -> None:
    assert screen(service, request_head, body[:3], body[3:]) == body


def test_a_json_protocol_body_streams_on_unread() -> None:
    """An ECR layer upload is megabytes: a well-formed JSON request is judged by its header."""
    taken: list[int] = []

    async def layer() -> AsyncIterator[bytes]:
        for _ in range(8):
            taken.append(1)
            yield b"x" * MAX_SCREENED_BODY

    async def run() -> int:
        request = head("/", JSON11, ("x-amz-target", ECR + "UploadLayerPart"))
        body = await screen_operations("ecr", request, layer())
        assert not taken
        return sum([len(chunk) async for chunk in body])

    assert asyncio.run(run()) == 8 * MAX_SCREENED_BODY


def test_a_form_past_the_limit_is_refused_unread_beyond_it() -> None:
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


def test_every_refused_operation_exists_and_none_of_a_kind_is_missing() -> None:
    """The list is checked against botocore's models: a name that is not an operation is a
    typo, and a new STS/IAM/Cognito operation that mints tokens or trust fails this test."""
    loader = botocore.session.get_session()
    minting = ("Assume", "Token", "Credential", "AccessKey", "LoginProfile", "Provider")
    for service, operations in REFUSED_OPERATIONS.items():
        model = loader.get_service_model(service)
        assert operations <= set(model.operation_names), service
        if service in ("sts", "iam", "cognito-identity"):
            suspects = {
                name
                for name in model.operation_names
                if any(word in name for word in minting)
                and name.startswith(("Assume", "Get", "Create", "Update", "Reset", "Add", "Upload"))
            }
            assert suspects - operations <= _REVIEWED_ALLOWED[service], service


_REVIEWED_ALLOWED = {
    # Reading, or deleting: no credential and no trust comes of these.
    "sts": {"GetAccessKeyInfo"},
    "iam": {
        "GetAccessKeyLastUsed",
        "GetLoginProfile",
        "GetOpenIDConnectProvider",
        "GetSAMLProvider",
        "GetCredentialReport",
        "CreateServiceLinkedRole",  # AWS's own trust, for its own service
    },
    "cognito-identity": {"GetId", "GetIdentityPoolRoles"},
}


def test_the_session_policy_denies_the_same_operations_and_fits() -> None:
    allow, deny = SESSION_POLICY["Statement"]
    assert allow == {"Effect": "Allow", "Action": "*", "Resource": "*"}
    expected = {f"{s}:{op}" for s, ops in REFUSED_OPERATIONS.items() for op in ops}
    assert deny["Effect"] == "Deny" and set(deny["Action"]) == expected | POLICY_ONLY_DENIES
    assert len(json.dumps(SESSION_POLICY, separators=(",", ":"))) <= 2048  # AWS's limit


def test_the_session_policy_denies_what_the_screen_cannot_name() -> None:
    """CodeArtifact's GetAuthorizationToken (a REST operation, named by neither header nor
    form) and ``sts:GetServiceBearerToken`` (an IAM action with no API of its own) mint tokens
    outliving the session: only AWS, through the session policy, can refuse them."""
    _, deny = SESSION_POLICY["Statement"]
    assert {"codeartifact:GetAuthorizationToken", "sts:GetServiceBearerToken"} <= set(
        deny["Action"]
    )
    codeartifact = botocore.session.get_session().get_service_model("codeartifact")
    assert "GetAuthorizationToken" in codeartifact.operation_names
    assert codeartifact.protocol == "rest-json"  # why the screen's list cannot hold it
    assert not POLICY_ONLY_DENIES & {f"{s}:{op}" for s, o in REFUSED_OPERATIONS.items() for op in o}


def test_both_re_signers_assume_their_role_with_the_session_policy() -> None:
    from alien.agent.debug import _credentials
    from alien.agent.debug_config import AwsDebugConfig
    from alien.manager.debug_credentials import RoleTarget

    role = "arn:aws:iam::123456789012:role/debug"
    push = RoleTarget(role, "alien-debug-dbg_x", "eu-west-1", None, None).provider()
    pull = _credentials(
        AwsDebugConfig(region="eu-west-1", allowed_services=("sts",), role_arn=role), "dbg_x"
    )
    for provider in (push, pull):
        assert json.loads(provider._request["Policy"]) == SESSION_POLICY  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "target",
    [
        "/v1/authorization-token?domain=d&duration=43200",
        "/v1//authorization-token?domain=d",
        "/v1/Authorization-Token?domain=d",
        "/v1/%61uthorization-token?domain=d",
        "/x/../v1/authorization-token?domain=d",
    ],
)
def test_a_codeartifact_token_is_refused_by_its_path_however_spelled(target: str) -> None:
    """CodeArtifact is a REST API: its token call is refused by method and path, also for an
    agent using its own identity (no session policy to deny it)."""
    with pytest.raises(Forbidden) as refused:
        screen("codeartifact", head(target))
    assert "codeartifact:GetAuthorizationToken" in refused.value.message


def test_other_codeartifact_calls_pass() -> None:
    listing = head("/v1/domains", method="POST")
    assert screen("codeartifact", listing, b"{}") == b"{}"
    assert screen("codeartifact", head("/v1/authorization-token", method="GET")) == b""
