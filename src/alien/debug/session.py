"""The CLI's side of one debug session: open it, wait for approval, hold its tunnel, end it.

The session is opened with the engineer's API key; the manager answers with the session's own
short-lived token, which is used for one thing only: the tunnel's WebSocket handshake. Requests
the loopback proxy accepts go through :class:`SessionUpstream`, one tunnel stream each. When the
manager ends the session (revoked, expired) it drops the tunnel at once; :meth:`DebugSession.
watch` notices, asks the manager why, and from then on every request is answered 403 with that
reason instead of a bare 502.

A tunnel lost while the session is still active (a network blip, a manager restart) is dialled
again, with backoff, for up to :data:`REDIAL_WINDOW` seconds: the session is the authority, the
tunnel only its transport, and the manager serves any number of tunnels of an active session
(fresh credentials for each). Requests that arrive meanwhile wait for the new tunnel. One in
flight on the lost tunnel that had no answer yet is sent again on the new one when that is safe
(``GET``/``HEAD``/``OPTIONS`` without a body: :func:`~alien.tunnel.http.replayable`) — many
tools (``curl``, ``kubectl``) never retry a 502 themselves; any other fails (502).
The session ends for the CLI only when the manager says it ended, when it expired, or when no
tunnel could be had within the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from datetime import UTC, datetime

from alien.client.errors import error_from_body, unreachable
from alien.client.lite import LiteClient
from alien.debug import session_calls
from alien.debug.session_calls import DebugSessionInfo, OpenedSession
from alien.errors import AlienError, Forbidden
from alien.protocol.errors import TunnelError
from alien.protocol.http_exchange import Body, RequestHead, UpstreamResponse
from alien.tunnel import WIDE_WINDOWS, TunnelConnection
from alien.tunnel.errors import TunnelClosed
from alien.tunnel.http import TunnelUpstream, replayable
from alien.tunnel.websocket_client import (
    HandshakeFailed,
    HandshakeRefused,
    WebSocketClient,
    dial,
    websocket_url,
)

#: The longest single long-poll the manager grants; longer waits are several polls.
MAX_POLL = 60.0
CONNECT_TIMEOUT = 15.0
REDIAL_WINDOW = 30.0
"""Seconds a lost tunnel of an active session is dialled again before the session is given up."""
REDIAL_DELAYS = (0.05, 0.2, 0.5, 1.0, 2.0)
"""Pause before each redial attempt (the last one repeats)."""


class SessionEnded(Forbidden):
    """The session is over: requests are refused with why (AWS clients print ``AccessDenied``)."""

    code = "DEBUG_SESSION_ENDED"


class ApprovalPending(AlienError):
    """The session was not approved within the time the engineer was willing to wait."""

    code = "DEBUG_APPROVAL_TIMEOUT"
    status = 408


def end_message(info: DebugSessionInfo) -> str:
    """One line saying how a session ended, e.g. ``… was revoked by key_…: incident over``."""
    by = f" by {info.ended_by}" if info.ended_by and info.state != "closed" else ""
    reason = f": {info.end_reason}" if info.end_reason else ""
    return f"debug session {info.id} was {info.state}{by}{reason}"


class DebugSession:
    """One open session: its state as last seen, its tunnel, and how it ended (``end``)."""

    def __init__(self, client: LiteClient, opened: OpenedSession) -> None:
        self._client = client
        self._token = opened.token
        self.info: DebugSessionInfo = opened
        self.end: str | None = None
        self._websocket: WebSocketClient | None = None
        self.connection: TunnelConnection | None = None
        self._tunnel: TunnelUpstream | None = None
        self._redialing: asyncio.Future[None] | None = None
        self._changed = asyncio.Event()
        """Set (and replaced) whenever the tunnel was replaced or the session ended."""
        self.notify: Callable[[str], None] = lambda line: None
        """Told of a lost tunnel and of its redial (the CLI prints these)."""

    def __repr__(self) -> str:
        return f"DebugSession({self.id!r}, state={self.info.state!r})"

    @property
    def id(self) -> str:
        return self.info.id

    @classmethod
    async def open(
        cls, client: LiteClient, deployment: str, reason: str, ttl_seconds: int | None
    ) -> DebugSession:
        """Ask the manager for a session (policy refusals raise, e.g. 403 DEBUG_FORBIDDEN)."""
        opened = await client.call(session_calls.open_session(deployment, reason, ttl_seconds))
        return cls(client, opened)

    async def wait_until_granted(
        self, timeout: float, on_wait: Callable[[DebugSessionInfo], None] | None = None
    ) -> DebugSessionInfo:
        """Return once the session is active; raise if it ended or ``timeout`` seconds passed
        while it was still waiting for approval (``on_wait`` is told once, before waiting)."""
        deadline = time.monotonic() + timeout
        told = False
        while self.info.state == "pending_approval":
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ApprovalPending(
                    f"debug session {self.id} was not approved within {timeout:g} s",
                    field="approval",
                )
            if on_wait is not None and not told:
                on_wait(self.info)
                told = True
            self.info = await self._client.call(
                session_calls.wait_session(self.id, "pending_approval", min(remaining, MAX_POLL))
            )
        if self.info.state != "active":
            raise SessionEnded(end_message(self.info), field="session")
        return self.info

    async def connect(self) -> TunnelConnection:
        """Open the session's tunnel (authenticated with the session token only)."""
        url = websocket_url(self._client.config.base_url, self.info.tunnel_path)
        try:
            self._websocket = await dial(
                url, {"Authorization": f"Bearer {self._token}"}, timeout=CONNECT_TIMEOUT
            )
        except HandshakeRefused as exc:
            raise error_from_body(exc.status, exc.body) from None
        except (OSError, TimeoutError, HandshakeFailed) as exc:
            raise unreachable(self._client.config.base_url, exc) from None
        connection = TunnelConnection(self._websocket, "client", settings=WIDE_WINDOWS)
        await connection.start()
        self.connection, self._tunnel = connection, TunnelUpstream(connection)
        self._signal_change()
        return connection

    def _signal_change(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    @property
    def upstream(self) -> SessionUpstream:
        if self.connection is None:
            raise RuntimeError("connect the tunnel first")
        return SessionUpstream(self)

    async def tunnel(self) -> TunnelUpstream:
        """The tunnel to send through: while a lost one is being dialled again, the new one."""
        if self._redialing is not None:
            await asyncio.shield(self._redialing)
        assert self._tunnel is not None, "connect the tunnel first"
        return self._tunnel

    async def tunnel_after(self, lost: TunnelUpstream) -> TunnelUpstream | None:
        """The tunnel that replaced ``lost`` once it is dialled; ``None`` if the session ended
        first (or no tunnel came within the redial window)."""
        try:
            async with asyncio.timeout(REDIAL_WINDOW + CONNECT_TIMEOUT):
                while self.end is None and self._tunnel is lost:
                    await self._changed.wait()
        except TimeoutError:
            return None
        return self._tunnel if self.end is None else None

    async def watch(self) -> str:
        """Hold the session's tunnel until the session ends (redialling a lost tunnel while the
        session is active); returns (and keeps) why it ended."""
        if self.connection is None:
            raise RuntimeError("connect the tunnel first")
        try:
            while self.end is None:
                await self.connection.wait_closed()
                if self.end is None and await self._still_active():
                    await self._redial()
            return self.end
        finally:
            self._signal_change()

    async def _still_active(self) -> bool:
        """Ask the manager whether the session goes on; if not, keep why it ended. ``True``
        also when the manager cannot answer (it may be restarting: redialling will tell); a
        refusal (the engineer's key revoked, say) ends the session."""
        if self.info.expires_at is not None and datetime.now(UTC) >= self.info.expires_at:
            self.end = f"debug session {self.id} expired"
            return False
        try:
            self.info = await self._client.call(session_calls.get_session(self.id))
        except AlienError as exc:
            if exc.status >= 500:  # unreachable, or failing: not an answer
                return True
            self.end = f"lost the tunnel of debug session {self.id} ({exc.message})"
            return False
        if self.info.ended:
            self.end = end_message(self.info)
            return False
        return True

    async def why_ended(self) -> str | None:
        """Why the session ended (asking the manager if need be); ``None`` while it goes on,
        or when the manager cannot tell."""
        if self.end is None:
            await self._still_active()
        return self.end

    async def _redial(self) -> None:
        """Dial the active session's tunnel again (``REDIAL_DELAYS``, for ``REDIAL_WINDOW``
        seconds); when the session ended meanwhile or no tunnel could be had, ``end`` says why."""
        self.notify(f"lost the tunnel of debug session {self.id}: reconnecting")
        self._redialing = asyncio.get_running_loop().create_future()
        deadline = time.monotonic() + REDIAL_WINDOW
        try:
            for attempt in itertools.count():
                await asyncio.sleep(REDIAL_DELAYS[min(attempt, len(REDIAL_DELAYS) - 1)])
                with contextlib.suppress(AlienError):
                    await self.connect()
                    self.notify(f"debug session {self.id}: tunnel reconnected")
                    return
                if time.monotonic() >= deadline or not await self._still_active():
                    break
            self.end = self.end or (
                f"lost the tunnel of debug session {self.id} and could not reconnect "
                f"within {REDIAL_WINDOW:g} s"
            )
        finally:
            self._redialing.set_result(None)
            self._redialing = None

    async def disconnect(self) -> None:
        """Close the tunnel (gracefully, briefly) if it is still up."""
        if self.connection is not None and not self.connection.closed:
            self.end = self.end or f"debug session {self.id} is closing"
            await self.connection.close(timeout=2.0)
        if self._websocket is not None:
            await self._websocket.close()

    async def close(self, exit_code: int | None) -> DebugSessionInfo:
        """End the session, reporting ``exit_code`` (idempotent on the manager's side)."""
        self.info = await self._client.call(session_calls.close_session(self.id, exit_code))
        return self.info


class SessionUpstream:
    """The tunnel while the session lives; afterwards a refusal that says why it ended."""

    def __init__(self, session: DebugSession) -> None:
        self._session = session

    def _ended(self) -> SessionEnded:
        assert self._session.end is not None
        return SessionEnded(
            self._session.end, field="session", details={"aws_code": "AccessDenied"}
        )

    async def send(self, head: RequestHead, body: Body) -> UpstreamResponse:
        if self._session.end is not None:
            raise self._ended()
        tunnel = await self._session.tunnel()
        try:
            return await self._send(tunnel, head, body)
        except TunnelClosed:
            if not replayable(head):
                raise
            again = await self._session.tunnel_after(tunnel)
            if again is None:
                if self._session.end is not None:
                    raise self._ended() from None
                raise
            return await self._send(again, head, body)

    async def _send(
        self, tunnel: TunnelUpstream, head: RequestHead, body: Body
    ) -> UpstreamResponse:
        if self._session.end is not None:
            raise self._ended()
        try:
            return await tunnel.send(head, body)
        except TunnelError:
            if self._session.end is not None:
                raise self._ended() from None
            raise
