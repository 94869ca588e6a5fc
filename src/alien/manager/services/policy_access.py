"""The customer's access switch, and what it does to what the vendor already has going.

Switching access **off** suspends every vendor access to the deployment at once:

* live debug sessions are revoked (their tunnels drop within a second, their tokens stop
  working) and new ones are refused (``ACCESS_SUSPENDED``);
* commands being worked on are cancelled (the agent is told to stop them), new ones are refused,
  and pending ones are not handed out (they wait, and expire at their deadline if access does
  not come back in time);
* **releases are held**: the vendor may still create releases for the deployment (they are
  recorded as assigned to it, so the vendor sees where they went), but the deployment's desired
  release does not change and its agent is sent nothing; what runs keeps running. The newest
  release sent during the suspension is remembered.

Switching access back **on** delivers that held release (it becomes the desired release, as if
it had just been created) and hands out the pending commands. Everything is audited. The command
cancellations run through the command writer after the commit (:func:`after_commit`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.models import Deployment, ReleaseTarget
from alien.manager.services import audit, debug_sessions
from alien.manager.services.deployments import is_alive, set_desired_release
from alien.manager.services.policy import (
    PolicyChange,
    access_suspended,
    hold_release,
    take_held_release,
)
from alien.protocol.audit import Outcome

SUSPENDED_REASON = "the customer suspended vendor access"


@dataclass(frozen=True)
class AccessEffects:
    """What a policy change did besides storing the policy (to publish after the commit)."""

    deployment_id: str
    suspended: bool = False
    resumed: bool = False
    revoked_sessions: list[str] = field(default_factory=list)
    released: str | None = None


def apply_change(
    session: Session, log: audit.AuditLog, caller: Principal, change: PolicyChange
) -> AccessEffects:
    """The consequences of ``change`` in its own transaction: revocations on a suspension,
    the held release on a resumption."""
    deployment_id = change.after.deployment_id
    if change.suspended:
        revoked = debug_sessions.revoke_live(
            session, log, caller, reason=SUSPENDED_REASON, deployment_id=deployment_id
        )
        return AccessEffects(deployment_id, suspended=True, revoked_sessions=revoked)
    if change.resumed:
        return AccessEffects(
            deployment_id, resumed=True, released=_release_held(session, log, deployment_id)
        )
    return AccessEffects(deployment_id)


def assign_release(session: Session, log: audit.AuditLog, dep: Deployment, release_id: str) -> bool:
    """Send a new release to ``dep``: it becomes the desired release (``True``), or, while the
    customer suspended access, it is recorded as assigned and held (``False``)."""
    if not access_suspended(session, dep.id):
        set_desired_release(session, dep, release_id)
        return True
    if session.get(ReleaseTarget, (release_id, dep.id)) is None:
        session.add(
            ReleaseTarget(release_id=release_id, deployment_id=dep.id, assigned_at=utcnow())
        )
    hold_release(session, dep.id, release_id)
    log.record(
        session,
        audit.AuditEntry(
            actor=audit.SYSTEM,
            action="release.hold",
            outcome=Outcome.DENIED,
            deployment=dep.id,
            target=release_id,
            details={"reason": SUSPENDED_REASON},
        ),
    )
    return False


def _release_held(session: Session, log: audit.AuditLog, deployment_id: str) -> str | None:
    held = take_held_release(session, deployment_id)
    dep = session.get(Deployment, deployment_id, with_for_update=True)
    if held is None or dep is None or not is_alive(dep) or dep.desired_release_id == held:
        return None
    set_desired_release(session, dep, held)
    log.record(
        session,
        audit.AuditEntry(
            actor=audit.SYSTEM,
            action="release.deliver",
            outcome=Outcome.SUCCEEDED,
            deployment=deployment_id,
            target=held,
            details={"reason": "vendor access resumed"},
        ),
    )
    return held
