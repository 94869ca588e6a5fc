"""The manager's debugging routes as the CLI calls them: response models and call descriptions.

Each route is described once as a :class:`~alien.client.call.Call`, so the synchronous CLI
commands (``alien debug sessions``, ``alien audit``…) and the asynchronous ``alien debug`` run
execute the same descriptions. The session routes, which ``alien debug`` needs before its
command starts, live in :mod:`alien.debug.session_calls` (no pydantic) and are re-exported here;
the models below mirror ``docs/API.md`` and ignore unknown fields, so an older CLI keeps working
against a newer manager.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alien.client.calls import Call, _model, _page, _ref
from alien.client.models import Deployment
from alien.debug.session_calls import (
    ENDED_STATES,
    DebugSessionInfo,
    OpenedSession,
    close_session,
    get_session,
    list_sessions,
    open_session,
    revoke_session,
    session_path,
    wait_session,
)

__all__ = [
    "ENDED_STATES",
    "MAX_PAGE",
    "AuditRecord",
    "AwsConfig",
    "AwsDeployment",
    "DebugPolicy",
    "DebugSessionInfo",
    "OpenedSession",
    "close_session",
    "get_policy",
    "get_session",
    "list_audit",
    "list_sessions",
    "open_session",
    "register_aws",
    "revoke_session",
    "session_requests",
    "set_policy",
    "wait_session",
]

#: The most records one page of the audit routes holds.
MAX_PAGE = 1000


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AwsConfig(_Out):
    deployment_id: str
    region: str
    role_arn: str
    external_id_set: bool = False
    endpoint_url: str | None = None
    allowed_services: list[str]


class AwsDeployment(_Out):
    deployment: Deployment
    aws: AwsConfig


class DebugPolicy(_Out):
    deployment_id: str
    mode: str
    max_ttl_seconds: int
    allowed_channels: list[str]
    default: bool = False
    updated_at: datetime | None = None
    updated_by: str | None = None


class AuditActor(_Out):
    kind: str
    id: str
    role: str | None = None


class AuditRecord(_Out):
    """A sealed audit record as the manager stores it (``alien.protocol.audit``)."""

    seq: int
    time: datetime
    actor: AuditActor
    action: str
    outcome: str
    deployment_id: str | None = None
    target: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    hash: str = ""
    prev_hash: str = ""


def session_requests(
    session_id: str, after: int | None = None, limit: int = MAX_PAGE
) -> Call[list[AuditRecord]]:
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    return Call("GET", session_path(session_id, "/requests"), _page(AuditRecord), params=params)


def list_audit(
    *,
    action: str | None = None,
    deployment: str | None = None,
    session: str | None = None,
    after: int | None = None,
    limit: int = 100,
) -> Call[list[AuditRecord]]:
    """``session``: that session's own events and the requests it proxied."""
    given = {"action": action, "deployment": deployment, "session": session, "after": after}
    params: dict[str, Any] = {"limit": limit} | {k: v for k, v in given.items() if v is not None}
    return Call("GET", "/v1/audit", _page(AuditRecord), params=params)


def register_aws(
    *,
    group: str,
    name: str,
    region: str,
    role_arn: str,
    allowed_services: Sequence[str],
    external_id: str | None = None,
    endpoint_url: str | None = None,
) -> Call[AwsDeployment]:
    body: dict[str, Any] = {
        "group": group,
        "name": name,
        "region": region,
        "role_arn": role_arn,
        "allowed_services": list(allowed_services),
    }
    if external_id is not None:
        body["external_id"] = external_id
    if endpoint_url is not None:
        body["endpoint_url"] = endpoint_url
    return Call("POST", "/v1/aws-deployments", _model(AwsDeployment), json=body)


def get_policy(deployment: str) -> Call[DebugPolicy]:
    return Call("GET", f"/v1/debug-policies/{_ref(deployment)}", _model(DebugPolicy))


def set_policy(
    deployment: str,
    *,
    mode: str,
    max_ttl_seconds: int,
    allowed_channels: Sequence[str] | None = None,
) -> Call[DebugPolicy]:
    """Without ``allowed_channels`` the manager allows every channel."""
    body: dict[str, Any] = {"mode": mode, "max_ttl_seconds": max_ttl_seconds}
    if allowed_channels is not None:
        body["allowed_channels"] = list(allowed_channels)
    return Call("PUT", f"/v1/debug-policies/{_ref(deployment)}", _model(DebugPolicy), json=body)
