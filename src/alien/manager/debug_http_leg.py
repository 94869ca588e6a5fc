"""The agent's leg of a debug tunnel over plain HTTPS requests, for an agent that reaches the
manager by long-polling only (a proxy on its way refuses WebSockets, see ``agent/link.py``).

Such an agent is told ``tunnel_open`` with ``leg="http"`` in the answer to its long poll. It
opens the leg with ``POST /v1/agent/debug-tunnels/{session}/http`` (its deployment token and
the one-time credential, as the WebSocket leg would), and gets a leg id. From then on it moves
the tunnel's messages with ``POST …/http/up`` and ``GET …/http/down`` (numbered batches,
:mod:`alien.protocol.tunnel_leg`; the leg id in the ``alien-leg`` header) until the manager
answers 410 ``LEG_CLOSED``, and says it leaves with ``DELETE …/http``. The leg is a
:class:`~alien.tunnel.transport.MessageTransport`, so the CLI's tunnel is spliced to it exactly
as to a WebSocket (:mod:`alien.tunnel.splice`: frames scanned, audited, passed through).

Bounded memory whatever the agent does: one ``up`` and one ``down`` at a time per leg (another
is 429 ``LEG_BUSY``), an ``up``'s batch taken only while less than :data:`RECEIVE_LIMIT` waits
for the splice, and ``send`` waiting while more than :data:`SEND_LIMIT` is unacknowledged.

The leg id is a random secret, and good only with the deployment token it was opened with: a
request naming another deployment's leg, or none, is answered 404. A leg no request came for
in :data:`IDLE_TIMEOUT` seconds is taken for lost and ended (the splice then ends the session's
tunnel, and the CLI dials again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response

from alien.errors import Conflict, Gone, NotFound, TooManyRequests
from alien.manager.api.deps import app_held, require
from alien.manager.auth import Action, Principal
from alien.manager.debug_dials import CREDENTIAL_HEADER, dials_of
from alien.protocol.tunnel_leg import (
    BATCH_TYPE,
    FIRST_HEADER,
    LEG_ID_HEADER,
    MAX_BATCH_BYTES,
    MAX_DOWN_WAIT,
    Inbox,
    Outbox,
    decode_batch,
    encode_batch,
)
from alien.tunnel.errors import TunnelClosed

log = logging.getLogger(__name__)

Agent = Annotated[Principal, Depends(require(Action.AGENT))]

IDLE_TIMEOUT = 30.0
"""Seconds without any request of the agent after which its leg is taken for lost."""
SEND_LIMIT = 16 * 1024 * 1024
"""Bytes sent to the agent and not acknowledged before ``send`` waits (what a resend needs)."""
RECEIVE_LIMIT = 16 * 1024 * 1024
"""Bytes received from the agent and not yet taken by the splice past which ``up`` takes no
batch (it waits for room)."""
UP_WAIT = 15.0
"""The longest an ``up`` waits for room before answering without taking its batch."""
LINGER = 5.0
"""Seconds a closed leg still answers ``down``, so the agent collects the last messages."""


class HttpLeg:
    """One agent leg over HTTP requests: a message transport for the splice on one side, the
    ``up``/``down`` requests on the other (one of each at a time)."""

    def __init__(self, session_id: str, deployment_id: str) -> None:
        self.id = secrets.token_urlsafe(32)
        self.session_id = session_id
        self.deployment_id = deployment_id
        self._outbox = Outbox()
        self._inbox = Inbox()
        self._received: asyncio.Queue[bytes] = asyncio.Queue()
        self._received_bytes = 0
        self._changed = asyncio.Condition()
        self._closing = False  # no more sends; the agent may still collect what is left
        self._finished = asyncio.Event()  # gone for good: every request is answered 410
        self._waking: asyncio.Task[None] | None = None
        self._busy: set[str] = set()
        self.seen = time.monotonic()

    # --- the transport side (the splice) ------------------------------------------------------

    async def send(self, data: bytes | memoryview) -> None:
        if self._closing or self._finished.is_set():
            raise TunnelClosed("the agent's HTTP leg is closed")
        async with self._changed:
            self._outbox.put(bytes(data))
            self._changed.notify_all()
            await self._changed.wait_for(
                lambda: self._outbox.unacknowledged_bytes <= SEND_LIMIT or self._finished.is_set()
            )
        if self._finished.is_set():
            raise TunnelClosed("the agent's HTTP leg is closed")

    async def recv(self) -> bytes:
        getting = asyncio.ensure_future(self._received.get())
        finished = asyncio.ensure_future(self._finished.wait())
        try:
            await asyncio.wait({getting, finished}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            finished.cancel()
            if not getting.done():
                getting.cancel()
        if not getting.done() or getting.cancelled():
            raise TunnelClosed("the agent's HTTP leg is closed")
        message = getting.result()
        async with self._changed:
            self._received_bytes -= len(message)
            self._changed.notify_all()
        return message

    async def close(self) -> None:
        """No more messages; the agent is given :data:`LINGER` seconds to collect the rest."""
        if self._closing:
            return
        self._closing = True
        async with self._changed:
            self._changed.notify_all()
        asyncio.get_running_loop().call_later(LINGER, self._finish)

    async def abort(self) -> None:
        self._closing = True
        self._finish()

    def _finish(self) -> None:
        """Gone for good; whoever waits is woken (from a task: the lock must be taken)."""
        if self._finished.is_set():
            return
        self._finished.set()
        self._waking = asyncio.get_running_loop().create_task(self._wake_all())

    async def _wake_all(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    # --- the HTTP side (the agent's requests) -------------------------------------------------

    @contextlib.contextmanager
    def one_at_a_time(self, kind: str) -> Iterator[None]:
        """Hold the leg's ``kind`` (``up`` or ``down``) for one request: a second one at the
        same time is refused (429), so one agent cannot stack requests (and their bodies)."""
        self._check_open()
        if kind in self._busy:
            raise TooManyRequests(
                f"another {kind} request of this leg is still being answered",
                field="leg",
                code="LEG_BUSY",
            )
        self._busy.add(kind)
        try:
            yield
        finally:
            self._busy.discard(kind)

    async def up(self, first: int, messages: list[bytes], wait: float = UP_WAIT) -> int:
        """Take a batch starting at message ``first`` once the splice has room for it (waiting
        up to ``wait`` seconds: past that, nothing is taken and the agent sends it again);
        answers the number of messages received in all."""
        self._check_open()
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait_for(
                        lambda: self._received_bytes <= RECEIVE_LIMIT or self.finished
                    )
            self._check_open()
            if self._received_bytes <= RECEIVE_LIMIT:
                for message in self._inbox.accept(first, messages):
                    self._received.put_nowait(message)
                    self._received_bytes += len(message)
            return self._inbox.received

    async def down(self, acknowledged: int, wait: float) -> tuple[int, list[bytes]]:
        """Forget the messages the agent holds, then the next ones (waiting up to ``wait``
        seconds for some): their first number and the messages. Raises ``TunnelClosed`` once
        the leg is closed and the agent has everything."""
        self._check_open()
        async with self._changed:
            self._outbox.acknowledge(acknowledged)
            self._changed.notify_all()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._changed.wait_for(
                        lambda: self._outbox.batch(1)[1] or self._closing or self.finished
                    )
            first, messages = self._outbox.batch(MAX_BATCH_BYTES)
        if not messages and self._closing:
            self._finish()
        self._check_open()
        return first, messages

    def _check_open(self) -> None:
        self.seen = time.monotonic()
        if self._finished.is_set():
            raise TunnelClosed("the agent's HTTP leg is closed")


class HttpLegs:
    """The HTTP legs open in this manager process, by id (in memory, as the WebSockets)."""

    def __init__(self) -> None:
        self._legs: dict[str, HttpLeg] = {}
        self._watchdog: asyncio.Task[None] | None = None

    def add(self, leg: HttpLeg) -> None:
        self._legs[leg.id] = leg
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    def get(self, leg_id: str, session_id: str, caller: Principal) -> HttpLeg:
        """The leg, if it is this session's and the caller's deployment's; else 404."""
        leg = self._legs.get(leg_id)
        if leg is None or leg.session_id != session_id or leg.deployment_id != caller.deployment_id:
            raise NotFound(f"debug session {session_id} has no such agent leg", field="leg")
        return leg

    async def _watch(self) -> None:
        """End legs the agent stopped asking for; forget finished ones."""
        while self._legs:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            for leg_id, leg in list(self._legs.items()):
                if not leg.finished and now - leg.seen > IDLE_TIMEOUT:
                    log.info("agent HTTP leg of debug session %s lost", leg.session_id)
                    await leg.abort()
                if leg.finished and now - leg.seen > LINGER:
                    del self._legs[leg_id]


