"""``/v1/debug-sessions/{id}/tunnel``: the WebSocket a debug session's traffic flows through.

Push model: the CLI's loopback proxy sends each request it accepted as one stream of a tunnel
(:mod:`alien.tunnel`) over this WebSocket; the manager answers each stream by re-signing the
request with short-lived credentials of the deployment's management role (one
``AssumeRoleCredentialProvider`` per tunnel, named after the session in the customer's
CloudTrail, refreshed ahead of expiry, and usually assumed already when the session was
granted: :mod:`alien.manager.debug_credentials`) and streaming it to AWS, within the
deployment's service allowlist. Every request is audited (:mod:`alien.manager.debug_audit`).

Pull model (a deployment without a push-model configuration, run by an agent): the manager
has no way into the customer's environment, so it asks the deployment's agent — over the
agent's own channel, ``tunnel_open`` — to dial a second WebSocket,
``/v1/agent/debug-tunnels/{id}``, with its deployment token and a one-time credential. Each
stream the CLI opens is opened again on the agent's tunnel with the same metadata and the two are
spliced with :func:`~alien.tunnel.relay.relay` (flow control end to end, nothing buffered); the
agent answers it from inside the environment (AWS re-signed with its own identity, allowlisted
HTTP egress). The manager only watches the bytes go by to audit each request (method, target,
status, sizes, whether the agent refused it). Ending the session closes both legs.

The handshake is authenticated by the session's own token (``ax_dbg_…``) and accepted only while
the session is active. Live tunnels are held in memory, each watching its session on the event
hub: a close, a revocation or the TTL timer ends the tunnel at once — streams in flight are cut,
the peer is told why in a GOAWAY (code :data:`SESSION_ENDED`), and the WebSocket is dropped.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Protocol, cast

from fastapi import APIRouter, Depends, WebSocket
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from alien.errors import AlienError, Conflict
from alien.manager.api.agent import _deny, pushers_of
from alien.manager.api.deps import get_core, require
from alien.manager.auth import Action, Principal, authorize
from alien.manager.core import ManagerCore
from alien.manager.db import utcnow
from alien.manager.debug_audit import AuditingUpstream, RequestRecorder
from alien.manager.debug_credentials import RoleTarget, warm_credentials
from alien.manager.debug_dials import AGENT_DIAL_TIMEOUT, CREDENTIAL_HEADER, Dial, dials_of
from alien.manager.debug_http_leg import HttpLeg
from alien.manager.events import Subscription
from alien.manager.models import Deployment
from alien.manager.pull_audit import TUNNEL_ENDED, RelayedExchange, SplicedAudit
from alien.manager.services import aws_deployments, debug_sessions
from alien.manager.services.audit import AuditLog
from alien.manager.services.debug_policies import Channel
from alien.manager.services.debug_sessions import RequestRecord, SessionState, session_key
from alien.manager.services.policy import effective_policy
from alien.platforms.aws.credentials import AssumeRoleCredentialProvider
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.upstream import AwsResigningUpstream
from alien.protocol.agent_channel import (
    CAPABILITY_DEBUG_LIMITS,
    CAPABILITY_DEBUG_SPLICE,
    CAPABILITY_DEBUG_TUNNELS,
    DebugLimits,
    TunnelOpen,
    agent_tunnel_path,
)
from alien.protocol.errors import TunnelError
from alien.protocol.frames import ErrorCode
from alien.tunnel import WIDE_WINDOWS, TunnelConnection, TunnelStream
from alien.tunnel.errors import TunnelStreamReset
from alien.tunnel.http import http_handler
from alien.tunnel.relay import relay
from alien.tunnel.splice import Side, TunnelSplice
from alien.tunnel.starlette_transport import StarletteTransport
from alien.tunnel.transport import MessageTransport

log = logging.getLogger("alien.manager.debug")
router = APIRouter(tags=["debugging"])
Tunneller = Annotated[Principal, Depends(require(Action.DEBUG_TUNNEL))]
Agent = Annotated[Principal, Depends(require(Action.AGENT))]

SESSION_ENDED = 0x100
"""GOAWAY code (application range) the manager sends when the session ended under the tunnel."""
SPLICE_SIDES: dict[Side, str] = {
    "client": "the debugging client",
    "server": "the deployment's agent",
}


@dataclass(frozen=True)
class TunnelPlan:
    """What serving one session's tunnel needs, read once when it opens."""

    session_id: str
    expires_at: datetime
    policy: AwsEndpointPolicy
    role: RoleTarget


