"""Debug sessions: opening (role and policy checks), ending (close, revoke, TTL), listing.

A session is the unit of remote debugging: one engineer, one deployment, one stated reason, a
bounded lifetime, and a token of its own (``ax_dbg_…``, hashed at rest) that works only on that
session's tunnel and its own read/close routes while the session is live. Every state change is
audited in the same transaction; the requests a session proxies are audited by its tunnel
(:func:`record_requests`), which also keeps the session's running totals. The tunnel
(:mod:`alien.manager.debug_tunnel`) watches the session through the event hub and drops at once
when the session ends here.

States::

    pending_approval ──(approved: grant)──▶ active ──▶ closed | expired | revoked
           │
           └──▶ closed (cancelled by its user) | denied (deny) | revoked

What is allowed is the effective policy (the vendor's debug policy ∩ the customer's,
:mod:`alien.manager.services.policy`); who must approve, and the decisions, are
:mod:`alien.manager.services.approvals`; :func:`revoke_live` ends every live session of a
deployment (the customer switched access off) or of an API key (it was revoked).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alien.errors import AlienError, Conflict, Forbidden, NotFound
from alien.manager import tokens
from alien.manager.auth import LIVE_DEBUG_STATES, Principal, Role
from alien.manager.db import utcnow
from alien.manager.ids import has_prefix, new_id
from alien.manager.models import DebugSession, Deployment
from alien.manager.services import approvals, audit, aws_deployments
from alien.manager.services.audit import AuditEntry, AuditLog
from alien.manager.services.debug_policies import Channel, DebugMode
from alien.manager.services.deployments import group_names, resolve_deployment
from alien.manager.services.policy import effective_policy
from alien.manager.services.policy_effective import EffectivePolicy, Party
from alien.manager.tokens import TokenKind
from alien.protocol.audit import Actor, ActorKind, Outcome
from alien.protocol.deployment import DeploymentState

DEFAULT_TTL = 3600
MAX_REASON = 2000

AgentServes = Callable[[str], bool]
"""Whether an agent that serves debug tunnels is connected for a deployment id (pull model)."""


class SessionState(enum.StrEnum):
    PENDING_APPROVAL = "pending_approval"
    ACTIVE = "active"
    CLOSED = "closed"
    EXPIRED = "expired"
    REVOKED = "revoked"
    DENIED = "denied"


#: Where the session's token still authenticates (the auth module holds the one definition).
LIVE_STATES = frozenset(SessionState(state) for state in LIVE_DEBUG_STATES)


def session_key(session_id: str) -> str:
    """The event-hub key published whenever the session's state changes."""
    return f"debug_session:{session_id}"


@dataclass(frozen=True)
class OpenRequest:
    deployment: str
    reason: str
    ttl_seconds: int | None = None


@dataclass(frozen=True)
class Opened:
    row: DebugSession
    token: str = field(repr=False)


@dataclass(frozen=True)
class Refused:
    """The policy refused the session; the refusal is already in the audit trail."""

    error: AlienError


def channel_of(dep: Deployment) -> Channel:
    """The channel a deployment's debug traffic uses (its platform's)."""
    try:
        return Channel(dep.platform)
    except ValueError:
        return Channel.HTTP


def _policy_refusal(
    req: OpenRequest, policy: EffectivePolicy, channel: Channel, ttl: int
) -> AlienError | None:
    """Why the effective policy (the vendor's ∩ the customer's) refuses this session, if it
    does; the message names whose policy set the limit."""
    where = f"of {req.deployment!r}"
    if not policy.access:
        return Forbidden(
            f"the customer suspended all vendor access to {req.deployment!r}",
            field="deployment",
            code="ACCESS_SUSPENDED",
        )
    if policy.mode is DebugMode.FORBIDDEN:
        return Forbidden(
            f"{policy.source('mode')} {where} forbids debugging it",
            field="deployment",
            code="DEBUG_FORBIDDEN",
        )
    if channel not in policy.allowed_channels:
        return Forbidden(
            f"{policy.source('channels')} {where} does not allow the {channel.value!r} channel",
            field="deployment",
            code="DEBUG_CHANNEL_NOT_ALLOWED",
        )
    if ttl > policy.max_ttl_seconds:
        return Forbidden(
            f"ttl_seconds {ttl} is over the maximum of {policy.source('ttl')} {where}: "
            f"{policy.max_ttl_seconds}",
            field="ttl_seconds",
            code="DEBUG_TTL_TOO_LONG",
        )
    return None


