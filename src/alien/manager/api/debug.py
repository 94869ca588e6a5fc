"""``/v1/debug-policies`` and ``/v1/debug-sessions``: who may debug what, and the sessions.

Opening a session checks the caller's role (admin, debugger) and the deployment's debug policy;
the answer carries the session's own token, shown only there. Every state change is published on
the event hub right after its commit, which is what ends a live tunnel at once and wakes
``…/wait``. The tunnel itself is in :mod:`alien.manager.debug_tunnel`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alien.errors import AlienError, NotFound, ValidationError
from alien.manager.api.agent import agent_serves
from alien.manager.api.debug_views import Audit, opened_out, policy_out, session_out
from alien.manager.api.deps import Core, require
from alien.manager.auth import Action, Principal, authorize
from alien.manager.core import ManagerCore
from alien.manager.debug_credentials import RoleTarget, warm_credentials
from alien.manager.debug_schemas import (
    DebugPolicyIn,
    DebugPolicyOut,
    DebugSessionClose,
    DebugSessionCreate,
    DebugSessionOpened,
    DebugSessionOut,
    DebugSessionRevoke,
)
from alien.manager.models import DebugSession
from alien.manager.schemas import MAX_SEQ, Page
from alien.manager.services import audit, aws_deployments, debug_policies, debug_sessions
from alien.manager.services.debug_sessions import SessionState, session_key
from alien.manager.services.deployments import resolve_deployment
from alien.protocol.agent_channel import CAPABILITY_DEBUG_TUNNELS
from alien.protocol.audit import AuditRecord

router = APIRouter(tags=["debugging"])
PolicyReader = Annotated[Principal, Depends(require(Action.DEBUG_POLICY_READ))]
PolicyWriter = Annotated[Principal, Depends(require(Action.DEBUG_POLICY_WRITE))]
Opener = Annotated[Principal, Depends(require(Action.DEBUG_OPEN))]
Lister = Annotated[Principal, Depends(require(Action.DEBUG_SESSIONS_LIST))]
SessionReader = Annotated[Principal, Depends(require(Action.DEBUG_SESSION_READ))]
Closer = Annotated[Principal, Depends(require(Action.DEBUG_SESSION_CLOSE))]
Revoker = Annotated[Principal, Depends(require(Action.DEBUG_SESSION_REVOKE))]

MAX_LIST = 1000


# --- policies ----------------------------------------------------------------------------------


@router.get("/v1/debug-policies/{ref:path}", response_model=DebugPolicyOut)
def get_policy(ref: str, core: Core, caller: PolicyReader) -> DebugPolicyOut:
    """The deployment's debug policy (the defaults when none was set: allowed, 1 h, every
    channel)."""
    with core.db.read() as session:
        dep = resolve_deployment(session, ref, groups=caller.groups)
        return policy_out(debug_policies.get_policy(session, dep))


@router.put("/v1/debug-policies/{ref:path}", response_model=DebugPolicyOut)
def set_policy(
    ref: str, body: DebugPolicyIn, core: Core, log: Audit, caller: PolicyWriter
) -> DebugPolicyOut:
    """Replace the deployment's debug policy. Sessions already open are not affected (revoke
    them if they must end)."""
    with core.db.write() as session:
        dep = resolve_deployment(session, ref, groups=caller.groups)
        view = debug_policies.set_policy(
            session,
            log,
            caller,
            dep,
            mode=body.mode,
            max_ttl_seconds=body.max_ttl_seconds,
            allowed_channels=body.allowed_channels,
        )
        return policy_out(view)


# --- sessions ----------------------------------------------------------------------------------


def _role_to_warm(session: Session, row: DebugSession) -> RoleTarget | None:
    """The role a session's tunnel will assume, if it is push-model and may connect now."""
    if SessionState(row.state) is not SessionState.ACTIVE or row.deployment_id is None:
        return None
    config = aws_deployments.get_config(session, row.deployment_id)
    return None if config is None else RoleTarget.of(row.id, config)


def _open(
    core: ManagerCore,
    log: audit.AuditLog,
    caller: Principal,
    request: debug_sessions.OpenRequest,
    serves: Callable[[str], bool],
) -> tuple[DebugSessionOpened, RoleTarget | None]:
    refusal: AlienError | None = None
    with core.db.write() as session:
        result = debug_sessions.open_session(session, log, caller, request, agent_serves=serves)
        if isinstance(result, debug_sessions.Opened):
            return opened_out(result), _role_to_warm(session, result.row)
        refusal = result.error  # committed with its audit record, then raised
    raise refusal


@router.post("/v1/debug-sessions", status_code=201, response_model=DebugSessionOpened)
async def open_session(
    body: DebugSessionCreate, core: Core, log: Audit, caller: Opener, http: Request
) -> DebugSessionOpened:
    """Open a session (``active``, or ``pending_approval`` when the policy requires approval).

    403 ``DEBUG_FORBIDDEN`` / ``DEBUG_CHANNEL_NOT_ALLOWED`` / ``DEBUG_TTL_TOO_LONG`` when the
    policy refuses (the refusal is audited); 409 ``DEBUG_UNAVAILABLE`` for a deployment that
    can be debugged neither in push mode nor through a connected agent (pull mode). A push-model
    session granted at once starts assuming its role now, for its tunnel
    (:mod:`alien.manager.debug_credentials`)."""
    request = debug_sessions.OpenRequest(
        deployment=body.deployment, reason=body.reason, ttl_seconds=body.ttl_seconds
    )
    serves = partial(agent_serves, http, capability=CAPABILITY_DEBUG_TUNNELS)
    opened, role = await run_in_threadpool(_open, core, log, caller, request, serves)
    if role is not None:
        warm_credentials(http.app.state).warm(opened.id, role)
    return opened


