"""The agent's connection to the manager: one WebSocket, or HTTPS long-polling when that fails.

Both transports carry the messages of :mod:`alien.protocol.agent_channel` and look the same to the
agent (``send`` an agent message, ``receive`` the next manager message), so the agent's logic
does not care which one it has:

* ``WebSocketChannel`` — ``/v1/agent/connect``; the manager pushes ``desired_release`` the moment
  a release is created. Pings (every 20 s) detect a dead peer.
* ``PollChannel`` — ``POST /v1/agent/status`` for agent messages (replies are queued as if they
  had been pushed) and a background ``GET /v1/agent/next`` long poll, answered by the manager as
  soon as work appears: still no poll interval in the path, just one HTTP request held open.

A handshake the manager itself refuses with 401/403 (its JSON error body) is the token's fault
and raises ``Unauthenticated``/``Forbidden``; a 409 ``AGENT_CONFLICT`` (another agent process
serves this deployment) is raised as is, on either transport; any other failure to establish the
WebSocket (a proxy in the way answering 403 or 400, a timeout, …) raises
``WebSocketUnavailable`` so the agent can fall back to polling. A dropped connection raises
``ManagerUnreachable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Protocol

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from alien.client.aio import AsyncManagerClient
from alien.client.errors import ManagerUnreachable, error_from_body, unreachable
from alien.client.transport import USER_AGENT
from alien.errors import AlienError, NotFound
from alien.protocol.agent_channel import (
    AGENT_CONFLICT,
    AGENT_INSTANCE_HEADER,
    AgentMessage,
    ChannelError,
    DesiredRelease,
    ManagerMessage,
    encode,
    parse_manager_message,
)
from alien.protocol.deployment import parse_status
from alien.tunnel.websocket_client import websocket_url

CLOSE_DEPLOYMENT_GONE = 4404
CONNECT_PATH = "/v1/agent/connect"
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
PING_SECONDS = 20.0
POLL_WAIT = 25.0
_CODE = re.compile(r"[A-Z][A-Z0-9_]{0,63}")


class WebSocketUnavailable(AlienError):
    """The WebSocket could not be established for a reason other than the token."""

    code = "WEBSOCKET_UNAVAILABLE"
    status = 502


class DeploymentGone(NotFound):
    """The manager no longer has this deployment (it was deleted there)."""

    code = "DEPLOYMENT_GONE"


class Channel(Protocol):
    name: str

    async def send(self, message: AgentMessage) -> None: ...

    async def receive(self) -> ManagerMessage: ...

    async def aclose(self) -> None: ...


class WebSocketChannel:
    name = "websocket"

    def __init__(self, ws: ClientConnection, base_url: str) -> None:
        self._ws = ws
        self._base_url = base_url

    @classmethod
    async def open(
        cls, base_url: str, token: str, *, instance: str | None = None, timeout: float = 10.0
    ) -> WebSocketChannel:
        headers = {"Authorization": f"Bearer {token}"}
        if instance is not None:
            headers[AGENT_INSTANCE_HEADER] = instance
        try:
            ws = await connect(
                websocket_url(base_url, CONNECT_PATH),
                additional_headers=headers,
                user_agent_header=USER_AGENT,
                open_timeout=timeout,
                ping_interval=PING_SECONDS,
                ping_timeout=PING_SECONDS,
                close_timeout=2.0,
                max_size=MAX_MESSAGE_BYTES,
                compression=None,  # small JSON messages: deflate costs more CPU than it saves
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            error = error_from_body(status, exc.response.body or b"")
            if (status in {401, 403} and not error.code.startswith("HTTP_")) or refused_agent(
                error
            ):
                raise error from None  # the manager's own answer: the token or the agent refused
            raise WebSocketUnavailable(
                f"the manager refused the WebSocket with HTTP {status}", field="manager"
            ) from None
        except (InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise WebSocketUnavailable(
                f"no WebSocket to the manager: {exc or type(exc).__name__}", field="manager"
            ) from None
        except OSError as exc:
            raise unreachable(base_url, exc) from None
        return cls(ws, base_url)

    async def send(self, message: AgentMessage) -> None:
        try:
            await self._ws.send(encode(message))
        except ConnectionClosed as exc:
            raise self._closed(exc) from None

    async def receive(self) -> ManagerMessage:
        try:
            raw = await self._ws.recv()
        except ConnectionClosed as exc:
            raise self._closed(exc) from None
        return parse_manager_message(raw)

    async def aclose(self) -> None:
        await self._ws.close()

    def _closed(self, exc: ConnectionClosed) -> AlienError:
        if exc.rcvd is not None and exc.rcvd.code == CLOSE_DEPLOYMENT_GONE:
            return DeploymentGone("the manager no longer has this deployment", field="deployment")
        return ManagerUnreachable(
            f"the connection to the manager at {self._base_url} closed", field="manager"
        )


class PollChannel:
    name = "poll"

    def __init__(
        self,
        client: AsyncManagerClient,
        *,
        wait: float = POLL_WAIT,
        capabilities: tuple[str, ...] = (),
    ) -> None:
        """``capabilities``: what the agent's ``hello`` lists; each poll names them, so the
        manager can hand it a message for one (``tunnel_open``) in the poll's answer."""
        self._client = client
        self._wait = wait
        self._capabilities = capabilities
        self._queue: asyncio.Queue[ManagerMessage | BaseException] = asyncio.Queue()
        self._known: str | None = None
        self._poller: asyncio.Task[None] | None = None

    async def send(self, message: AgentMessage) -> None:
        try:
            poll = await self._client.agent_message(message.model_dump(mode="json"))
        except AlienError as exc:
            if (
                isinstance(exc, ManagerUnreachable)
                or exc.status in {401, 403, 404}
                or refused_agent(exc)
            ):
                raise
            # Refused like the WebSocket refuses: an ``error`` message the agent resynchronises on.
            self._queue.put_nowait(_as_channel_error(exc))
            return
        for reply in poll.messages:
            self._queue.put_nowait(reply)

    async def receive(self) -> ManagerMessage:
        if self._poller is None:
            self._poller = asyncio.create_task(self._poll(), name="agent-long-poll")
        item = await self._queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    async def _poll(self) -> None:
        try:
            while True:
                poll = await self._client.agent_next(self._wait, self._known, self._capabilities)
                for message in poll.messages:
                    if isinstance(message, DesiredRelease):
                        self._known = message.release_id
                    self._queue.put_nowait(message)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._queue.put_nowait(exc)

    async def aclose(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._poller


def refused_agent(error: AlienError) -> bool:
    """Whether the manager refused this agent because another instance serves the deployment."""
    return error.status == 409 and error.code == AGENT_CONFLICT


def _as_channel_error(exc: AlienError) -> ChannelError:
    status = exc.details.get("status")
    try:
        parsed = parse_status(status) if status is not None else None
    except AlienError:
        parsed = None
    return ChannelError(
        code=exc.code if _CODE.fullmatch(exc.code) else "ERROR",
        message=exc.message[:4096] or exc.code,
        field=exc.field[:128] if exc.field else None,
        status=parsed,
    )