def legs_of(request: Request) -> HttpLegs:
    return app_held(request, "debug_http_legs", HttpLegs)


router = APIRouter(tags=["agent"])

_BATCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {BATCH_TYPE: {"schema": {"type": "string", "format": "binary"}}},
    }
}
_BATCH_ANSWER = {200: {"content": {BATCH_TYPE: {"schema": {"type": "string", "format": "binary"}}}}}


def _closed(leg: HttpLeg) -> Gone:
    return Gone(
        f"the agent leg of debug session {leg.session_id} is closed",
        field="leg",
        code="LEG_CLOSED",
    )


@router.post("/v1/agent/debug-tunnels/{session_id}/http", status_code=201)
async def agent_debug_http_leg(request: Request, session_id: str, agent: Agent) -> dict[str, str]:
    """The agent's leg of a spliced pull-model session over plain HTTP requests, for an agent
    that long-polls (:mod:`alien.manager.debug_http_leg`): authenticated as the WebSocket leg
    is; answers the leg's id, which its requests name from then on."""
    dial = dials_of(request).claim(
        session_id, agent.deployment_id, request.headers.get(CREDENTIAL_HEADER)
    )
    if not dial.splice or dial.arrived.done():
        raise Conflict(
            f"debug session {session_id} no longer waits for its agent",
            field="session_id",
            code="DEBUG_AGENT_UNAVAILABLE",
        )
    assert agent.deployment_id is not None
    leg = HttpLeg(session_id, agent.deployment_id)
    legs_of(request).add(leg)
    dial.arrived.set_result(leg)
    log.info("agent leg of debug tunnel %s opened (HTTP, spliced)", session_id)
    return {"leg_id": leg.id}