def is_pull(session: Session, dep: Deployment) -> bool:
    """Whether the deployment is debugged through its agent (pull model): it has no push-model
    configuration. A deployment with one is always debugged through the manager (push)."""
    return aws_deployments.get_config(session, dep.id) is None


def _why_unavailable(dep: Deployment) -> str:
    """Why no agent can serve a pull-model deployment's session, as far as the manager knows."""
    if dep.state == DeploymentState.DELETED.value:
        return "it was torn down (its customer ran alien-deploy down): nothing runs there now"
    if dep.state == DeploymentState.DELETING.value:
        return "it is being torn down"
    return (
        "it has no push-model debug configuration ('alien deployments register-aws') and no "
        "agent serving debug tunnels is connected for it (is its alien-deploy running, with "
        "a debug.json? 'alien-deploy debug' on its machine says)"
    )


def open_session(
    session: Session,
    log: AuditLog,
    caller: Principal,
    req: OpenRequest,
    *,
    agent_serves: AgentServes = lambda _: False,
) -> Opened | Refused:
    """Check the deployment's policy and open a session (``active`` or ``pending_approval``).

    A policy refusal is recorded and returned (the caller commits, then raises its error), so a
    refused attempt stays in the audit trail. A deployment that cannot be debugged at all (no
    push-model configuration, and no agent serving debug tunnels connected: ``agent_serves``)
    raises ``Conflict`` ``DEBUG_UNAVAILABLE``.
    """
    dep = resolve_deployment(session, req.deployment, field="deployment", groups=caller.groups)
    if is_pull(session, dep) and not agent_serves(dep.id):
        raise Conflict(
            f"deployment {req.deployment!r} cannot be debugged: {_why_unavailable(dep)}",
            field="deployment",
            code="DEBUG_UNAVAILABLE",
        )
    policy = effective_policy(session, dep)
    channel = channel_of(dep)
    ttl = req.ttl_seconds or min(DEFAULT_TTL, policy.max_ttl_seconds)
    refusal = _policy_refusal(req, policy, channel, ttl)
    asked = {"reason": req.reason, "ttl_seconds": ttl, "channel": channel.value}
    if refusal is not None:
        details = {**asked, "code": refusal.code, "message": refusal.message}
        entry = AuditEntry(
            audit.actor_of(caller), "debug.session.open", Outcome.DENIED, dep.id, None, details
        )
        log.record(session, entry)
        return Refused(refusal)
    now = utcnow()
    pending = policy.mode is DebugMode.APPROVAL_REQUIRED
    state = SessionState.PENDING_APPROVAL if pending else SessionState.ACTIVE
    issued = tokens.issue(TokenKind.DEBUG_SESSION)
    group = group_names(session, {dep.group_id}).get(dep.group_id, "")
    row = DebugSession(
        id=new_id("dbg"),
        deployment_id=dep.id,
        deployment_ref=f"{group}/{dep.name}",
        channel=channel.value,
        actor=caller.label,
        reason=req.reason,
        state=state.value,
        ttl_seconds=ttl,
        lookup=issued.lookup,
        token_hash=issued.hash,
        created_at=now,
        started_at=None if pending else now,
        expires_at=None if pending else now + timedelta(seconds=ttl),
        request_count=0,
        bytes_in=0,
        bytes_out=0,
    )
    session.add(row)
    session.flush()
    details = {**asked, "state": state.value, "deployment_ref": row.deployment_ref}
    outcome = Outcome.SUCCEEDED if pending else Outcome.ALLOWED
    log.record(
        session,
        AuditEntry(audit.actor_of(caller), "debug.session.open", outcome, dep.id, row.id, details),
    )
    if pending:
        approvals.request(
            session,
            log,
            kind=approvals.SubjectKind.DEBUG_SESSION,
            subject_id=row.id,
            deployment_id=dep.id,
            requested_by=audit.actor_of(caller),
            summary=f"debug {row.deployment_ref} for {ttl} s ({channel.value}): {req.reason}",
            parties=policy.approvers or (Party.VENDOR,),
        )
    return Opened(row=row, token=issued.value)


