"""The agent channel: ``/v1/agent/connect`` (WebSocket) and its long-poll fallback.

An agent authenticates with its deployment token (``Authorization: Bearer ax_dep_…``) and can only
ever speak for that deployment. Over the WebSocket it sends ``hello`` first, gets ``welcome``, and
from then on is sent ``desired_release`` the moment a release targets it (and once on every
connect while one is set). Without a WebSocket it long-polls ``GET /v1/agent/next`` and posts its
messages to ``POST /v1/agent/status``. Message shapes: :mod:`alien.protocol.agent_channel`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from typing import Annotated, Any

import anyio
from anyio import CancelScope
from fastapi import APIRouter, Depends, Query, Request, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketDisconnected, WebSocketState

from alien.errors import AlienError, NotFound, ValidationError
from alien.manager import audit_events
from alien.manager.agents import POLL, WEBSOCKET, AgentConflict
from alien.manager.api.deps import Core, app_held, get_core, require
from alien.manager.api.errors import error_response
from alien.manager.auth import Action, Principal
from alien.manager.commands.agent_session import AgentCommandSession, http_base_url
from alien.manager.commands.center import center_of
from alien.manager.core import ManagerCore
from alien.manager.events import Subscription, deployment_key
from alien.manager.services import channel
from alien.manager.services.audit import AuditLog
from alien.manager.services.deployments import record_heartbeat
from alien.protocol.agent_channel import (
    AGENT_COMMAND_MESSAGES,
    AGENT_INSTANCE_HEADER,
    AGENT_INSTANCE_PATTERN,
    CAPABILITY_DEBUG_SPLICE,
    CAPABILITY_DEBUG_TUNNELS,
    AgentMessage,
    AgentPoll,
    ChannelError,
    Hello,
    ManagerMessage,
    TunnelOpen,
    encode,
    parse_agent_message,
)
from alien.protocol.deployment import DeploymentStatus

log = logging.getLogger("alien.manager.agent")
router = APIRouter(tags=["agent"])
Agent = Annotated[Principal, Depends(require(Action.AGENT))]

CLOSE_DEPLOYMENT_GONE = 4404
POLL_GAP = 5.0
"""Seconds after its last poll ended that a long-polling agent is still taken to be there."""
POLL_RETRY = 0.02
_IDLE_WAKE = 300.0  # seconds; a pusher with nothing to do re-reads the record this often anyway


def _handle(core: ManagerCore, deployment_id: str, message: AgentMessage) -> list[ManagerMessage]:
    with core.db.write() as session:
        return channel.handle(
            session, deployment_id, message, heartbeat_interval=core.settings.heartbeat_interval
        )


def _pending(core: ManagerCore, deployment_id: str, known: str | None) -> list[ManagerMessage]:
    with core.db.read() as session:
        return channel.pending(session, deployment_id, known)


def _error_message(exc: AlienError) -> ChannelError:
    status = exc.details.get("status")
    return ChannelError(
        code=exc.code,
        message=exc.message[:4096],
        field=exc.field[:128] if exc.field else None,
        status=DeploymentStatus.model_validate(status) if status is not None else None,
    )


Send = Callable[[ManagerMessage], Awaitable[None]]


def agent_instance(conn: HTTPConnection) -> str | None:
    """The agent process's id from its request header (``None`` for an agent that sends none)."""
    value = conn.headers.get(AGENT_INSTANCE_HEADER)
    if value is not None and not re.fullmatch(AGENT_INSTANCE_PATTERN, value):
        raise ValidationError(
            "an agent instance id is 'ins_' and 24 lowercase hex digits",
            field=AGENT_INSTANCE_HEADER,
        )
    return value


@contextlib.asynccontextmanager
async def agent_channel(
    conn: HTTPConnection, caller: Principal, transport: str
) -> AsyncIterator[None]:
    """Hold the caller's deployment for this agent instance while the block runs (it is shown
    connected); :class:`AgentConflict` if another instance holds it. The first refusal of an
    instance is audited: a second agent with a deployment's token is a cloned machine or a
    leaked token, and the customer should be able to find out which."""
    core = get_core(conn)
    assert caller.deployment_id is not None
    instance = agent_instance(conn)
    peer = conn.client.host if conn.client is not None else None
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(
                core.agents.channel(
                    caller.deployment_id, instance=instance, peer=peer, transport=transport
                )
            )
        except AgentConflict as conflict:
            if conflict.first:
                await run_in_threadpool(_audit_conflict, core, caller, conflict)
            raise
        yield


