"""What the manager's API answers, as the client sees it.

These mirror the response bodies in ``docs/API.md`` but are defined here, not imported from
``alien.manager``: a client must not drag the server (FastAPI, SQLAlchemy) into an agent or a CLI.
Unknown fields are ignored so an older client keeps working against a newer manager; secrets
(new tokens) are kept out of ``repr``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Group(_Out):
    id: str
    name: str
    description: str | None = None
    created_at: datetime
    deployment_count: int = 0


class GroupToken(_Out):
    id: str
    group_id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None
    token: str | None = Field(default=None, repr=False)
    created_by: str | None = None
    last_used_at: datetime | None = None
    use_count: int = 0


class ConnectedAgent(_Out):
    """The agent process serving a deployment now (``Deployment.agent``)."""

    instance: str | None = None
    peer: str | None = None
    transport: str
    since: datetime


class RefusedAgent(_Out):
    """A second agent the manager refused for a deployment (see ``AGENT_CONFLICT``)."""

    instance: str | None = None
    peer: str | None = None
    first_at: datetime
    last_at: datetime
    attempts: int = 1
    holder_instance: str | None = None
    holder_peer: str | None = None


class Deployment(_Out):
    id: str
    name: str
    group_id: str
    group: str
    platform: str
    state: str
    provisioned: bool = False
    desired_release: str | None = None
    current_release: str | None = None
    target_release: str | None = None
    last_good_release: str | None = None
    failed_release: str | None = None
    error: str | None = None
    connected: bool = False
    agent: ConnectedAgent | None = None
    agent_conflict: RefusedAgent | None = None
    last_heartbeat_at: datetime | None = None
    agent_version: str | None = None
    status_detail: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        """``group/name``: how people address it."""
        return f"{self.group}/{self.name}"


class Onboarded(_Out):
    deployment: Deployment
    token: str = Field(repr=False)


class AwsOnboardingPlan(_Out):
    """The management role a customer creates to onboard their AWS account."""

    group: str
    principal: str
    external_id: str
    release_id: str
    stack: str
    role_policy_name: str
    trust_policy: dict[str, Any]
    permissions: dict[str, Any]
    allowed_services: list[str]


class AwsOnboarded(_Out):
    deployment: Deployment
    aws: dict[str, Any]
    token: str = Field(repr=False)


class WaitResult(_Out):
    outcome: Literal["matched", "failed", "timeout"]
    deployment: Deployment


class Blob(_Out):
    digest: str
    size: int


class Release(_Out):
    id: str
    stack_name: str
    manifest_digest: str
    package_digest: str
    package_size: int
    targets: dict[str, Any] = Field(default_factory=dict)
    deployments: list[str] = Field(default_factory=list)
    description: str | None = None
    created_at: datetime
    created_by: str | None = None
    manifest: dict[str, Any] | None = None
