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
import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, WebSocket
from starlette.concurrency import run_in_threadpool

from alien.errors import AlienError, Conflict, Unauthenticated
from alien.manager.api.agent import _deny, pushers_of
from alien.manager.api.deps import get_core, require
from alien.manager.auth import Action, Principal, authorize
from alien.manager.aws_operations import PEEK_LIMIT, operation_from_head, operation_of
from alien.manager.core import ManagerCore
from alien.manager.db import utcnow
from alien.manager.debug_audit import AuditingUpstream, RequestRecorder
from alien.manager.debug_credentials import RoleTarget, warm_credentials
from alien.manager.events import Subscription
from alien.manager.services import aws_deployments, debug_sessions
from alien.manager.services.audit import AuditLog
from alien.manager.services.debug_sessions import RequestRecord, SessionState, session_key
from alien.platforms.aws.credentials import AssumeRoleCredentialProvider
from alien.platforms.aws.endpoints import AwsEndpointPolicy
from alien.platforms.aws.error_shape import aws_error_response
from alien.platforms.aws.sigv4 import caller_scope
from alien.platforms.aws.upstream import AwsResigningUpstream
from alien.platforms.gcp.upstream import google_api
from alien.platforms.kubernetes.upstream import is_kubernetes_api
from alien.protocol.agent_channel import CAPABILITY_DEBUG_TUNNELS, TunnelOpen
from alien.protocol.errors import TunnelError
from alien.protocol.frames import ErrorCode
from alien.protocol.http_exchange import ERROR_HEADER, RequestHead, ResponseHead, iterate_once
from alien.tunnel import WIDE_WINDOWS, TunnelConnection, TunnelStream
from alien.tunnel.errors import TunnelMessageError, TunnelStreamReset
from alien.tunnel.http import http_handler
from alien.tunnel.http_heads import MAX_HEAD_BYTES, parse_request_meta, read_response_head
from alien.tunnel.relay import relay
from alien.tunnel.starlette_transport import StarletteTransport

log = logging.getLogger("alien.manager.debug")
router = APIRouter(tags=["debugging"])
Tunneller = Annotated[Principal, Depends(require(Action.DEBUG_TUNNEL))]
Agent = Annotated[Principal, Depends(require(Action.AGENT))]

SESSION_ENDED = 0x100
"""GOAWAY code (application range) the manager sends when the session ended under the tunnel."""


@dataclass(frozen=True)
class TunnelPlan:
    """What serving one session's tunnel needs, read once when it opens."""

    session_id: str
    expires_at: datetime
    policy: AwsEndpointPolicy
    role: RoleTarget


@dataclass(frozen=True)
class PullPlan:
    """A session debugged through its deployment's agent (no push-model configuration)."""

    session_id: str
    deployment_id: str
    expires_at: datetime


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
            return PullPlan(row.id, row.deployment_id, row.expires_at)
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
    upstream = AuditingUpstream(resigner, plan.policy, recorder)
    connection = TunnelConnection(
        StarletteTransport(websocket),
        "server",
        handler=http_handler(upstream, error_response=aws_error_response),
        settings=WIDE_WINDOWS,
    )
    await recorder.start()
    try:
        with core.hub.subscribe(session_key(plan.session_id)) as sub:
            await connection.start()
            ended = await _watch(core, connection, sub, plan)
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


async def _watch(
    core: ManagerCore,
    connection: TunnelConnection,
    sub: Subscription,
    plan: TunnelPlan | PullPlan,
    *also: TunnelConnection,
) -> str | None:
    """Wait until the tunnel (or one of ``also``) closes (``None``) or the session ends (the
    reason to tell the peer). Wakes on every change of the session and at its expiry time."""
    closed = asyncio.create_task(_first_closed(connection, *also))
    try:
        while True:
            until_expiry = max(0.0, (plan.expires_at - utcnow()).total_seconds())
            woke = asyncio.create_task(sub.wait(until_expiry))
            await asyncio.wait({closed, woke}, return_when=asyncio.FIRST_COMPLETED)
            woke.cancel()
            if closed.done():
                return None
            state, reason, expired = await run_in_threadpool(_current_state, core, plan.session_id)
            if expired:
                core.hub.publish(session_key(plan.session_id))
            if state is not SessionState.ACTIVE:
                return f"debug session {plan.session_id} {state.value}: {reason or 'ended'}"
    finally:
        closed.cancel()


async def _first_closed(*connections: TunnelConnection) -> None:
    waits = [asyncio.create_task(c.wait_closed()) for c in connections]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


# --- pull model: the agent's leg ---------------------------------------------------------------

AGENT_DIAL_TIMEOUT = 10.0
"""Seconds the agent has, after ``tunnel_open``, to dial its leg of a session's tunnel."""
CREDENTIAL_HEADER = "alien-tunnel-credential"


def agent_tunnel_path(session_id: str) -> str:
    return f"/v1/agent/debug-tunnels/{session_id}"


