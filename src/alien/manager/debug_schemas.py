"""Request and response bodies of the remote-debugging routes (AWS deployments, debug policies,
debug sessions, the audit trail). Same conventions as :mod:`alien.manager.schemas`: requests
refuse unknown fields; a session's token appears only in the response that opens it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field, JsonValue, StringConstraints

from alien.manager.schemas import DeploymentOut, Name, Reference, Request
from alien.manager.services.debug_policies import MAX_TTL_LIMIT, Channel, DebugMode
from alien.manager.services.debug_sessions import MAX_REASON, SessionState
from alien.platforms.aws.credentials import _ROLE_ARN_RE

AwsRegion = Annotated[
    str, StringConstraints(pattern=r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$", strict=True, max_length=32)
]


def _role_arn(value: str) -> str:
    # The same rule AssumeRoleCredentialProvider applies, so a stored ARN is always usable
    # (checked with Python's re: the Rust engine pydantic uses blows up on this pattern).
    if not _ROLE_ARN_RE.fullmatch(value):
        raise ValueError("not an IAM role ARN (arn:aws:iam::<12 digits>:role/<name>)")
    return value


RoleArn = Annotated[
    str,
    StringConstraints(max_length=2048, strict=True),
    AfterValidator(_role_arn),
    Field(description="the management role the customer created, e.g. arn:aws:iam::…:role/…"),
]
ExternalId = Annotated[
    str,
    StringConstraints(
        min_length=2, max_length=1224, pattern=r"^[A-Za-z0-9_+=,.@:/-]+$", strict=True
    ),
]
ServiceName = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$", strict=True),
    Field(description="a SigV4 signing name: s3, sts, dynamodb, logs, …"),
]
Url = Annotated[str, StringConstraints(pattern=r"^https?://", max_length=2048, strict=True)]
Reason = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_REASON, strip_whitespace=True, strict=True)
]
Seconds = Annotated[int, Field(ge=1, le=MAX_TTL_LIMIT)]


# --- AWS deployments ---------------------------------------------------------------------------


class AwsDeploymentCreate(Request):
    group: Reference = Field(description="group id or name")
    name: Name
    region: AwsRegion
    role_arn: RoleArn
    external_id: ExternalId | None = None
    endpoint_url: Url | None = Field(
        default=None,
        description="send every AWS call here instead of AWS (an emulator, a VPC endpoint)",
    )
    allowed_services: list[ServiceName] = Field(min_length=1, max_length=200)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class AwsConfigOut(BaseModel):
    deployment_id: str
    region: str
    role_arn: str
    external_id_set: bool
    endpoint_url: str | None
    allowed_services: list[str]
    created_at: datetime
    updated_at: datetime


class AwsDeploymentOut(BaseModel):
    deployment: DeploymentOut
    aws: AwsConfigOut


AccountId = Annotated[
    str,
    StringConstraints(pattern=r"^\d{12}$", strict=True),
    Field(description="the customer's AWS account id (12 digits), for the policy's ARNs"),
]


class AwsOnboardingPlanOut(BaseModel):
    """The role a customer creates to onboard their AWS account (``alien-deploy up --platform
    aws``): trusting ``principal`` under ``external_id``, with ``permissions`` inline."""

    group: str
    principal: str
    external_id: str
    release_id: str
    stack: str
    role_policy_name: str
    trust_policy: dict[str, JsonValue]
    permissions: dict[str, JsonValue]
    allowed_services: list[str]


class AwsOnboardedOut(AwsDeploymentOut):
    """A self-onboarded AWS deployment, and its token for the customer (shown only here):
    ``alien-deploy policy``, ``pending``, ``approve`` and ``audit`` speak for the deployment with
    it. The vendor can then never issue one (``HAS_CREDENTIALS``)."""

    token: str


class AwsOnboardRequest(Request):
    name: Name
    region: AwsRegion
    role_arn: RoleArn
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


# --- debug policies ----------------------------------------------------------------------------


class DebugPolicyIn(Request):
    mode: DebugMode
    max_ttl_seconds: Seconds = 3600
    allowed_channels: list[Channel] = Field(default_factory=lambda: list(Channel), max_length=10)


class DebugPolicyOut(BaseModel):
    deployment_id: str
    mode: DebugMode
    max_ttl_seconds: int
    allowed_channels: list[Channel]
    default: bool = Field(description="no policy was stored: these are the defaults")
    updated_at: datetime | None
    updated_by: str | None


# --- debug sessions ----------------------------------------------------------------------------


class DebugSessionCreate(Request):
    deployment: Reference = Field(description="dep_…, group/name, or a unique name")
    reason: Reason
    ttl_seconds: Seconds | None = Field(
        default=None, description="lifetime once granted; default min(3600, the policy's max)"
    )


class DebugSessionOut(BaseModel):
    id: str
    deployment_id: str | None
    deployment: str = Field(description="group/name when the session was opened")
    channel: str
    actor: str
    reason: str
    state: SessionState
    ttl_seconds: int
    created_at: datetime
    started_at: datetime | None
    expires_at: datetime | None
    ended_at: datetime | None
    ended_by: str | None
    end_reason: str | None
    exit_code: int | None
    requests: int
    bytes_in: int
    bytes_out: int
    tunnel_path: str = Field(description="the WebSocket path of this session's tunnel")


class DebugSessionOpened(DebugSessionOut):
    token: str = Field(description="the session token (ax_dbg_…); shown only in this response")


class DebugSessionClose(Request):
    exit_code: int | None = Field(default=None, ge=-255, le=255)


class DebugSessionRevoke(Request):
    reason: Reason | None = None
