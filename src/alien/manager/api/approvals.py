"""``/v1/approvals``: what waits for approval, and the decisions.

The customer decides with the deployment's own token (``alien-deploy approve|deny``), a vendor
approver with an API key whose role may decide approvals; each sees only what they may decide
on or read (a deployment token: its own deployment). A decision that completes an approval takes
effect before the answer: an approved debug session becomes active (for ``grant_seconds`` when
given, never longer than the policy allows) and its waiting CLI is woken; a denied one ends; an
approved command is handed out, a denied one cancelled. Refused attempts (not an approver, their
own request, already decided) are audited too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, StringConstraints
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alien.errors import AlienError, NotFound, ValidationError
from alien.manager.api.debug_views import Audit
from alien.manager.api.deps import Core, require
from alien.manager.auth import Action, Principal, authorize
from alien.manager.commands.center import center_of
from alien.manager.core import ManagerCore
from alien.manager.models import Approval
from alien.manager.schemas import Page
from alien.manager.schemas import Request as RequestBody
from alien.manager.services import approvals, audit, debug_sessions
from alien.manager.services.approvals import ApprovalState, Decision, SubjectKind
from alien.manager.services.audit import AuditLog
from alien.manager.services.debug_policies import MAX_TTL_LIMIT
from alien.manager.services.deployments import own_deployment, resolve_deployment
from alien.manager.tokens import TokenKind

router = APIRouter(tags=["access governance"])
Reader = Annotated[Principal, Depends(require(Action.APPROVALS_READ))]
Decider = Annotated[Principal, Depends(require(Action.APPROVALS_DECIDE))]

Note = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500, pattern=r"^[^\x00-\x1f\x7f]+$"),
    Field(description="why (recorded in the audit trail); one line"),
]


class ApproveIn(RequestBody):
    grant_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TTL_LIMIT,
        description="debug sessions: how long it may run (default: the TTL it asked for)",
    )
    note: Note | None = None


class DenyIn(RequestBody):
    note: Note | None = None


class ApprovalOut(BaseModel):
    subject_id: str = Field(description="the dbg_… session or cmd_… command waiting")
    kind: SubjectKind
    deployment_id: str
    requested_by: str
    summary: str
    state: ApprovalState
    required: list[str] = Field(description="parties that must approve: customer, vendor")
    waiting_for: list[str] = Field(description="required parties that have not decided yet")
    customer_decision: str | None
    customer_by: str | None
    vendor_decision: str | None
    vendor_by: str | None
    grant_seconds: int | None
    created_at: datetime
    decided_at: datetime | None


def approval_out(row: Approval) -> ApprovalOut:
    return ApprovalOut(
        subject_id=row.subject_id,
        kind=SubjectKind(row.subject_kind),
        deployment_id=row.deployment_id,
        requested_by=row.requested_by,
        summary=row.summary,
        state=ApprovalState(row.state),
        required=[p.value for p in approvals.required(row)],
        waiting_for=[p.value for p in approvals.waiting_for(row)]
        if row.state == ApprovalState.PENDING.value
        else [],
        customer_decision=row.customer_decision,
        customer_by=row.customer_by,
        vendor_decision=row.vendor_decision,
        vendor_by=row.vendor_by,
        grant_seconds=row.grant_seconds,
        created_at=row.created_at,
        decided_at=row.decided_at,
    )


def _visible(session: Session, caller: Principal, subject_id: str, action: Action) -> Approval:
    """The approval, if the caller may see it (another deployment's is "not found")."""
    missing = NotFound(f"no approval for {subject_id!r}", field="subject_id")
    row = approvals.find(session, subject_id)
    if row is None:
        raise missing
    authorize(caller, action, deployments=[row.deployment_id], missing=missing)
    return row


@router.get("/v1/approvals", response_model=Page[ApprovalOut])
def list_approvals(
    core: Core,
    caller: Reader,
    deployment: Annotated[
        str | None, Query(description="deployment id, group/name or name")
    ] = None,
    state: ApprovalState | None = ApprovalState.PENDING,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Page[ApprovalOut]:
    """Oldest first; pending ones by default. A deployment token sees its own deployment's."""
    with core.db.read() as session:
        if caller.kind is TokenKind.DEPLOYMENT:
            dep_id = own_deployment(session, caller, deployment).id
        elif deployment:
            dep_id = resolve_deployment(session, deployment, groups=caller.groups).id
            authorize(caller, Action.APPROVALS_READ, deployments=[dep_id])
        else:
            dep_id = None
        rows = approvals.list_approvals(
            session, deployment_id=dep_id, state=state, limit=limit, groups=caller.groups
        )
        return Page(items=[approval_out(r) for r in rows])


@router.get("/v1/approvals/{subject_id}", response_model=ApprovalOut)
def get_approval(subject_id: str, core: Core, caller: Reader) -> ApprovalOut:
    with core.db.read() as session:
        return approval_out(_visible(session, caller, subject_id, Action.APPROVALS_READ))


@router.post("/v1/approvals/{subject_id}/approve", response_model=ApprovalOut)
async def approve(
    subject_id: str,
    request: Request,
    core: Core,
    log: Audit,
    caller: Decider,
    body: ApproveIn | None = None,
) -> ApprovalOut:
    """Approve as the customer (deployment token) or as a vendor approver (API key)."""
    body = body or ApproveIn()
    return await _decide(
        request, core, log, caller, subject_id, Decision.APPROVED, body.grant_seconds, body.note
    )


@router.post("/v1/approvals/{subject_id}/deny", response_model=ApprovalOut)
async def deny(
    subject_id: str,
    request: Request,
    core: Core,
    log: Audit,
    caller: Decider,
    body: DenyIn | None = None,
) -> ApprovalOut:
    """Deny: the session ends (``denied``) or the command is cancelled."""
    note = body.note if body is not None else None
    return await _decide(request, core, log, caller, subject_id, Decision.DENIED, None, note)


async def _decide(
    request: Request,
    core: ManagerCore,
    log: AuditLog,
    caller: Principal,
    subject_id: str,
    decision: Decision,
    grant_seconds: int | None,
    note: str | None,
) -> ApprovalOut:
    out = await run_in_threadpool(
        _decide_in_db, core, log, caller, subject_id, decision, grant_seconds, note
    )
    if out.kind is SubjectKind.DEBUG_SESSION:
        core.hub.publish(debug_sessions.session_key(subject_id))
    elif out.state is not ApprovalState.PENDING:
        actor = audit.actor_of(caller)
        approved = out.state is ApprovalState.APPROVED
        await center_of(request).decided(subject_id, actor, approved=approved)
    return out


def _decide_in_db(
    core: ManagerCore,
    log: AuditLog,
    caller: Principal,
    subject_id: str,
    decision: Decision,
    grant_seconds: int | None,
    note: str | None,
) -> ApprovalOut:
    refusal: AlienError | None = None
    with core.db.write() as session:
        row = _visible(session, caller, subject_id, Action.APPROVALS_DECIDE)
        session.refresh(row, with_for_update=True)
        if grant_seconds is not None and row.subject_kind != SubjectKind.DEBUG_SESSION.value:
            raise ValidationError(
                "grant_seconds limits how long a debug session runs; a command has no such "
                "limit to grant",
                field="grant_seconds",
            )
        result = approvals.decide(
            session, log, caller, row, decision, grant_seconds=grant_seconds, note=note
        )
        if isinstance(result, AlienError):
            refusal = result  # committed with its audit record, then raised
        else:
            if result.complete and row.subject_kind == SubjectKind.DEBUG_SESSION.value:
                _settle_session(session, log, caller, row, note)
            out = approval_out(row)
    if refusal is not None:
        raise refusal
    return out


def _settle_session(
    session: Session, log: AuditLog, caller: Principal, row: Approval, note: str | None
) -> None:
    dbg = debug_sessions.get_session(session, row.subject_id, for_update=True)
    if row.state == ApprovalState.APPROVED.value:
        granted = debug_sessions.grant(session, log, dbg, ttl_seconds=row.grant_seconds)
        if row.grant_seconds is not None:
            # What the session got: an approver's --for only shortens what it asked for, within
            # the policy's maximum (the answer said "approved for 7200s" of a 600 s session).
            row.grant_seconds = granted.ttl_seconds
        return
    party = approvals.party_of(caller).value
    reason = f"denied by the {party} ({caller.label})" + (f": {note}" if note else "")
    debug_sessions.deny(session, log, audit.actor_of(caller), dbg, reason)
