"""Request and response bodies of the manager's HTTP API (pydantic, shown in ``/openapi.json``).

Requests forbid unknown fields, so a typo is a 422 naming the field rather than a silently ignored
option. Secrets (new tokens) appear in exactly one response each, the one that creates them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, JsonValue, StringConstraints

from alien.manager.auth import Role
from alien.protocol.deployment import DeploymentState

Name = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", strict=True),
    Field(description="lowercase letters, digits and '-', 1-63 characters (a DNS label)"),
]
# Names and references are one line of text: control characters (NUL above all, which neither
# PostgreSQL nor the audit trail stores) are refused up front with a 422 naming the field.
ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=ONE_LINE, strict=True)
]
Description = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$", strict=True)]
Digest = Annotated[str, StringConstraints(pattern=r"^sha256:[0-9a-f]{64}$", strict=True)]
Reference = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=ONE_LINE, strict=True)
]
#: The largest sequence number a database integer holds (``after=`` cursors are bounded by it).
MAX_SEQ = 2**63 - 1

#: Platforms a deployment can run on. The agent of each is a later addition; the manager only
#: records which one a deployment uses.
T = TypeVar("T")

Platform = Literal["local", "aws", "gcp", "azure", "kubernetes"]


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: dict[str, Any] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


#: The documented answer of an upload route to a body over its limit (so the spec says so).
TOO_LARGE: dict[int | str, dict[str, Any]] = {
    413: {"model": ErrorBody, "description": "the body is over the configured limit"}
}


# --- API keys --------------------------------------------------------------------------------


class ApiKeyCreate(Request):
    name: Label
    role: Role
    groups: list[Reference] | None = Field(
        default=None,
        max_length=100,
        description="deployment groups (ids or names) the key is confined to; "
        "omitted or null: every group",
    )


class ApiKeyGroupOut(BaseModel):
    id: str
    name: str


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: Role
    groups: list[ApiKeyGroupOut] | None = Field(
        description="the deployment groups the key is confined to; null: every group"
    )
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret; shown only in this response")


# --- groups and their tokens -----------------------------------------------------------------


class GroupCreate(Request):
    name: Name
    description: Description | None = None


class GroupUpdate(Request):
    name: Name | None = None
    description: Description | None = None


class GroupOut(BaseModel):
    id: str
    name: str
    description: str | None
    created_at: datetime
    deployment_count: int


class GroupTokenCreate(Request):
    name: Label = "default"


class GroupTokenOut(BaseModel):
    id: str
    group_id: str
    name: str
    created_at: datetime
    created_by: str | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    use_count: int


class GroupTokenCreated(GroupTokenOut):
    token: str = Field(description="the secret (ax_dg_…); shown only in this response")


# --- deployments -----------------------------------------------------------------------------


class OnboardRequest(Request):
    name: Name
    platform: Platform
    metadata: dict[str, JsonValue] = Field(default_factory=dict)


class ConnectedAgentOut(BaseModel):
    """The agent process serving the deployment through this manager now."""

    instance: str | None = Field(description="its Alien-Agent-Instance id (null: none sent)")
    peer: str | None = Field(description="the address it connected from, as the manager saw it")
    transport: Literal["websocket", "poll"]
    since: datetime


class RefusedAgentOut(BaseModel):
    """An agent process refused because another one serves the deployment (a cloned machine or
    state directory, or a leaked deployment token): the latest one, kept for ten minutes."""

    instance: str | None = Field(description="its Alien-Agent-Instance id (null: none sent)")
    peer: str | None = Field(description="the address it connected from, as the manager saw it")
    first_at: datetime
    last_at: datetime
    attempts: int
    holder_instance: str | None = Field(description="the agent serving the deployment then")
    holder_peer: str | None


class DeploymentOut(BaseModel):
    id: str
    name: str
    group_id: str
    group: str
    platform: str
    state: DeploymentState
    provisioned: bool
    desired_release: str | None
    current_release: str | None
    target_release: str | None
    last_good_release: str | None
    failed_release: str | None
    error: str | None
    connected: bool = Field(description="an agent holds a live channel to this manager now")
    agent: ConnectedAgentOut | None = Field(default=None, description="that agent, if connected")
    agent_conflict: RefusedAgentOut | None = Field(
        default=None, description="a second agent refused within the last ten minutes"
    )
    last_heartbeat_at: datetime | None
    agent_version: str | None
    status_detail: dict[str, Any]
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class Onboarded(BaseModel):
    deployment: DeploymentOut
    token: str = Field(description="the deployment token (ax_dep_…); shown only in this response")


class WaitOut(BaseModel):
    outcome: Literal["matched", "failed", "timeout"] = Field(
        description="matched: the condition holds; failed: the awaited release failed on this "
        "deployment; timeout: neither happened within the wait"
    )
    deployment: DeploymentOut


# --- blobs and releases ----------------------------------------------------------------------


class BlobOut(BaseModel):
    digest: str
    size: int


class AllTargets(Request):
    type: Literal["all"]


class GroupTargets(Request):
    type: Literal["group"]
    group: Reference


class DeploymentTargets(Request):
    type: Literal["deployments"]
    deployments: list[Reference] = Field(min_length=1, max_length=1000)


Targets = Annotated[AllTargets | GroupTargets | DeploymentTargets, Field(discriminator="type")]


class ReleaseCreate(Request):
    manifest: dict[str, Any]
    package_digest: Digest = Field(description="digest of a blob uploaded with POST /v1/blobs")
    targets: Targets
    description: Description | None = None


class ReleaseOut(BaseModel):
    id: str
    stack_name: str
    manifest_digest: str
    package_digest: str
    package_size: int
    targets: dict[str, Any]
    deployments: list[str] = Field(description="ids of the deployments this release was sent to")
    description: str | None
    created_at: datetime
    created_by: str | None


class ReleaseDetail(ReleaseOut):
    manifest: dict[str, Any]


class Page(BaseModel, Generic[T]):
    items: list[T]


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    database: str