def _audit_conflict(core: ManagerCore, caller: Principal, conflict: AgentConflict) -> None:
    with core.db.write() as session:
        audit_events.denied(
            session,
            AuditLog.in_data_dir(core.settings.data_dir),
            caller,
            "agent.connect",
            conflict,
            deployment=caller.deployment_id,
            target=conflict.details["refused"]["instance"],
        )


class AgentPushers:
    """The agents of this process that can be handed a message at once, by deployment, with
    their capabilities: each open ``/v1/agent/connect`` WebSocket (from its ``hello`` to its
    end), and each open long poll ``GET /v1/agent/next`` (answered with the message).

    Lets another route reach a deployment's agent (``tunnel_open`` when a debug session's CLI
    connects) without a database round trip and without waiting for the agent to ask. A long-
    polling agent is between two polls now and then: one seen within :data:`POLL_GAP` seconds
    still counts as there, and :meth:`send` waits that long for its next poll. In memory, like
    the sockets themselves: an agent connected to another manager process is not found here.
    """

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._live: dict[str, list[tuple[frozenset[str], Send]]] = {}
        self._polled: dict[str, tuple[frozenset[str], float]] = {}
        self._monotonic = monotonic

    def join(
        self,
        deployment_id: str,
        capabilities: Collection[str],
        send: Send,
        *,
        poll: bool = False,
    ) -> Callable[[], None]:
        """Register ``send``; returns the function that unregisters it (idempotent). A
        ``poll`` leaves a trace when it goes: its agent is expected back at once."""
        entry = (frozenset(capabilities), send)
        self._live.setdefault(deployment_id, []).append(entry)

        def leave() -> None:
            entries = self._live.get(deployment_id, [])
            if entry in entries:
                entries.remove(entry)
                if poll:
                    self._polled[deployment_id] = (entry[0], self._monotonic())
            if not entries:
                self._live.pop(deployment_id, None)

        return leave

    def serves(self, deployment_id: str, capability: str) -> bool:
        """Whether an agent of the deployment listing ``capability`` is connected, or was
        polling a moment ago (safe from a thread)."""
        live = tuple(self._live.get(deployment_id, ()))
        return any(capability in capabilities for capabilities, _ in live) or (
            self._between_polls(deployment_id, capability)
        )

    def _between_polls(self, deployment_id: str, capability: str) -> bool:
        polled = self._polled.get(deployment_id)
        return (
            polled is not None
            and capability in polled[0]
            and self._monotonic() - polled[1] <= POLL_GAP
        )

    async def send(self, deployment_id: str, capability: str, message: ManagerMessage) -> bool:
        """Send to the newest connection of the deployment that lists ``capability`` (waiting
        for a polling agent's next poll); ``False`` when none is there or none could take it."""
        while True:
            for capabilities, send in reversed(list(self._live.get(deployment_id, ()))):
                if capability not in capabilities:
                    continue
                try:
                    await send(message)
                except (WebSocketDisconnect, WebSocketDisconnected, RuntimeError, OSError):
                    continue  # that socket is going away; an older one may still be up
                return True
            if not self._between_polls(deployment_id, capability):
                return False
            await asyncio.sleep(POLL_RETRY)


def pushers_of(conn: HTTPConnection) -> AgentPushers:
    """The app's :class:`AgentPushers`, created on first use (call from the event loop)."""
    return app_held(conn, "agent_pushers", AgentPushers)


def agent_serves(conn: HTTPConnection, deployment_id: str, capability: str) -> bool:
    """Whether a connected agent of the deployment lists ``capability`` (safe from a thread:
    creates nothing)."""
    pushers: AgentPushers | None = getattr(conn.app.state, "agent_pushers", None)
    return pushers is not None and pushers.serves(deployment_id, capability)


