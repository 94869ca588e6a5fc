"""Approvals: a debug session or a command that may start only once the right parties agreed.

When the effective policy asks for it, the subject (``dbg_…`` or ``cmd_…``) is created waiting
and an approval row names who must decide: the customer (with the deployment's own token), a
vendor approver (an API key whose role may decide approvals), or both. Each party decides once;
one denial ends it, and it is approved when every required party approved. Nobody decides on
their own request. Every request and decision is audited, and so is every refused attempt to
decide. What an outcome does to its subject (a session becomes active, a command is dispatched or
cancelled) is the caller's part: :func:`decide` only says whether the approval is complete.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict, Forbidden, NotFound
from alien.manager.auth import Principal
from alien.manager.db import utcnow
from alien.manager.models import Approval, Deployment
from alien.manager.services import audit
from alien.manager.services.policy_effective import Party
from alien.manager.tokens import TokenKind
from alien.protocol.audit import Actor, Outcome

MAX_SUMMARY = 500


class SubjectKind(enum.StrEnum):
    DEBUG_SESSION = "debug_session"
    COMMAND = "command"


class ApprovalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    WITHDRAWN = "withdrawn"  # the subject ended before a decision (cancelled, revoked, expired)


class Decision(enum.StrEnum):
    APPROVED = "approved"
    DENIED = "denied"


def request(
    session: Session,
    log: audit.AuditLog,
    *,
    kind: SubjectKind,
    subject_id: str,
    deployment_id: str,
    requested_by: Actor,
    summary: str,
    parties: Sequence[Party],
) -> Approval:
    """Make ``subject_id`` wait for ``parties`` (at least one) and audit the request."""
    assert parties, "an approval needs at least one party"
    row = Approval(
        subject_id=subject_id,
        subject_kind=kind.value,
        deployment_id=deployment_id,
        requested_by=requested_by.id,
        summary=summary[:MAX_SUMMARY],
        state=ApprovalState.PENDING.value,
        need_customer=Party.CUSTOMER in parties,
        need_vendor=Party.VENDOR in parties,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    log.record(
        session,
        audit.AuditEntry(
            actor=requested_by,
            action="approval.request",
            outcome=Outcome.SUCCEEDED,
            deployment=deployment_id,
            target=subject_id,
            details={"kind": kind.value, "parties": [p.value for p in parties]},
        ),
    )
    return row


def find(session: Session, subject_id: str) -> Approval | None:
    return session.get(Approval, subject_id)


def list_approvals(
    session: Session,
    *,
    deployment_id: str | None = None,
    state: ApprovalState | None = None,
    limit: int = 100,
    groups: Collection[str] | None = None,
) -> list[Approval]:
    """Oldest first: the request waiting longest is the first to decide. ``groups``: only
    those of deployments in these groups (a group-scoped caller's view) — in the query, before
    the limit, or how many fewer than ``limit`` came back would count other groups' approvals."""
    query = select(Approval).order_by(Approval.created_at, Approval.subject_id)
    if groups is not None:
        visible = select(Deployment.id).where(Deployment.group_id.in_(groups))
        query = query.where(Approval.deployment_id.in_(visible))
    if deployment_id is not None:
        query = query.where(Approval.deployment_id == deployment_id)
    if state is not None:
        query = query.where(Approval.state == state.value)
    return list(session.scalars(query.limit(limit)))


def required(row: Approval) -> tuple[Party, ...]:
    return tuple(
        party
        for party, needed in ((Party.CUSTOMER, row.need_customer), (Party.VENDOR, row.need_vendor))
        if needed
    )


def waiting_for(row: Approval) -> tuple[Party, ...]:
    """The required parties that have not decided yet."""
    decided = {Party.CUSTOMER: row.customer_decision, Party.VENDOR: row.vendor_decision}
    return tuple(p for p in required(row) if decided[p] is None)


def party_of(caller: Principal) -> Party:
    """A deployment token speaks for the customer; an API key for the vendor."""
    return Party.CUSTOMER if caller.kind is TokenKind.DEPLOYMENT else Party.VENDOR


@dataclass(frozen=True)
class Decided:
    """A decision taken: the approval as it is now (``state`` pending while another party
    must still approve)."""

    row: Approval
    party: Party
    decision: Decision

    @property
    def complete(self) -> bool:
        return self.row.state != ApprovalState.PENDING.value


def refusal(caller: Principal, row: Approval) -> AlienError | None:
    """Why ``caller`` may not take ``decision`` on ``row`` (``None``: they may)."""
    party = party_of(caller)
    if party is Party.CUSTOMER and caller.deployment_id != row.deployment_id:
        return NotFound(f"no approval for {row.subject_id!r}", field="subject_id")
    if row.state != ApprovalState.PENDING.value:
        return Conflict(
            f"{row.subject_id} is no longer waiting for approval ({row.state})",
            field="subject_id",
            code="APPROVAL_DECIDED",
        )
    if party not in required(row):
        needed = " and ".join(p.value for p in required(row))
        return Forbidden(
            f"{row.subject_id} needs the approval of the {needed}, not the {party.value}",
            field="subject_id",
            code="NOT_AN_APPROVER",
        )
    if caller.label == row.requested_by:
        return Forbidden(
            "nobody may decide on their own request", field="subject_id", code="SELF_APPROVAL"
        )
    if party not in waiting_for(row):
        return Conflict(
            f"the {party.value} already decided on {row.subject_id}",
            field="subject_id",
            code="APPROVAL_DECIDED",
        )
    return None


def decide(
    session: Session,
    log: audit.AuditLog,
    caller: Principal,
    row: Approval,
    decision: Decision,
    *,
    grant_seconds: int | None = None,
    note: str | None = None,
) -> Decided | AlienError:
    """Record ``caller``'s decision. A refused attempt is audited and returned (the caller
    commits, then raises it), so that it stays in the trail."""
    actor = audit.actor_of(caller)
    party = party_of(caller)
    details: dict[str, object] = {"kind": row.subject_kind, "party": party.value}
    if note:
        details["note"] = note
    error = refusal(caller, row)
    if error is not None:
        log.record(
            session,
            audit.AuditEntry(
                actor=actor,
                action=f"approval.{'approve' if decision is Decision.APPROVED else 'deny'}",
                outcome=Outcome.DENIED,
                deployment=row.deployment_id,
                target=row.subject_id,
                details={**details, "code": error.code, "message": error.message},
            ),
        )
        return error
    now = utcnow()
    if party is Party.CUSTOMER:
        row.customer_decision, row.customer_by = decision.value, caller.label
    else:
        row.vendor_decision, row.vendor_by = decision.value, caller.label
    if grant_seconds is not None:
        row.grant_seconds = min(grant_seconds, row.grant_seconds or grant_seconds)
    if decision is Decision.DENIED:
        row.state, row.decided_at = ApprovalState.DENIED.value, now
    elif not waiting_for(row):
        row.state, row.decided_at = ApprovalState.APPROVED.value, now
    session.flush()
    details["state"] = row.state
    if row.grant_seconds is not None:
        details["grant_seconds"] = row.grant_seconds
    log.record(
        session,
        audit.AuditEntry(
            actor=actor,
            action=f"approval.{'approve' if decision is Decision.APPROVED else 'deny'}",
            outcome=Outcome.ALLOWED if decision is Decision.APPROVED else Outcome.DENIED,
            deployment=row.deployment_id,
            target=row.subject_id,
            details=details,
            time=now,
        ),
    )
    return Decided(row=row, party=party, decision=decision)


def withdraw(session: Session, subject_id: str) -> None:
    """The subject ended while waiting (cancelled, revoked, expired): nothing to decide now."""
    row = session.get(Approval, subject_id)
    if row is not None and row.state == ApprovalState.PENDING.value:
        row.state, row.decided_at = ApprovalState.WITHDRAWN.value, utcnow()