def get_session(session: Session, session_id: str, *, for_update: bool = False) -> DebugSession:
    row = None
    if has_prefix(session_id, "dbg"):
        row = session.get(
            DebugSession, session_id, with_for_update=for_update, populate_existing=for_update
        )
    if row is None:
        raise NotFound(f"no debug session {session_id!r}", field="session_id")
    return row


def effective_state(row: DebugSession, now: datetime | None = None) -> SessionState:
    """The state as of ``now``: an active session past its expiry is ``expired`` even before
    anyone wrote that down."""
    state = SessionState(row.state)
    expires = row.expires_at
    if state is SessionState.ACTIVE and expires is not None and expires <= (now or utcnow()):
        return SessionState.EXPIRED
    return state


@dataclass(frozen=True)
class _Ending:
    state: SessionState
    action: str
    actor: Actor
    reason: str
    at: datetime


def _end(session: Session, log: AuditLog, row: DebugSession, ending: _Ending) -> None:
    if SessionState(row.state) is SessionState.PENDING_APPROVAL:
        approvals.withdraw(session, row.id)  # nothing left to decide
    row.state = ending.state.value
    row.ended_at = ending.at
    row.ended_by = None if ending.actor.kind is ActorKind.SYSTEM else ending.actor.id
    row.end_reason = ending.reason
    started = row.started_at or row.created_at
    details = {
        "state": ending.state.value,
        "exit_code": row.exit_code,
        "end_reason": ending.reason,
        "duration_seconds": round(max(0.0, (ending.at - started).total_seconds()), 3),
    }
    log.record(
        session,
        AuditEntry(
            actor=ending.actor,
            action=ending.action,
            outcome=Outcome.SUCCEEDED,
            deployment=row.deployment_id,
            target=row.id,
            details=details,
            time=ending.at,
        ),
    )


def expire_if_due(
    session: Session, log: AuditLog, row: DebugSession, now: datetime | None = None
) -> bool:
    """Write down an expiry that is due (in the caller's write transaction); ``True`` if so."""
    active = SessionState(row.state) is SessionState.ACTIVE
    if not active or effective_state(row, now) is not SessionState.EXPIRED:
        return False
    assert row.expires_at is not None
    ending = _Ending(
        SessionState.EXPIRED,
        "debug.session.expire",
        audit.SYSTEM,
        "the session's TTL elapsed",
        row.expires_at,
    )
    _end(session, log, row, ending)
    return True


def expire_due(session: Session, log: AuditLog, now: datetime | None = None) -> list[str]:
    """Write down every due expiry; returns the ids that expired now."""
    now = now or utcnow()
    due = session.scalars(
        select(DebugSession)
        .where(DebugSession.state == SessionState.ACTIVE.value, DebugSession.expires_at <= now)
        .order_by(DebugSession.expires_at, DebugSession.id)
        .with_for_update()
    )
    return [row.id for row in due if expire_if_due(session, log, row, now)]


def _check_may_close(caller: Principal, row: DebugSession) -> None:
    """The session's own token, its opener, or an admin may close it."""
    if caller.kind is TokenKind.DEBUG_SESSION or caller.role is Role.ADMIN:
        return
    if caller.label != row.actor:
        raise Forbidden("only the session's opener or an admin may close it", field="session_id")