@dataclass(frozen=True)
class PullPlan:
    """A session debugged through its deployment's agent (no push-model configuration), and
    what the deployment's effective policy lets it reach there (read when the tunnel opens)."""

    session_id: str
    deployment_id: str
    expires_at: datetime
    limits: DebugLimits


PULL_CHANNELS = frozenset(
    {Channel.AWS, Channel.GCP, Channel.KUBERNETES, Channel.AZURE, Channel.HTTP}
)
"""The channels an agent can serve: limits naming all of them (and no egress list) narrow
nothing, so an agent that cannot apply limits may still serve such a session."""


def _limits(session: Session, dep: Deployment) -> DebugLimits:
    policy = effective_policy(session, dep)
    return DebugLimits(
        channels=tuple(c.value for c in policy.allowed_channels if c in PULL_CHANNELS),
        egress_allow=policy.egress_allow,
    )


def _narrows(limits: DebugLimits) -> bool:
    return limits.egress_allow is not None or not set(limits.channels) >= PULL_CHANNELS


def _plan(core: ManagerCore, session_id: str) -> TunnelPlan | PullPlan:
    with core.db.read() as session:
        row = debug_sessions.get_session(session, session_id)
        debug_sessions.ensure_active(row)
        if row.deployment_id is None or row.expires_at is None:
            raise Conflict(
                f"the deployment of debug session {session_id} can no longer be reached",
                field="session_id",
                code="DEBUG_UNAVAILABLE",
            )
        config = aws_deployments.get_config(session, row.deployment_id)
        if config is None:
            dep = session.get(Deployment, row.deployment_id)
            if dep is None:
                raise Conflict(
                    f"the deployment of debug session {session_id} is gone",
                    field="session_id",
                    code="DEBUG_UNAVAILABLE",
                )
            return PullPlan(row.id, row.deployment_id, row.expires_at, _limits(session, dep))
        return TunnelPlan(
            session_id=row.id,
            expires_at=row.expires_at,
            policy=aws_deployments.endpoint_policy(config),
            role=RoleTarget.of(row.id, config),
        )


def _write_records(core: ManagerCore, session_id: str, records: list[RequestRecord]) -> None:
    log = AuditLog.in_data_dir(core.settings.data_dir)
    with core.db.write() as session:
        # The session's row first, then the audit append: the order closing the session takes
        # (the other order deadlocked against a close on PostgreSQL).
        debug_sessions.get_session(session, session_id, for_update=True)
        debug_sessions.record_requests(session, log, session_id, records)


def _current_state(core: ManagerCore, session_id: str) -> tuple[SessionState, str | None, bool]:
    """The session's state (writing down a due expiry), its end reason, and whether it expired
    just now."""
    log = AuditLog.in_data_dir(core.settings.data_dir)
    with core.db.write() as session:
        row = debug_sessions.get_session(session, session_id, for_update=True)
        expired = debug_sessions.expire_if_due(session, log, row)
        return SessionState(row.state), row.end_reason, expired


@router.websocket("/v1/debug-sessions/{session_id}/tunnel")
async def debug_tunnel(websocket: WebSocket, session_id: str, caller: Tunneller) -> None:
    core = get_core(websocket)
    try:
        authorize(caller, Action.DEBUG_TUNNEL, sessions=[session_id])
        plan = await run_in_threadpool(_plan, core, session_id)
    except AlienError as exc:
        warm_credentials(websocket.app.state).forget(session_id)
        log.info("debug tunnel for %s refused: %s", session_id, exc.code)
        await _deny(websocket, exc)
        return
    if isinstance(plan, PullPlan):
        await _pull(core, websocket, plan)
    else:
        await _push(core, websocket, plan)


async def _push(core: ManagerCore, websocket: WebSocket, plan: TunnelPlan) -> None:
    try:
        # Usually warmed when the session was granted (see alien.manager.debug_credentials).
        warm = warm_credentials(websocket.app.state)
        credentials = await warm.take(plan.session_id, plan.role)
    except AlienError as exc:
        log.info("debug tunnel for %s refused: %s", plan.session_id, exc.code)
        await _deny(websocket, exc)
        return
    await websocket.accept()
    log.info("debug tunnel for %s opened", plan.session_id)
    try:
        await _serve(core, websocket, plan, credentials)
    finally:
        await credentials.aclose()