class _Dial:
    """One agent handshake the manager waits for: whose, which credential (its hash), and the
    agent's connection once it came."""

    def __init__(self, session_id: str, deployment_id: str, credential: str) -> None:
        self.session_id = session_id
        self.deployment_id = deployment_id
        self.digest = hashlib.sha256(credential.encode()).digest()
        self.arrived: asyncio.Future[TunnelConnection] = asyncio.get_running_loop().create_future()


class AgentDials:
    """The agent legs this manager process asked for and is waiting for (in memory).

    Each credential is random, good for one handshake of one session's deployment, and only
    until the CLI's handshake stops waiting for it (:data:`AGENT_DIAL_TIMEOUT`).
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple[str, bytes], _Dial] = {}

    def expect(self, session_id: str, deployment_id: str) -> tuple[str, _Dial]:
        credential = secrets.token_urlsafe(32)
        dial = _Dial(session_id, deployment_id, credential)
        self._waiting[(session_id, dial.digest)] = dial
        return credential, dial

    def forget(self, dial: _Dial) -> None:
        self._waiting.pop((dial.session_id, dial.digest), None)

    def claim(self, session_id: str, deployment_id: str | None, credential: str | None) -> _Dial:
        """The dial this handshake answers (used up); ``Unauthenticated`` when there is none."""
        digest = hashlib.sha256((credential or "").encode()).digest()
        dial = self._waiting.get((session_id, digest))
        if (
            dial is None
            or not hmac.compare_digest(dial.digest, digest)
            or dial.deployment_id != deployment_id
            or dial.arrived.done()
        ):
            raise Unauthenticated(
                f"no tunnel of debug session {session_id} is expected with this credential "
                "from this deployment",
                field="credential",
            )
        self.forget(dial)
        return dial


def dials_of(websocket: WebSocket) -> AgentDials:
    state = websocket.app.state
    dials = getattr(state, "debug_agent_dials", None)
    if dials is None:
        dials = state.debug_agent_dials = AgentDials()
    return dials


async def _agent_leg(websocket: WebSocket, plan: PullPlan) -> TunnelConnection:
    """Ask the deployment's agent to dial the session's agent leg and wait until it did."""
    dials = dials_of(websocket)
    credential, dial = dials.expect(plan.session_id, plan.deployment_id)
    try:
        message = TunnelOpen(
            session_id=plan.session_id,
            tunnel_path=agent_tunnel_path(plan.session_id),
            credential=credential,
            expires_at=plan.expires_at,
        )
        sent = await pushers_of(websocket).send(
            plan.deployment_id, CAPABILITY_DEBUG_TUNNELS, message
        )
        if not sent:
            raise _agent_unavailable(plan, "no agent serving debug tunnels is connected for it")
        await asyncio.wait({dial.arrived}, timeout=AGENT_DIAL_TIMEOUT)
        if not dial.arrived.done():
            raise _agent_unavailable(
                plan, f"its agent did not open the tunnel within {AGENT_DIAL_TIMEOUT:g} s"
            )
        return dial.arrived.result()
    finally:
        dials.forget(dial)
        dial.arrived.cancel()  # a handshake that comes later is refused


def _agent_unavailable(plan: PullPlan, why: str) -> Conflict:
    return Conflict(
        f"debug session {plan.session_id} cannot reach its deployment: {why}",
        field="session_id",
        code="DEBUG_AGENT_UNAVAILABLE",
    )


@router.websocket("/v1/agent/debug-tunnels/{session_id}")
async def agent_debug_tunnel(websocket: WebSocket, session_id: str, agent: Agent) -> None:
    """The agent's leg of a pull-model session: the agent dials it when told (``tunnel_open``);
    the manager opens one stream on it per stream of the CLI's tunnel."""
    try:
        dial = dials_of(websocket).claim(
            session_id, agent.deployment_id, websocket.headers.get(CREDENTIAL_HEADER)
        )
    except AlienError as exc:
        log.info("agent leg of debug tunnel %s refused: %s", session_id, exc.code)
        await _deny(websocket, exc)
        return
    await websocket.accept()
    connection = TunnelConnection(StarletteTransport(websocket), "server", settings=WIDE_WINDOWS)
    await connection.start()
    if dial.arrived.done():  # the CLI's handshake stopped waiting while we accepted
        await connection.abort("the debug session's tunnel is gone", code=SESSION_ENDED)
        return
    dial.arrived.set_result(connection)
    log.info("agent leg of debug tunnel %s opened", session_id)
    await connection.wait_closed()


# --- pull model: relaying the CLI's streams to the agent --------------------------------------


async def _pull(core: ManagerCore, websocket: WebSocket, plan: PullPlan) -> None:
    try:
        agent = await _agent_leg(websocket, plan)
    except AlienError as exc:
        log.info("debug tunnel for %s refused: %s", plan.session_id, exc.code)
        await _deny(websocket, exc)
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
            await connection.start()
            ended = await _watch(core, connection, sub, plan, agent)
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
    failure: str | None = "the tunnel closed under it"
    try:
        result = await relay(
            cast(TunnelStream, _Tapped(stream, exchange.saw_request)),
            cast(TunnelStream, _Tapped(onward, exchange.saw_response)),
        )
        failure = _failure(result.error)
    finally:
        # Also when the session's end cancels the relay: the request stays in the audit trail.
        # (``record`` only parses bytes already seen: it never waits for anything.)
        recorder.add(await exchange.record(failure))


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