class _AgentConnection:
    """One agent's WebSocket: a receiver and a pusher sharing the socket."""

    def __init__(self, core: ManagerCore, websocket: WebSocket, deployment_id: str) -> None:
        self.core = core
        self.ws = websocket
        self.deployment_id = deployment_id
        self.greeted = anyio.Event()
        # fast_acquire: an uncontended send must not yield to the loop. Under load a turn may run a
        # batch of command writes, and a yield per message handed the agent one offer per turn
        # (tests/manager/test_agent_pump.py).
        self._send_lock = anyio.Lock(fast_acquire=True)
        base_url = http_base_url(str(websocket.base_url))
        center = center_of(websocket)
        self.commands = AgentCommandSession(center, deployment_id, base_url, self.send)
        self.leave: Callable[[], None] = lambda: None  # see join()

    def join(self, hello: Hello) -> None:
        """From now on other routes may hand this agent messages (``tunnel_open``)."""
        self.leave()
        self.leave = pushers_of(self.ws).join(self.deployment_id, hello.capabilities, self.send)

    async def send(self, message: ManagerMessage) -> None:
        async with self._send_lock:
            await self.ws.send_text(encode(message))

    async def run(self, sub: Subscription) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._receive, tg.cancel_scope)
            tg.start_soon(self._push, sub, tg.cancel_scope)

    async def _receive(self, scope: CancelScope) -> None:
        while True:
            frame = await self.ws.receive()
            if frame["type"] == "websocket.disconnect":
                break
            data = frame.get("text") if frame.get("text") is not None else frame.get("bytes")
            if data is None:
                continue
            try:
                message = parse_agent_message(data)
                if not self.greeted.is_set() and not isinstance(message, Hello):
                    raise ValidationError("send 'hello' first", field="type", code="HELLO_REQUIRED")
                if isinstance(message, AGENT_COMMAND_MESSAGES):
                    self.commands.received(message)  # answered by a command_receipt
                    continue
                replies = await run_in_threadpool(_handle, self.core, self.deployment_id, message)
            except NotFound:
                await self._close_gone()
                break
            except AlienError as exc:
                await self.send(_error_message(exc))
                continue
            if isinstance(message, Hello):
                self.join(message)  # before the welcome: a greeted agent can be handed work
            for reply in replies:
                await self.send(reply)
            if isinstance(message, Hello):
                self.greeted.set()
                await self.commands.start(message)
            else:
                self.core.deployments_changed([self.deployment_id])
        scope.cancel()

    async def _push(self, sub: Subscription, scope: CancelScope) -> None:
        await self.greeted.wait()
        known: str | None = None
        while True:
            try:
                messages = await run_in_threadpool(_pending, self.core, self.deployment_id, known)
            except NotFound:
                await self._close_gone()
                scope.cancel()
                return
            for message in messages:
                await self.send(message)
                known = getattr(message, "release_id", known)
            await sub.wait(_IDLE_WAKE)

    async def _close_gone(self) -> None:
        if self.ws.application_state is WebSocketState.CONNECTED:
            await self.ws.close(CLOSE_DEPLOYMENT_GONE, "deployment deleted")


@router.websocket("/v1/agent/connect")
async def agent_connect(websocket: WebSocket, caller: Agent) -> None:
    core = get_core(websocket)
    assert caller.deployment_id is not None
    deployment_id = caller.deployment_id
    async with contextlib.AsyncExitStack() as held:
        try:
            await held.enter_async_context(agent_channel(websocket, caller, WEBSOCKET))
        except (AgentConflict, ValidationError) as refused:
            await _deny(websocket, refused)
            return
        await websocket.accept()
        await _serve_agent(core, websocket, deployment_id)
    # Presence changed: wake anyone waiting on this deployment so 'connected' is fresh.
    core.deployments_changed([deployment_id])


async def _serve_agent(core: ManagerCore, websocket: WebSocket, deployment_id: str) -> None:
    connection = _AgentConnection(core, websocket, deployment_id)
    with core.hub.subscribe(deployment_key(deployment_id)) as sub:
        try:
            await connection.run(sub)
        except* (WebSocketDisconnect, WebSocketDisconnected):
            pass  # the agent went away while we were sending: it reconnects and is sent again
        except* Exception:
            log.exception("agent channel of %s failed", deployment_id)
            if websocket.application_state is WebSocketState.CONNECTED:
                await websocket.close(1011, "internal error")
        finally:
            await connection.commands.close()  # before presence drops: no offer to a dead link
    connection.leave()


