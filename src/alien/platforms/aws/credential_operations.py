"""AWS operations a debug session may not perform: those that mint credentials or open a standing
way in, which would outlive the session.

A debug session is short-lived and revocable: its traffic stops when it ends. An access key made
with ``iam create-access-key``, an STS token from ``sts get-session-token``, a console password,
a role or identity provider trusting an outside principal would not — whatever the deployment's
role allows. Two layers keep them out:

* **AWS itself**: the role a session assumes (push: the manager; pull: the agent, when it has a
  role) is assumed with :data:`SESSION_POLICY`, which denies these actions; a session policy
  can only narrow the role, and AWS applies it whatever protocol or encoding a request uses.
* **Before anything is signed** (:func:`screen_operations`, push and pull): a refused operation
  is answered ``Forbidden`` (AWS code ``AccessDenied``) and audited as refused. For the services
  listed the operation must be known for certain, or the request is refused too: exactly one
  operation name, from one well-formed ``X-Amz-Target`` (JSON protocols; the body then streams
  on unread) or from ``Action`` parameters of the query string and of the body, all naming the
  same operation (the body read whole, at most :data:`MAX_SCREENED_BODY` bytes, ASCII, a form in
  UTF-8). Content encodings, signed chunks and Smithy RPC v2 paths (``/service/…/operation/…``)
  are refused for these services rather than decoded here.

The session policy also denies :data:`POLICY_ONLY_DENIES`, which the screen cannot name: a
REST-protocol operation (its name is in neither a header nor a form) and an IAM action with no
API of its own. Not covered otherwise (the list names what mints credentials or trust; resource
policies and other REST-protocol services such as IAM Roles Anywhere or EKS access entries are
the deployment's role's to deny): docs/ARCHITECTURE.md says which.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from alien.errors import Forbidden
from alien.platforms.credential_screen import read_whole
from alien.platforms.path_readings import Reading, path_readings
from alien.protocol.http_exchange import Body, RequestHead, iterate_once

MAX_SCREENED_BODY = 64 * 1024
"""Largest form body read to find a screened service's operation (an IAM policy is ≤ 10 KiB)."""

REFUSED_OPERATIONS: dict[str, frozenset[str]] = {
    "sts": frozenset(
        {
            "AssumeRole",
            "AssumeRoleWithSAML",
            "AssumeRoleWithWebIdentity",
            "AssumeRoot",
            "GetDelegatedAccessToken",
            "GetFederationToken",
            "GetScopedCredentials",  # narrower, but a copy that revocation cannot reach
            "GetSessionToken",
            "GetWebIdentityToken",
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
            # trust: who may assume roles here
            "CreateRole",
            "UpdateAssumeRolePolicy",
            "CreateOpenIDConnectProvider",
            "AddClientIDToOpenIDConnectProvider",
            "UpdateOpenIDConnectProvider",  # ties an Identity Center instance to the provider
            "UpdateOpenIDConnectProviderThumbprint",
            "CreateSAMLProvider",
            "UpdateSAMLProvider",
            # a partner's temporary access to this account, in this identity's name
            "AcceptDelegationRequest",
            "SendDelegationToken",
        }
    ),
    "ecr": frozenset({"GetAuthorizationToken"}),  # a 12-hour registry password
    "ecr-public": frozenset({"GetAuthorizationToken"}),
    "cognito-identity": frozenset(
        {
            "GetCredentialsForIdentity",
            "GetOpenIdToken",
            "GetOpenIdTokenForDeveloperIdentity",
            "CreateIdentityPool",
            "UpdateIdentityPool",
            "SetIdentityPoolRoles",
        }
    ),
    "redshift": frozenset({"GetClusterCredentials", "GetClusterCredentialsWithIAM"}),
    "redshift-serverless": frozenset({"GetCredentials"}),
    "ssm": frozenset({"CreateActivation"}),  # registers outside machines as managed nodes
    "lightsail": frozenset({"CreateKeyPair", "DownloadDefaultKeyPair", "GetInstanceAccessDetails"}),
}
"""By SigV4 signing name; compared case-insensitively."""

REST_REFUSED: dict[str, tuple[tuple[str, Reading, str], ...]] = {
    # CodeArtifact's repository token, up to 12 hours: a REST API, named by method and path
    "codeartifact": (("POST", ("v1", "authorization-token"), "GetAuthorizationToken"),),
}
"""Operations of REST-protocol services refused by method and path (every reading of the path,
:mod:`alien.platforms.path_readings`), for an agent using its own identity with no session
policy; the session policy denies them too (:data:`POLICY_ONLY_DENIES`)."""

POLICY_ONLY_DENIES = frozenset(
    {
        # a CodeArtifact repository token, up to 12 hours (also refused by path: REST_REFUSED)
        "codeartifact:GetAuthorizationToken",
        # the STS bearer token behind it and other services' (an IAM action, no API of its own)
        "sts:GetServiceBearerToken",
    }
)
"""Actions minting credentials that only the session policy can deny (as ``service:Action``)."""