class _Prefix:
    """Bytes already seen, readable like the start of a stream (to reuse the head parser)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read_exactly(self, n: int) -> bytes:
        if len(self._data) < n:
            raise TunnelMessageError("the response ended inside its head", field="response.head")
        out, self._data = self._data[:n], self._data[n:]
        return out


class RelayedExchange:
    """What the manager learns of one HTTP exchange it relays to an agent, for the audit trail:
    the request head (from OPEN), the start of a form body (to name an AWS query-protocol
    operation), the response head, the bytes each way and the time it took."""

    def __init__(self, head: RequestHead) -> None:
        self.head = head
        self.time = utcnow()
        self.started = time.monotonic()
        self.service, self.operation = _classify(head)
        self._peek = (  # AWS requests alone are in origin form, and some name it in the body
            head.target.startswith("/")
            and self.service != "unknown"
            and operation_from_head(self.service, head) is None
        )
        self._request = bytearray()
        self._response = bytearray()
        self._head_size: int | None = None
        self.bytes_in = 0
        self.bytes_out = 0

    @classmethod
    def start(cls, meta: dict[str, Any]) -> RelayedExchange | None:
        """An exchange for an HTTP stream; ``None`` for other kinds (relayed, not audited)."""
        if meta.get("kind") != "http":
            return None
        try:
            return cls(parse_request_meta(meta))
        except AlienError:
            return None  # the agent refuses it the same way

    def saw_request(self, chunk: bytes) -> None:
        self.bytes_in += len(chunk)
        if self._peek and len(self._request) < PEEK_LIMIT:
            self._request += chunk[: PEEK_LIMIT - len(self._request)]

    def saw_response(self, chunk: bytes) -> None:
        """Keep the response's first bytes until its length-prefixed head is complete."""
        self.bytes_out += len(chunk)
        view = memoryview(chunk)
        while view and (wanted := self._head_wanted()) > 0:
            self._response += view[:wanted]
            view = view[wanted:]
            if self._head_size is None and len(self._response) >= 4:
                length = int.from_bytes(self._response[:4], "big")
                self._head_size = 4 + min(length, MAX_HEAD_BYTES)

    def _head_wanted(self) -> int:
        size = self._head_size if self._head_size is not None else 4
        return size - len(self._response)

    async def _response_head(self) -> ResponseHead | None:
        try:
            return await read_response_head(cast(TunnelStream, _Prefix(bytes(self._response))))
        except AlienError:
            return None

    async def record(self, failure: str | None) -> RequestRecord:
        """The audit record; ``failure``: why the relay ended early, if it did."""
        if self._peek:
            self.operation, _ = await operation_of(
                self.service, self.head, iterate_once(bytes(self._request))
            )
        head = await self._response_head()
        if head is None:
            return self.failed(f"no response: {failure or 'the agent sent no head'}")
        code = head.get(ERROR_HEADER)
        return self._record(
            head.status,
            bytes_out=max(0, self.bytes_out - (self._head_size or 0)),
            refused=code is not None and head.status == 403,
            error=code or (f"cut short: {failure}" if failure else None),
        )

    def failed(self, error: str) -> RequestRecord:
        return self._record(502, bytes_out=0, refused=False, error=error)

    def _record(
        self, status: int, *, bytes_out: int, refused: bool, error: str | None
    ) -> RequestRecord:
        return RequestRecord(
            time=self.time,
            service=self.service,
            operation=self.operation,
            method=self.head.method,
            status=status,
            bytes_in=self.bytes_in,
            bytes_out=bytes_out,
            duration_ms=(time.monotonic() - self.started) * 1000,
            refused=refused,
            error=error,
        )


MAX_OPERATION = 200


def _classify(head: RequestHead) -> tuple[str, str]:
    """``(service, operation)`` of a relayed request: a Google API call (absolute form to
    ``<api>.googleapis.com``) is ``gcp/<api>`` with method and path, a Kubernetes API call
    (to ``kubernetes.default.svc``) ``kubernetes`` with method and path; other HTTP egress (a
    forward-proxy request in absolute form, or CONNECT) is ``http`` with method and destination
    (never the query); an AWS request is its signing name and operation; anything else
    ``unknown``."""
    if head.method == "CONNECT":
        return "http", f"CONNECT {head.target}"[:MAX_OPERATION]
    if head.target.startswith(("http://", "https://")):
        url = head.target.partition("?")[0]
        path = "/" + url.split("/", 3)[3] if url.count("/") >= 3 else "/"
        api = google_api(head.target)
        if api is not None:
            return f"gcp/{api}", f"{head.method} {path}"[:MAX_OPERATION]
        if is_kubernetes_api(head.target):
            return "kubernetes", f"{head.method} {path}"[:MAX_OPERATION]
        return "http", f"{head.method} {url}"[:MAX_OPERATION]
    try:
        service = caller_scope(head.target, head.headers).service
    except AlienError:
        return "unknown", f"{head.method} /"
    return service, operation_from_head(service, head) or "unknown"