async def _deny(websocket: WebSocket, exc: AlienError) -> None:
    """Refuse the handshake with the usual JSON error body (or a policy close if unsupported)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(error_response(exc.to_dict(), exc.status))
    else:
        await websocket.close(1008, exc.code)


@router.get("/v1/agent/next", response_model=AgentPoll)
async def agent_next(
    request: Request,
    core: Core,
    caller: Agent,
    wait: Annotated[float, Query(ge=0, description="seconds to hold the request open")] = 25.0,
    known: Annotated[
        str | None, Query(description="the desired release the agent already has")
    ] = None,
    capabilities: Annotated[
        str,
        Query(
            max_length=1024,
            description="comma-separated capabilities of the agent (as in its hello): while "
            "the poll is open it can be handed messages for them, e.g. tunnel_open",
        ),
    ] = "",
) -> AgentPoll:
    """Long-poll for work: answers at once with ``desired_release`` if the deployment's desired
    release differs from ``known``, else as soon as that changes or a message for one of the
    agent's ``capabilities`` comes, else after ``wait`` seconds with no messages. Each poll
    counts as a heartbeat."""
    if wait > core.settings.max_wait:
        raise ValidationError(
            f"wait may be at most {core.settings.max_wait:g} seconds", field="wait"
        )
    assert caller.deployment_id is not None
    dep_id = caller.deployment_id
    deadline = time.monotonic() + wait
    async with agent_channel(request, caller, POLL):
        await run_in_threadpool(_heartbeat, core, dep_id)
        with core.hub.subscribe(deployment_key(dep_id)) as sub:
            mailbox: list[ManagerMessage] = []

            async def post(message: ManagerMessage) -> None:
                if isinstance(message, TunnelOpen):  # no WebSocket: the leg is HTTP as well
                    message = message.model_copy(update={"leg": "http"})
                mailbox.append(message)
                sub.wake()

            listed = {name for name in capabilities.split(",") if name}
            if CAPABILITY_DEBUG_SPLICE not in listed:  # an HTTP leg is only ever spliced
                listed.discard(CAPABILITY_DEBUG_TUNNELS)
            leave = pushers_of(request).join(dep_id, listed, post, poll=True)
            try:
                return await _next_messages(core, dep_id, known, deadline, sub, mailbox)
            finally:
                leave()  # no await since the mailbox was last read: nothing posted is lost


async def _next_messages(
    core: ManagerCore,
    dep_id: str,
    known: str | None,
    deadline: float,
    sub: Subscription,
    mailbox: list[ManagerMessage],
) -> AgentPoll:
    while True:
        messages = await run_in_threadpool(_pending, core, dep_id, known)
        messages = [*messages, *mailbox]
        remaining = deadline - time.monotonic()
        if messages or remaining <= 0:
            return AgentPoll(messages=tuple(messages))
        await sub.wait(remaining)


def _heartbeat(core: ManagerCore, deployment_id: str) -> None:
    with core.db.write() as session:
        record_heartbeat(session, channel.load(session, deployment_id))


_AGENT_MESSAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "an agent message: hello | heartbeat | status "
                    "(alien.protocol.agent_channel, docs/API.md)",
                }
            }
        },
    }
}


@router.post("/v1/agent/status", response_model=AgentPoll, openapi_extra=_AGENT_MESSAGE_BODY)
async def agent_status(request: Request, core: Core, caller: Agent) -> AgentPoll:
    """Deliver one agent message over HTTP; the reply carries ``welcome`` for a ``hello``.

    A refused status event answers 409 ``ILLEGAL_TRANSITION`` with the manager's current status
    in ``error.details.status`` so the agent can resynchronise.
    """
    assert caller.deployment_id is not None
    message = parse_agent_message(await request.body())
    async with agent_channel(request, caller, POLL):
        if isinstance(message, AGENT_COMMAND_MESSAGES):
            receipt = await center_of(request).agent_message(caller.deployment_id, message)
            return AgentPoll(messages=(receipt,))
        replies = await run_in_threadpool(_handle, core, caller.deployment_id, message)
    core.deployments_changed([caller.deployment_id])
    return AgentPoll(messages=tuple(replies))
