"""Debug rows → response bodies (one place, so every route renders a session the same way), and
the audit-log dependency the debugging routes share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import HTTPConnection

from alien.manager.api.deps import get_core
from alien.manager.debug_schemas import (
    AwsConfigOut,
    DebugPolicyOut,
    DebugSessionOpened,
    DebugSessionOut,
)
from alien.manager.models import AwsDeploymentConfig, DebugSession
from alien.manager.services.audit import AuditLog
from alien.manager.services.debug_policies import PolicyView
from alien.manager.services.debug_sessions import Opened, effective_state


def audit_log(conn: HTTPConnection) -> AuditLog:
    """The manager's sealed audit log (a FastAPI dependency)."""
    return AuditLog.in_data_dir(get_core(conn).settings.data_dir)


Audit = Annotated[AuditLog, Depends(audit_log)]


def tunnel_path(session_id: str) -> str:
    return f"/v1/debug-sessions/{session_id}/tunnel"


def session_out(row: DebugSession) -> DebugSessionOut:
    state = effective_state(row)
    ended_at = row.ended_at
    if ended_at is None and state.value != row.state:  # expired, not yet written down
        ended_at = row.expires_at
    return DebugSessionOut(
        id=row.id,
        deployment_id=row.deployment_id,
        deployment=row.deployment_ref,
        channel=row.channel,
        actor=row.actor,
        reason=row.reason,
        state=state,
        ttl_seconds=row.ttl_seconds,
        created_at=row.created_at,
        started_at=row.started_at,
        expires_at=row.expires_at,
        ended_at=ended_at,
        ended_by=row.ended_by,
        end_reason=row.end_reason,
        exit_code=row.exit_code,
        requests=row.request_count,
        bytes_in=row.bytes_in,
        bytes_out=row.bytes_out,
        tunnel_path=tunnel_path(row.id),
    )


def opened_out(opened: Opened) -> DebugSessionOpened:
    return DebugSessionOpened(**session_out(opened.row).model_dump(), token=opened.token)


def policy_out(policy: PolicyView) -> DebugPolicyOut:
    return DebugPolicyOut(
        deployment_id=policy.deployment_id,
        mode=policy.mode,
        max_ttl_seconds=policy.max_ttl_seconds,
        allowed_channels=list(policy.allowed_channels),
        default=not policy.stored,
        updated_at=policy.updated_at,
        updated_by=policy.updated_by,
    )


def aws_config_out(config: AwsDeploymentConfig) -> AwsConfigOut:
    return AwsConfigOut(
        deployment_id=config.deployment_id,
        region=config.region,
        role_arn=config.role_arn,
        external_id_set=config.external_id is not None,
        endpoint_url=config.endpoint_url,
        allowed_services=list(config.allowed_services),
        created_at=config.created_at,
        updated_at=config.updated_at,
    )