SESSION_POLICY: dict[str, Any] = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
        {
            "Effect": "Deny",
            "Action": sorted(
                {f"{s}:{op}" for s, ops in REFUSED_OPERATIONS.items() for op in ops}
                | POLICY_ONLY_DENIES
            ),
            "Resource": "*",
        },
    ],
}
"""The session policy a debug session's role is assumed with: the role's own permissions, less
:data:`REFUSED_OPERATIONS` and :data:`POLICY_ONLY_DENIES` (which AWS then refuses however a
request is spelled)."""

_LOWERED = {service: {op.lower() for op in ops} for service, ops in REFUSED_OPERATIONS.items()}
_NAME = re.compile(r"[A-Za-z0-9]+")
_TARGET = re.compile(r"[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*\.([A-Za-z0-9]+)")
_JSON_TYPES = ("application/x-amz-json-1.0", "application/x-amz-json-1.1")
_FORM_TYPE = "application/x-www-form-urlencoded"


def _uncertain(service: str, why: str) -> Forbidden:
    return _denied(
        f"the operation of this {service} request cannot be told for certain ({why}); it is "
        "refused in a debug session"
    )


def _refused(service: str, operation: str) -> Forbidden:
    return _denied(
        f"{service}:{operation} mints credentials (or a way in) that would outlive the debug "
        "session; it is refused"
    )


def _denied(message: str) -> Forbidden:
    return Forbidden(message, field="operation", details={"aws_code": "AccessDenied"})


def json_operation(head: RequestHead) -> str | None:
    """The operation of a well-formed JSON-protocol request — one ``X-Amz-Target``, a JSON
    content type, no ``Action`` in the query — whose body need not be read; else ``None``."""
    targets = head.get_all("x-amz-target")
    if len(targets) != 1:
        return None
    match = _TARGET.fullmatch(targets[0])
    content_type = (head.get("content-type") or "").split(";", 1)[0].strip().lower()
    if match is None or content_type not in _JSON_TYPES or _query_actions(head):
        return None
    return match.group(1)


def form_operation(service: str, head: RequestHead, body: bytes) -> str:
    """The one operation a query-protocol request names (its whole ``body`` given), or
    ``Forbidden`` when it names none, several, or names it in a way read differently elsewhere."""
    if head.get_all("x-amz-target"):
        raise _uncertain(service, "an X-Amz-Target beside a form, or not well-formed")
    content_type = (head.get("content-type") or _FORM_TYPE).lower()
    kind, _, parameters = content_type.partition(";")
    charset = re.search(r"charset\s*=\s*\"?([^\";\s]+)", parameters)
    if body and kind.strip() != _FORM_TYPE:
        raise _uncertain(service, f"a body of type {kind.strip()!r}")
    if charset is not None and charset.group(1) not in ("utf-8", "utf8"):
        raise _uncertain(service, f"a form in {charset.group(1)}")
    if not body.isascii():
        raise _uncertain(service, "a form body that is not ASCII")
    names = _query_actions(head) + _actions(body.decode("ascii"))
    if not names:
        raise _uncertain(service, "it names no Action")
    if len(set(names)) > 1 or not _NAME.fullmatch(names[0]):
        raise _uncertain(service, "its Action parameters disagree or are not plain names")
    return names[0]


def _query_actions(head: RequestHead) -> list[str]:
    return _actions(head.target.partition("?")[2])


def _actions(form: str) -> list[str]:
    pairs = parse_qsl(form, keep_blank_values=True)
    return [value for key, value in pairs if key.strip().lower() == "action"]


def judge(service: str, operation: str) -> None:
    """Raise ``Forbidden`` if ``operation`` of ``service`` is refused."""
    if operation.lower() in _LOWERED.get(service, ()):
        raise _refused(service, operation)


def _check_framing(service: str, head: RequestHead) -> None:
    encoding = (head.get("content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise _uncertain(service, f"content encoding {encoding!r}")
    if (head.get("x-amz-content-sha256") or "").upper().startswith("STREAMING-"):
        raise _uncertain(service, "a body in signed chunks")
    if "/operation/" in head.target.partition("?")[0]:
        raise _uncertain(service, "a Smithy RPC v2 path")


async def screen_operations(service: str, head: RequestHead, body: Body) -> Body:
    """The body to send on in place of ``body`` (the same bytes) once the request is known to
    name no refused operation; raises ``Forbidden`` or ``PayloadTooLarge`` otherwise. Requests
    to other services pass untouched and unread."""
    for method, path, operation in REST_REFUSED.get(service, ()):
        if head.method == method and path in path_readings(head.target):
            raise _refused(service, operation)
    if service not in _LOWERED:
        return body
    _check_framing(service, head)
    operation = json_operation(head)
    if operation is not None:
        judge(service, operation)
        return body
    whole = await read_whole(body, MAX_SCREENED_BODY, f"a {service} form")
    judge(service, form_operation(service, head, whole))
    return iterate_once(whole)