async def _serve(
    core: ManagerCore,
    websocket: WebSocket,
    plan: TunnelPlan,
    credentials: AssumeRoleCredentialProvider,
) -> None:
    recorder = RequestRecorder(partial(_write_records, core, plan.session_id))
    resigner = AwsResigningUpstream(plan.policy, credentials)
    upstream = AuditingUpstream(resigner, recorder)
    connection = TunnelConnection(
        StarletteTransport(websocket),
        "server",
        handler=http_handler(upstream, error_response=aws_error_response),
        settings=WIDE_WINDOWS,
    )
    await recorder.start()
    try:
        with core.hub.subscribe(session_key(plan.session_id)) as sub:
            ended = await _watch(core, connection, sub, plan, start=connection.start)
        if ended is not None:
            log.info("debug tunnel for %s closed: %s", plan.session_id, ended)
            await connection.abort(ended, code=SESSION_ENDED)
        else:
            log.info("debug tunnel for %s closed by the client", plan.session_id)
    finally:
        if not connection.closed:
            await connection.abort("the manager stopped serving this tunnel")
        await recorder.aclose()
        await resigner.aclose()


class _Closable(Protocol):
    """A tunnel connection, or a splice of two."""

    async def wait_closed(self) -> None: ...


async def _watch(
    core: ManagerCore,
    connection: _Closable,
    sub: Subscription,
    plan: TunnelPlan | PullPlan,
    *also: _Closable,
    start: Callable[[], Awaitable[object]] | None = None,
) -> str | None:
    """Wait until the tunnel (or one of ``also``) closes (``None``) or the session ends (the
    reason to tell the peer). Wakes on every change of the session and at its expiry time.

    The state is read first, before any wait: ``sub`` (taken before this call) wakes on the
    changes after it was taken, while the tunnel's set-up — waiting for the agent to dial its
    leg, for the role's credentials — began with a state read earlier. A revoke in between
    must end the tunnel as soon as it opens, not at the session's expiry. ``start`` lets the
    tunnel's traffic flow, and is called only once that first read found the session active:
    not a frame passes for a session revoked during the set-up."""
    closed = asyncio.create_task(_first_closed(connection, *also))
    try:
        while True:
            state, reason, expired = await run_in_threadpool(_current_state, core, plan.session_id)
            if expired:
                core.hub.publish(session_key(plan.session_id))
            if state is not SessionState.ACTIVE:
                return f"debug session {plan.session_id} {state.value}: {reason or 'ended'}"
            if start is not None:
                await start()
                start = None
            until_expiry = max(0.0, (plan.expires_at - utcnow()).total_seconds())
            woke = asyncio.create_task(sub.wait(until_expiry))
            await asyncio.wait({closed, woke}, return_when=asyncio.FIRST_COMPLETED)
            woke.cancel()
            if closed.done():
                return None
    finally:
        closed.cancel()


async def _first_closed(*connections: _Closable) -> None:
    waits = [asyncio.create_task(c.wait_closed()) for c in connections]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


# --- pull model: the agent's leg ---------------------------------------------------------------


async def _agent_leg(websocket: WebSocket, plan: PullPlan) -> Dial:
    """Ask the deployment's agent to dial the session's agent leg and wait until it did
    (spliced when the agent can be the server of the CLI's tunnel)."""
    dials, pushers = dials_of(websocket), pushers_of(websocket)
    splice = pushers.serves(plan.deployment_id, CAPABILITY_DEBUG_SPLICE)
    limited = pushers.serves(plan.deployment_id, CAPABILITY_DEBUG_LIMITS)
    if not limited and _narrows(plan.limits):
        raise _agent_unavailable(
            plan,
            "its agent cannot apply the deployment's policy on channels and egress "
            "(upgrade alien-deploy)",
        )
    credential, dial = dials.expect(plan.session_id, plan.deployment_id, splice=splice)
    handed_over = False
    try:
        message = TunnelOpen(
            session_id=plan.session_id,
            tunnel_path=agent_tunnel_path(plan.session_id),
            credential=credential,
            expires_at=plan.expires_at,
            splice=splice,
            limits=plan.limits if limited else None,
        )
        sent = await pushers.send(plan.deployment_id, CAPABILITY_DEBUG_TUNNELS, message)
        if not sent:
            raise _agent_unavailable(plan, "no agent serving debug tunnels is connected for it")
        await asyncio.wait({dial.arrived}, timeout=AGENT_DIAL_TIMEOUT)
        if not dial.arrived.done():
            raise _agent_unavailable(
                plan, f"its agent did not open the tunnel within {AGENT_DIAL_TIMEOUT:g} s"
            )
        handed_over = True
        return dial
    finally:
        dials.forget(dial)
        # A handshake that comes later is refused; one that came as this one was cancelled
        # (the CLI left, the server stops) is closed here: nobody else would.
        if not dial.arrived.cancel() and not handed_over:
            _discard(dial)