def close_session(
    session: Session, log: AuditLog, caller: Principal, row: DebugSession, *, exit_code: int | None
) -> DebugSession:
    """End a session on its user's request, recording the child's exit code.

    Idempotent: closing a session that already ended (revoked, expired, closed) changes only a
    missing exit code, so the CLI can always report how its command ended.
    """
    _check_may_close(caller, row)
    expire_if_due(session, log, row)
    if row.exit_code is None and exit_code is not None:
        row.exit_code = exit_code
    state = SessionState(row.state)
    if state in LIVE_STATES:
        pending = state is SessionState.PENDING_APPROVAL
        action = "debug.session.cancel" if pending else "debug.session.close"
        reason = "cancelled by its user" if pending else "closed by its user"
        ending = _Ending(SessionState.CLOSED, action, audit.actor_of(caller), reason, utcnow())
        _end(session, log, row, ending)
    session.flush()
    return row


def revoke_session(
    session: Session, log: AuditLog, caller: Principal, row: DebugSession, *, reason: str | None
) -> DebugSession:
    """End a live session at once (admin). Idempotent on a session that already ended."""
    expire_if_due(session, log, row)
    if SessionState(row.state) in LIVE_STATES:
        ending = _Ending(
            SessionState.REVOKED,
            "debug.session.revoke",
            audit.actor_of(caller),
            reason or "revoked by an admin",
            utcnow(),
        )
        _end(session, log, row, ending)
    session.flush()
    return row


def ensure_active(row: DebugSession) -> None:
    """Refuse a tunnel on a session that is not (or no longer) active."""
    state = effective_state(row)
    if state is SessionState.PENDING_APPROVAL:
        raise Conflict(
            f"debug session {row.id} is waiting for approval",
            field="session_id",
            code="SESSION_NOT_ACTIVE",
        )
    if state is not SessionState.ACTIVE:
        raise Conflict(
            f"debug session {row.id} has ended ({state.value})",
            field="session_id",
            code="SESSION_ENDED",
        )


def list_sessions(
    session: Session,
    *,
    deployment_id: str | None = None,
    state: SessionState | None = None,
    actor: str | None = None,
    limit: int = 100,
    groups: Collection[str] | None = None,
) -> list[DebugSession]:
    """Newest first; ``groups`` (a group-scoped caller's): only sessions on deployments there."""
    query = select(DebugSession).order_by(DebugSession.created_at.desc(), DebugSession.id.desc())
    if groups is not None:
        members = select(Deployment.id).where(Deployment.group_id.in_(groups))
        query = query.where(DebugSession.deployment_id.in_(members))
    if deployment_id is not None:
        query = query.where(DebugSession.deployment_id == deployment_id)
    if state is not None:
        query = query.where(DebugSession.state == state.value)
    if actor is not None:
        query = query.where(DebugSession.actor == actor)
    return list(session.scalars(query.limit(limit)))


@dataclass(frozen=True)
class RequestRecord:
    """One proxied request, as the tunnel saw it (never its headers or body)."""

    time: datetime
    service: str
    operation: str
    method: str
    status: int
    bytes_in: int
    bytes_out: int
    duration_ms: float
    refused: bool = False
    error: str | None = None

    @property
    def outcome(self) -> Outcome:
        if self.refused:
            return Outcome.DENIED
        if self.error is not None:  # e.g. a response cut short by the session's end
            return Outcome.FAILED
        return Outcome.SUCCEEDED if self.status < 400 else Outcome.FAILED


MAX_OPERATION = 200
MAX_ERROR = 1000


def _request_entry(actor: Actor, deployment_id: str | None, r: RequestRecord) -> AuditEntry:
    operation = _printable(r.operation, MAX_OPERATION)
    return AuditEntry(
        actor=actor,
        action="debug.request",
        outcome=r.outcome,
        deployment=deployment_id,
        target=f"{_printable(r.service, MAX_OPERATION)}:{operation}",
        details={
            "service": r.service,
            "operation": operation,
            "method": r.method,
            "status": r.status,
            "bytes_in": r.bytes_in,
            "bytes_out": r.bytes_out,
            "duration_ms": round(r.duration_ms, 3),
            **({"error": _printable(r.error, MAX_ERROR)} if r.error else {}),
        },
        time=r.time,
    )


