"""A deployment's debug policy: may it be debugged at all, for how long, over which channels.

Stored per deployment so that an admin can set it now and the customer-side policy tooling and
approvals (a later issue) can take it over; a deployment without a stored policy gets
:data:`DEFAULT_POLICY`. Every change is audited.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from alien.errors import ValidationError
from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.models import DebugPolicy, Deployment, DeploymentIdentity
from alien.manager.services import audit
from alien.protocol.audit import Outcome


class DebugMode(enum.StrEnum):
    ALLOWED = "allowed"
    APPROVAL_REQUIRED = "approval_required"
    FORBIDDEN = "forbidden"


class Channel(enum.StrEnum):
    """How a session reaches the deployment: which tool family its traffic belongs to."""

    AWS = "aws"
    GCP = "gcp"
    AZURE = "azure"
    KUBERNETES = "kubernetes"
    HTTP = "http"


MAX_TTL_LIMIT = 12 * 3600
DEFAULT_MAX_TTL = 3600


@dataclass(frozen=True)
class PolicyView:
    """A deployment's effective policy (``stored`` is false for the default)."""

    deployment_id: str
    mode: DebugMode
    max_ttl_seconds: int
    allowed_channels: tuple[Channel, ...]
    stored: bool
    updated_at: datetime | None = None
    updated_by: str | None = None


DEFAULT_MODE = DebugMode.ALLOWED
DEFAULT_CHANNELS: tuple[Channel, ...] = tuple(Channel)


def get_policy(session: Session, dep: DeploymentIdentity) -> PolicyView:
    row = session.get(DebugPolicy, dep.id)
    if row is None:
        return PolicyView(
            deployment_id=dep.id,
            mode=DEFAULT_MODE,
            max_ttl_seconds=DEFAULT_MAX_TTL,
            allowed_channels=DEFAULT_CHANNELS,
            stored=False,
        )
    return PolicyView(
        deployment_id=dep.id,
        mode=DebugMode(row.mode),
        max_ttl_seconds=row.max_ttl_seconds,
        allowed_channels=tuple(Channel(c) for c in row.allowed_channels),
        stored=True,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
    )


def set_policy(
    session: Session,
    log: audit.AuditLog,
    caller: Principal,
    dep: Deployment,
    *,
    mode: DebugMode,
    max_ttl_seconds: int,
    allowed_channels: Iterable[Channel],
) -> PolicyView:
    """Replace the deployment's policy (sessions already open keep running; revoke those)."""
    if not 1 <= max_ttl_seconds <= MAX_TTL_LIMIT:
        raise ValidationError(
            f"max_ttl_seconds must be 1..{MAX_TTL_LIMIT}", field="max_ttl_seconds"
        )
    channels = sorted({Channel(c) for c in allowed_channels})
    row = session.get(DebugPolicy, dep.id)
    now = utcnow()
    if row is None:
        row = DebugPolicy(deployment_id=dep.id)
        session.add(row)
    row.mode = mode.value
    row.max_ttl_seconds = max_ttl_seconds
    row.allowed_channels = [c.value for c in channels]
    row.updated_at = now
    row.updated_by = caller.label
    session.flush()
    log.record(
        session,
        audit.AuditEntry(
            actor=audit.actor_of(caller),
            action="debug.policy.set",
            outcome=Outcome.SUCCEEDED,
            deployment=dep.id,
            target=dep.id,
            details={
                "mode": mode.value,
                "max_ttl_seconds": max_ttl_seconds,
                "allowed_channels": row.allowed_channels,
            },
        ),
    )
    session.flush()
    return get_policy(session, dep)