_DISCARDING: set[asyncio.Task[None]] = set()


def _discard(dial: Dial) -> None:
    """Close an agent leg that arrived for a handshake no longer waiting for it."""
    dial.released.set()  # a spliced leg's handler returns, and its WebSocket closes
    leg = dial.arrived.result()
    if isinstance(leg, TunnelConnection):
        aborting = leg.abort("the debug session's tunnel is gone", code=SESSION_ENDED)
    elif isinstance(leg, HttpLeg):
        aborting = leg.abort()
    else:
        return  # a WebSocket leg: released above
    closing = asyncio.get_running_loop().create_task(aborting)
    _DISCARDING.add(closing)
    closing.add_done_callback(_DISCARDING.discard)


def _agent_unavailable(plan: PullPlan, why: str) -> Conflict:
    return Conflict(
        f"debug session {plan.session_id} cannot reach its deployment: {why}",
        field="session_id",
        code="DEBUG_AGENT_UNAVAILABLE",
    )


@router.websocket("/v1/agent/debug-tunnels/{session_id}")
async def agent_debug_tunnel(websocket: WebSocket, session_id: str, agent: Agent) -> None:
    """The agent's leg of a pull-model session: the agent dials it when told (``tunnel_open``).
    Spliced, the CLI's handshake forwards frames over it as they are, until it ``released`` it;
    otherwise the manager opens one stream on it per stream of the CLI's tunnel."""
    try:
        dial = dials_of(websocket).claim(
            session_id, agent.deployment_id, websocket.headers.get(CREDENTIAL_HEADER)
        )
    except AlienError as exc:
        log.info("agent leg of debug tunnel %s refused: %s", session_id, exc.code)
        await _deny(websocket, exc)
        return
    await websocket.accept()
    transport = StarletteTransport(websocket)
    if dial.splice:
        if dial.arrived.done():  # the CLI's handshake stopped waiting while we accepted
            await transport.close()
            return
        dial.arrived.set_result(transport)
        log.info("agent leg of debug tunnel %s opened (spliced)", session_id)
        await dial.released.wait()
        return
    connection = TunnelConnection(transport, "server", settings=WIDE_WINDOWS)
    await connection.start()
    if dial.arrived.done():
        await connection.abort("the debug session's tunnel is gone", code=SESSION_ENDED)
        return
    dial.arrived.set_result(connection)
    log.info("agent leg of debug tunnel %s opened", session_id)
    await connection.wait_closed()


# --- pull model: relaying the CLI's streams to the agent --------------------------------------


async def _pull(core: ManagerCore, websocket: WebSocket, plan: PullPlan) -> None:
    try:
        dial = await _agent_leg(websocket, plan)
    except AlienError as exc:
        log.info("debug tunnel for %s refused: %s", plan.session_id, exc.code)
        await _deny(websocket, exc)
        return
    agent = dial.arrived.result()
    if not isinstance(agent, TunnelConnection):
        try:
            await websocket.accept()
            log.info("debug tunnel for %s opened (spliced to the agent)", plan.session_id)
            await _serve_spliced(core, websocket, plan, agent)
        finally:
            dial.released.set()  # a WebSocket leg's handler returns: its socket closes
            if isinstance(agent, HttpLeg):
                await agent.close()  # the splice may not have started: nobody else would
        return
    try:
        await websocket.accept()
        log.info("debug tunnel for %s opened (through the agent)", plan.session_id)
        await _serve_pull(core, websocket, plan, agent)
    finally:
        if not agent.closed:
            await agent.abort("the debug session's tunnel closed", code=SESSION_ENDED)


