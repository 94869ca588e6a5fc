"""What the customer's policy and the audit trail ask of remote commands.

The command operations (:mod:`alien.manager.commands.ops`) call these at the points that matter:

* **create** — :func:`admit` refuses a command while the customer suspended vendor access
  (``ACCESS_SUSPENDED``) or when its name is not in the customer's allowlist
  (``COMMAND_NOT_ALLOWED``); the refusal is audited in the same transaction, which the command
  writer commits although the operation fails. When the customer wants to approve commands, the
  command is stored ``pending`` and *held*: no receiver is offered it until the approval is
  granted (:func:`not_held` is the clause every "what can be handed out" query adds).
* **create / cancel / result** — one audit record each (:func:`record`), sealed in the
  writer's transaction.

While access is suspended nothing is handed out either (pending commands wait, and expire at
their deadline if access does not come back), and commands already running are cancelled.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, select
from sqlalchemy.orm import Session

from alien.errors import Forbidden
from alien.manager.auth import Principal
from alien.manager.models import Approval, DeploymentIdentity
from alien.manager.row_cache import CacheKind, cached
from alien.manager.services import approvals, audit
from alien.manager.services.policy import effective_policy
from alien.manager.services.policy_effective import EffectivePolicy, Party
from alien.protocol.audit import Actor, Outcome

ACCESS_SUSPENDED = "ACCESS_SUSPENDED"
COMMAND_NOT_ALLOWED = "COMMAND_NOT_ALLOWED"


def admit(
    session: Session,
    log: audit.AuditLog,
    caller: Principal,
    dep: DeploymentIdentity,
    command: str,
) -> tuple[Party, ...]:
    """Raise (after auditing the refusal) when the effective policy refuses ``command`` on
    ``dep``; else the parties that must approve it first (empty: none)."""
    policy = _effective_policy(session, dep)
    error: Forbidden | None = None
    if not policy.access:
        error = Forbidden(
            f"the customer suspended all vendor access to deployment {dep.name!r}",
            field="deployment",
            code=ACCESS_SUSPENDED,
        )
    elif not policy.allows_command(command):
        error = Forbidden(
            f"the customer's policy of deployment {dep.name!r} does not allow the command "
            f"{command!r} (allowed: {', '.join(policy.commands or ()) or 'none'})",
            field="command",
            code=COMMAND_NOT_ALLOWED,
        )
    if error is not None:
        details = {"command": command, "code": error.code, "message": error.message}
        record(session, log, audit.actor_of(caller), "command.create", dep.id, None, details)
        raise error
    return policy.command_approvers


POLICIES = CacheKind("effective-policies", tables=("debug_policies", "customer_policies"))
"""A deployment's effective policy, remembered while neither party's policy changed."""


def _effective_policy(session: Session, dep: DeploymentIdentity) -> EffectivePolicy:
    """Remembered across transactions (:data:`POLICIES`): every command create admits against
    it, and a policy change is a rare transaction of its own."""
    return cached(session, POLICIES, dep.id, lambda: effective_policy(session, dep))


def hold(
    session: Session,
    log: audit.AuditLog,
    caller: Principal,
    *,
    command_id: str,
    deployment: DeploymentIdentity,
    command: str,
    parties: tuple[Party, ...],
) -> None:
    """Make a new command wait for its approval."""
    approvals.request(
        session,
        log,
        kind=approvals.SubjectKind.COMMAND,
        subject_id=command_id,
        deployment_id=deployment.id,
        requested_by=audit.actor_of(caller),
        summary=f"run command {command!r} on {deployment.name}",
        parties=parties,
    )


def not_held(command_id: ColumnElement[str]) -> ColumnElement[bool]:
    """SQL: the command has no approval that is not granted (pending or denied)."""
    return ~exists(
        select(Approval.subject_id).where(
            Approval.subject_id == command_id,
            Approval.state != approvals.ApprovalState.APPROVED.value,
        )
    )


def record(
    session: Session,
    log: audit.AuditLog,
    actor: Actor,
    action: str,
    deployment_id: str,
    command_id: str | None,
    details: dict[str, Any],
    outcome: Outcome | None = None,
) -> None:
    """One command audit record (refusals when ``command_id`` is ``None``)."""
    if outcome is None:
        outcome = Outcome.DENIED if command_id is None else Outcome.SUCCEEDED
    log.record(
        session,
        audit.AuditEntry(
            actor=actor,
            action=action,
            outcome=outcome,
            deployment=deployment_id,
            target=command_id,
            details=details,
        ),
    )