def _printable(text: str, limit: int) -> str:
    """What the trail can hold of text a caller chose (an operation named in a request, an
    error echoing it): printable, at most ``limit`` characters. A control character or an
    overlong name would fail the validation of every record written in the same batch."""
    shown = "".join(c if c.isprintable() else "\N{REPLACEMENT CHARACTER}" for c in text)
    return shown[:limit] or "?"


def record_requests(
    session: Session, log: AuditLog, session_id: str, records: list[RequestRecord]
) -> None:
    """Append proxied requests to the audit trail (actor: the session; target: the AWS
    operation) and add them to the session's totals."""
    if not records:
        return
    row = get_session(session, session_id)
    actor = audit.debug_session_actor(row.id)
    log.append(session, (_request_entry(actor, row.deployment_id, r) for r in records))
    session.execute(
        update(DebugSession)
        .where(DebugSession.id == session_id)
        .values(
            request_count=DebugSession.request_count + len(records),
            bytes_in=DebugSession.bytes_in + sum(r.bytes_in for r in records),
            bytes_out=DebugSession.bytes_out + sum(r.bytes_out for r in records),
        )
    )


# --- approvals and revocation (access governance) ----------------------------------------------


def grant(
    session: Session, log: AuditLog, row: DebugSession, *, ttl_seconds: int | None
) -> DebugSession:
    """An approved session starts now: active for ``ttl_seconds`` (the approver's ``--for``)
    or the TTL it asked for, never longer than the effective policy allows at this moment."""
    if SessionState(row.state) is not SessionState.PENDING_APPROVAL:
        return row
    dep = session.get(Deployment, row.deployment_id) if row.deployment_id else None
    if dep is None:
        return deny(session, log, audit.SYSTEM, row, "the deployment no longer exists")
    policy = effective_policy(session, dep)
    now = utcnow()
    ttl = min(ttl_seconds or row.ttl_seconds, row.ttl_seconds, policy.max_ttl_seconds)
    row.state = SessionState.ACTIVE.value
    row.ttl_seconds = ttl
    row.started_at = now
    row.expires_at = now + timedelta(seconds=ttl)
    log.record(
        session,
        AuditEntry(
            actor=audit.SYSTEM,
            action="debug.session.start",
            outcome=Outcome.ALLOWED,
            deployment=row.deployment_id,
            target=row.id,
            details={"ttl_seconds": ttl, "approved": True},
            time=now,
        ),
    )
    session.flush()
    return row


def deny(
    session: Session, log: AuditLog, actor: Actor, row: DebugSession, reason: str
) -> DebugSession:
    """A session waiting for approval was denied: it ends without ever starting."""
    if SessionState(row.state) is SessionState.PENDING_APPROVAL:
        ending = _Ending(SessionState.DENIED, "debug.session.deny", actor, reason, utcnow())
        _end(session, log, row, ending)
        session.flush()
    return row


def revoke_live(
    session: Session,
    log: AuditLog,
    caller: Principal,
    *,
    reason: str,
    deployment_id: str | None = None,
    opened_by: str | None = None,
) -> list[str]:
    """Revoke every live session of a deployment (the customer switched access off) or opened
    by a key (the key was revoked); returns their ids, to publish after the commit."""
    query = select(DebugSession).where(DebugSession.state.in_([s.value for s in LIVE_STATES]))
    if deployment_id is not None:
        query = query.where(DebugSession.deployment_id == deployment_id)
    if opened_by is not None:
        query = query.where(DebugSession.actor == opened_by)
    rows = list(session.scalars(query.order_by(DebugSession.id).with_for_update()))
    for row in rows:
        revoke_session(session, log, caller, row, reason=reason)
    return [row.id for row in rows]