async def _serve_pull(
    core: ManagerCore, websocket: WebSocket, plan: PullPlan, agent: TunnelConnection
) -> None:
    recorder = RequestRecorder(partial(_write_records, core, plan.session_id))
    connection = TunnelConnection(
        StarletteTransport(websocket),
        "server",
        handler=partial(relay_to_agent, agent, recorder),
        settings=WIDE_WINDOWS,
    )
    await recorder.start()
    try:
        with core.hub.subscribe(session_key(plan.session_id)) as sub:
            ended = await _watch(core, connection, sub, plan, agent, start=connection.start)
        if ended is not None:
            log.info("debug tunnel for %s closed: %s", plan.session_id, ended)
            await asyncio.gather(
                connection.abort(ended, code=SESSION_ENDED), agent.abort(ended, code=SESSION_ENDED)
            )
        elif agent.closed and not connection.closed:
            log.info("debug tunnel for %s closed by the agent", plan.session_id)
            await connection.abort("the deployment's agent closed its side of the tunnel")
        else:
            log.info("debug tunnel for %s closed by the client", plan.session_id)
    finally:
        if not connection.closed:
            await connection.abort("the manager stopped serving this tunnel")
        await recorder.aclose()


async def _serve_spliced(
    core: ManagerCore, websocket: WebSocket, plan: PullPlan, agent: MessageTransport
) -> None:
    """Splice the CLI's tunnel to the agent's leg (:mod:`alien.tunnel.splice`): the agent
    answers the CLI's streams itself; the manager watches them go by for the audit."""
    recorder = RequestRecorder(partial(_write_records, core, plan.session_id))
    audit = SplicedAudit(recorder)
    splice = TunnelSplice(StarletteTransport(websocket), agent, audit, names=SPLICE_SIDES)
    await recorder.start()
    try:
        with core.hub.subscribe(session_key(plan.session_id)) as sub:
            ended = await _watch(core, splice, sub, plan, start=splice.start)
        if ended is not None:
            log.info("debug tunnel for %s closed: %s", plan.session_id, ended)
            await splice.abort(ended, code=SESSION_ENDED)
        else:
            log.info(
                "debug tunnel for %s closed by the %s", plan.session_id, splice.left or "manager"
            )
    finally:
        if not splice.closed:
            await splice.abort("the manager stopped serving this tunnel")
        await splice.wait_closed()
        audit.finish()
        await recorder.aclose()


async def relay_to_agent(
    agent: TunnelConnection, recorder: RequestRecorder, stream: TunnelStream
) -> None:
    """Open ``stream`` again on the agent's tunnel and splice the two; audit what went by."""
    exchange = RelayedExchange.start(stream.meta)
    try:
        onward = await agent.open_stream(stream.meta)
    except (TunnelError, AlienError) as exc:
        await stream.reset(ErrorCode.CANCEL, "the deployment's agent cannot be reached")
        if exchange is not None:
            recorder.add(exchange.failed(f"the agent's tunnel is gone: {exc.message}"))
        return
    if exchange is None:
        await relay(stream, onward)
        return
    failure: str | None = TUNNEL_ENDED
    try:
        result = await relay(
            cast(TunnelStream, _Tapped(stream, exchange.saw_request)),
            cast(TunnelStream, _Tapped(onward, exchange.saw_response)),
        )
        failure = _failure(result.error)
    finally:
        # Also when the session's end cancels the relay: the request stays in the audit trail.
        recorder.add(exchange.record(failure))


def _failure(error: TunnelError | None) -> str | None:
    """Why a relay ended early; a NO_ERROR reset is not a failure (the responder finished
    before reading the whole request body, as HTTP/2 allows)."""
    if error is None:
        return None
    if isinstance(error, TunnelStreamReset) and error.error_code == ErrorCode.NO_ERROR:
        return None
    return error.message


class _Tapped:
    """A tunnel stream as :func:`relay` uses it, showing each chunk read to ``observe`` (which
    looks, never changes or keeps more than a head's worth)."""

    def __init__(self, stream: TunnelStream, observe: Callable[[bytes], None]) -> None:
        self._stream = stream
        self._observe = observe

    async def read(self) -> bytes:
        chunk = await self._stream.read()
        if chunk:
            self._observe(chunk)
        return chunk

    async def send(self, data: bytes) -> None:
        await self._stream.send(data)

    async def end(self) -> None:
        await self._stream.end()

    async def reset(self, code: int = ErrorCode.CANCEL, reason: str = "") -> None:
        await self._stream.reset(code, reason)
