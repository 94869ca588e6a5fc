"""The manager's debugging routes as the CLI calls them: response models and call descriptions.

Each route is described once as a :class:`~alien.client.calls.Call`, so the synchronous CLI
commands (``alien debug sessions``, ``alien audit``…) and the asynchronous ``alien debug`` run
execute the same descriptions. Models mirror ``docs/API.md`` and ignore unknown fields, so an
older CLI keeps working against a newer manager; the session token never shows in ``repr``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field

from alien.client.calls import LONG_POLL_SLACK, Call, _model, _page, _ref
from alien.client.models import Deployment

#: The most records one page of the audit routes holds.
MAX_PAGE = 1000
#: States in which a session is over.
ENDED_STATES = frozenset({"closed", "expired", "revoked", "denied"})


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class DebugSessionInfo(_Out):
    id: str
    deployment_id: str | None
    deployment: str
    channel: str
    actor: str
    reason: str
    state: str
    ttl_seconds: int
    created_at: datetime
    started_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    ended_by: str | None = None
    end_reason: str | None = None
    exit_code: int | None = None
    requests: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    tunnel_path: str

    @property
    def ended(self) -> bool:
        return self.state in ENDED_STATES


class OpenedSession(DebugSessionInfo):
    token: str = Field(repr=False)


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


class ApprovalInfo(_Out):
    """Who must still approve a session (``GET /v1/approvals/{id}``)."""

    subject_id: str
    state: str
    required: list[str] = Field(default_factory=list)
    waiting_for: list[str] = Field(default_factory=list)


def get_approval(subject_id: str) -> Call[ApprovalInfo]:
    return Call("GET", f"/v1/approvals/{quote(subject_id, safe='')}", _model(ApprovalInfo))


def _session_path(session_id: str, suffix: str = "") -> str:
    return f"/v1/debug-sessions/{quote(session_id, safe='')}{suffix}"


def open_session(deployment: str, reason: str, ttl_seconds: int | None) -> Call[OpenedSession]:
    body: dict[str, Any] = {"deployment": deployment, "reason": reason}
    if ttl_seconds is not None:
        body["ttl_seconds"] = ttl_seconds
    return Call("POST", "/v1/debug-sessions", _model(OpenedSession), json=body)


def get_session(session_id: str) -> Call[DebugSessionInfo]:
    return Call("GET", _session_path(session_id), _model(DebugSessionInfo))


def wait_session(session_id: str, known: str, timeout: float) -> Call[DebugSessionInfo]:
    """Long-poll until the session leaves state ``known`` (or ``timeout`` seconds pass)."""
    return Call(
        "GET",
        _session_path(session_id, "/wait"),
        _model(DebugSessionInfo),
        params={"known": known, "timeout": timeout},
        timeout=timeout + LONG_POLL_SLACK,
    )


def close_session(session_id: str, exit_code: int | None) -> Call[DebugSessionInfo]:
    return Call(
        "POST",
        _session_path(session_id, "/close"),
        _model(DebugSessionInfo),
        json={"exit_code": exit_code},
    )


def revoke_session(session_id: str, reason: str | None) -> Call[DebugSessionInfo]:
    body = {"reason": reason} if reason else {}
    return Call("POST", _session_path(session_id, "/revoke"), _model(DebugSessionInfo), json=body)


def list_sessions(
    deployment: str | None = None, state: str | None = None, limit: int = 100
) -> Call[list[DebugSessionInfo]]:
    params: dict[str, Any] = {"limit": limit}
    params |= {k: v for k, v in {"deployment": deployment, "state": state}.items() if v}
    return Call("GET", "/v1/debug-sessions", _page(DebugSessionInfo), params=params)


def session_requests(
    session_id: str, after: int | None = None, limit: int = MAX_PAGE
) -> Call[list[AuditRecord]]:
    params: dict[str, Any] = {"limit": limit}
    if after is not None:
        params["after"] = after
    return Call("GET", _session_path(session_id, "/requests"), _page(AuditRecord), params=params)


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


def get_aws_config(deployment: str) -> Call[AwsConfig]:
    return Call("GET", f"/v1/aws-deployments/{_ref(deployment)}", _model(AwsConfig))


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