@router.get("/v1/debug-sessions", response_model=Page[DebugSessionOut])
def list_sessions(
    core: Core,
    log: Audit,
    caller: Lister,
    deployment: Annotated[
        str | None, Query(description="deployment id, group/name or name")
    ] = None,
    state: SessionState | None = None,
    actor: Annotated[str | None, Query(max_length=40, description="key id of the opener")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIST)] = 100,
) -> Page[DebugSessionOut]:
    """Newest first. Expiries that are due are written down (and audited) first."""
    with core.db.write() as session:
        expired = debug_sessions.expire_due(session, log)
        scope = caller.groups
        dep_id = resolve_deployment(session, deployment, groups=scope).id if deployment else None
        rows = debug_sessions.list_sessions(
            session, deployment_id=dep_id, state=state, actor=actor, limit=limit, groups=scope
        )
        out = Page(items=[session_out(r) for r in rows])
    core.hub.publish(*(session_key(i) for i in expired))
    return out


def _visible_session(
    session: Session,
    caller: Principal,
    action: Action,
    session_id: str,
    *,
    for_update: bool = False,
) -> DebugSession:
    """The session, if ``caller`` may take ``action`` on it: a session token only on its own
    session, a group-scoped key only on sessions of deployments in its groups (else 404, as for
    a session that does not exist)."""
    row = debug_sessions.get_session(session, session_id, for_update=for_update)
    authorize(
        caller,
        action,
        sessions=[row.id],
        deployments=[row.deployment_id] if row.deployment_id else [],
        missing=NotFound(f"no debug session {session_id!r}", field="session_id"),
    )
    return row


def _read(core: ManagerCore, caller: Principal, session_id: str) -> DebugSessionOut:
    with core.db.read() as session:
        return session_out(_visible_session(session, caller, Action.DEBUG_SESSION_READ, session_id))


@router.get("/v1/debug-sessions/{session_id}", response_model=DebugSessionOut)
def get_session(session_id: str, core: Core, caller: SessionReader) -> DebugSessionOut:
    return _read(core, caller, session_id)


@router.get("/v1/debug-sessions/{session_id}/wait", response_model=DebugSessionOut)
async def wait_session(
    session_id: str,
    core: Core,
    caller: SessionReader,
    known: Annotated[
        SessionState, Query(description="answer once the session is no longer in this state")
    ] = SessionState.PENDING_APPROVAL,
    timeout: Annotated[float, Query(ge=0, description="seconds to wait at most")] = 30.0,
) -> DebugSessionOut:
    """Long-poll until the session's state differs from ``known`` (e.g. an approval arrived, or
    the session ended), or ``timeout`` seconds pass; answers the session either way."""
    if timeout > core.settings.max_wait:
        raise ValidationError(
            f"timeout may be at most {core.settings.max_wait:g} seconds", field="timeout"
        )
    deadline = time.monotonic() + timeout
    with core.hub.subscribe(session_key(session_id)) as sub:
        while True:
            out = await run_in_threadpool(_read, core, caller, session_id)
            remaining = deadline - time.monotonic()
            if out.state is not known or remaining <= 0:
                return out
            if out.state is SessionState.ACTIVE and out.expires_at is not None:
                until_expiry = out.expires_at.timestamp() - time.time()
                remaining = min(remaining, max(until_expiry, 0.0) + 0.01)
            await sub.wait(remaining)


@router.post("/v1/debug-sessions/{session_id}/close", response_model=DebugSessionOut)
def close_session(
    session_id: str,
    core: Core,
    log: Audit,
    caller: Closer,
    body: DebugSessionClose | None = None,
) -> DebugSessionOut:
    """End the session, reporting the debugged command's ``exit_code``. Its opener, an admin,
    or the session's own token. Idempotent: an ended session keeps its state and only gains a
    missing exit code."""
    exit_code = body.exit_code if body is not None else None
    with core.db.write() as session:
        row = _visible_session(
            session, caller, Action.DEBUG_SESSION_CLOSE, session_id, for_update=True
        )
        closed = debug_sessions.close_session(session, log, caller, row, exit_code=exit_code)
        out = session_out(closed)
    core.hub.publish(session_key(session_id))
    return out


@router.post("/v1/debug-sessions/{session_id}/revoke", response_model=DebugSessionOut)
def revoke_session(
    session_id: str,
    core: Core,
    log: Audit,
    caller: Revoker,
    body: DebugSessionRevoke | None = None,
) -> DebugSessionOut:
    """End a live session at once (admin): its token stops working and its tunnel is closed
    within a second, cutting off requests in flight."""
    reason = body.reason if body is not None else None
    with core.db.write() as session:
        row = _visible_session(
            session, caller, Action.DEBUG_SESSION_REVOKE, session_id, for_update=True
        )
        revoked = debug_sessions.revoke_session(session, log, caller, row, reason=reason)
        out = session_out(revoked)
    core.hub.publish(session_key(session_id))
    return out


@router.get("/v1/debug-sessions/{session_id}/requests", response_model=Page[AuditRecord])
def list_requests(
    session_id: str,
    core: Core,
    caller: SessionReader,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="only records with a larger seq")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=audit.MAX_PAGE)] = 100,
) -> Page[AuditRecord]:
    """The requests proxied in this session (audit records ``debug.request``), oldest first."""
    with core.db.read() as session:
        _visible_session(session, caller, Action.DEBUG_SESSION_READ, session_id)
        rows = audit.list_records(
            session,
            audit.AuditFilter(action="debug.request", actor=session_id, after=after, limit=limit),
        )
        return Page(items=rows)
