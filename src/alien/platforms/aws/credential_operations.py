"""AWS operations a debug session may not perform: those that mint credentials or open a standing
way in, which would outlive the session.

A debug session is short-lived and revocable: its traffic stops when it ends. An access key made
with ``iam create-access-key``, an STS token from ``sts assume-role`` or ``get-session-token``,
a console password, or a trust policy that lets another principal assume the role, would not —
whatever the deployment's role allows. These operations are refused before anything is signed
(``Forbidden``, AWS code ``AccessDenied``), whether the manager re-signs (push) or the agent does
(pull), and recorded as refused. Reading identities (``sts get-caller-identity``, ``iam
list-users``…) stays allowed.

The operation must be known for certain, so for the services listed here the request is read
whole before it is judged (at most :data:`MAX_SCREENED_BODY` bytes; these APIs take small forms):
every ``X-Amz-Target`` header and every ``Action`` parameter of the query string and of the body
counts (case-insensitively: a spelling AWS would not act on is refused rather than guessed at),
and a body in signed chunks, which could hide a parameter from a plain reading, is refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from urllib.parse import parse_qsl

from alien.errors import Forbidden, PayloadTooLarge
from alien.protocol.http_exchange import Body, RequestHead

MAX_SCREENED_BODY = 64 * 1024
"""Largest body read to find a screened service's operations (an IAM policy is ≤ 10 KiB)."""

REFUSED_OPERATIONS: dict[str, frozenset[str]] = {
    "sts": frozenset(
        {
            "AssumeRole",
            "AssumeRoleWithSAML",
            "AssumeRoleWithWebIdentity",
            "AssumeRoot",
            "GetFederationToken",
            "GetSessionToken",
        }
    ),
    "iam": frozenset(
        {
            "CreateAccessKey",
            "UpdateAccessKey",  # re-activating a key
            "CreateLoginProfile",
            "UpdateLoginProfile",
            "CreateServiceSpecificCredential",
            "ResetServiceSpecificCredential",
            "UpdateServiceSpecificCredential",
            "UploadSSHPublicKey",
            "UpdateSSHPublicKey",
            "UploadSigningCertificate",
            "UpdateSigningCertificate",
            "UpdateAssumeRolePolicy",  # lets another principal assume the role
        }
    ),
    "ecr": frozenset({"GetAuthorizationToken"}),  # a 12-hour registry password
    "ecr-public": frozenset({"GetAuthorizationToken"}),
    "cognito-identity": frozenset(
        {"GetCredentialsForIdentity", "GetOpenIdToken", "GetOpenIdTokenForDeveloperIdentity"}
    ),
    "redshift": frozenset({"GetClusterCredentials", "GetClusterCredentialsWithIAM"}),
}
"""By SigV4 signing name; compared case-insensitively."""

_LOWERED = {service: {op.lower() for op in ops} for service, ops in REFUSED_OPERATIONS.items()}


def named_operations(head: RequestHead, body: bytes) -> list[str]:
    """Every operation ``head`` and ``body`` name: ``X-Amz-Target`` (JSON protocols) and
    ``Action`` parameters (the query protocol) of the query string and the body."""
    named = [target.rpartition(".")[2] for target in head.get_all("x-amz-target")]
    query = head.target.partition("?")[2]
    named += _actions(parse_qsl(query, keep_blank_values=True))
    named += _actions(parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    return named


def _actions(params: Iterable[tuple[str, str]]) -> list[str]:
    return [value for key, value in params if key.lower() == "action"]


def check_operations(service: str, head: RequestHead, body: bytes) -> None:
    """Raise ``Forbidden`` if the request (its whole ``body``) names a refused operation."""
    refused = _LOWERED.get(service)
    if refused is None:
        return
    for operation in named_operations(head, body):
        if operation.lower() in refused:
            raise Forbidden(
                f"{service}:{operation} mints credentials (or a way in) that would outlive the "
                "debug session; it is refused",
                field="operation",
                details={"aws_code": "AccessDenied"},
            )


async def screen_operations(service: str, head: RequestHead, body: Body) -> Body:
    """The body to send on in place of ``body`` (the same bytes), once the request was found to
    name no refused operation; raises ``Forbidden`` or ``PayloadTooLarge`` otherwise. Other
    services' requests pass untouched and unread."""
    if service not in _LOWERED:
        return body
    content_sha = (head.get("x-amz-content-sha256") or "").upper()
    encoding = (head.get("content-encoding") or "").lower()
    if content_sha.startswith("STREAMING-") or "aws-chunked" in encoding:
        raise Forbidden(
            f"a {service} request in signed chunks is refused in a debug session",
            field="body",
            details={"aws_code": "AccessDenied"},
        )
    whole = b""
    async for chunk in body:
        whole += chunk
        if len(whole) > MAX_SCREENED_BODY:
            raise PayloadTooLarge(
                f"a {service} request body over {MAX_SCREENED_BODY} bytes is refused in a debug "
                "session",
                field="body",
            )
    check_operations(service, head, whole)
    return _once(whole)


async def _once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data