LegId = Annotated[
    str,
    Header(
        alias=LEG_ID_HEADER,
        max_length=64,
        description="the leg's id, as its opening answered (a header: never in a URL a proxy logs)",
    ),
]


@router.post("/v1/agent/debug-tunnels/{session_id}/http/up", openapi_extra=_BATCH_BODY)
async def leg_up(
    request: Request,
    session_id: str,
    leg_id: LegId,
    caller: Agent,
    seq: Annotated[int, Query(ge=0, description="the number of the batch's first message")],
) -> dict[str, int]:
    """Messages from the agent (a batch, see :mod:`alien.protocol.tunnel_leg`), taken once the
    manager has room for them (else, after 15 s, not taken: send them again); answers how many
    messages the manager has received in all."""
    leg = legs_of(request).get(leg_id, session_id, caller)
    try:
        with leg.one_at_a_time("up"):
            body = await request.body()  # at most 4 MiB (body_limit.py)
            received = await leg.up(seq, decode_batch(body))
    except TunnelClosed:
        raise _closed(leg) from None
    return {"received": received}


@router.get("/v1/agent/debug-tunnels/{session_id}/http/down", responses=_BATCH_ANSWER)
async def leg_down(
    request: Request,
    session_id: str,
    leg_id: LegId,
    caller: Agent,
    ack: Annotated[int, Query(ge=0, description="how many messages the agent has received")],
    wait: Annotated[float, Query(ge=0, le=MAX_DOWN_WAIT)] = MAX_DOWN_WAIT,
) -> Response:
    """The next messages for the agent, as soon as there are any (at most ``wait`` seconds);
    the ``alien-leg-first`` header numbers the first."""
    leg = legs_of(request).get(leg_id, session_id, caller)
    try:
        with leg.one_at_a_time("down"):
            first, messages = await leg.down(ack, wait)
    except TunnelClosed:
        raise _closed(leg) from None
    body = encode_batch(messages)
    return Response(body, media_type=BATCH_TYPE, headers={FIRST_HEADER: str(first)})


@router.delete("/v1/agent/debug-tunnels/{session_id}/http", status_code=204)
async def leg_close(request: Request, session_id: str, leg_id: LegId, caller: Agent) -> Response:
    """The agent leaves the tunnel."""
    await legs_of(request).get(leg_id, session_id, caller).abort()
    return Response(status_code=204)
