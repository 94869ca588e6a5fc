"""A WebSocket client for the tunnel, receiving without copies (the CLI's and the agent's dial).

Why not ``websockets`` here: see :mod:`alien.protocol.websocket` (three copies of every received
byte). This is the I/O half: an ``asyncio.BufferedProtocol``, so the event loop receives straight
into the buffer the frame reader names — for a large frame, the payload handed to the tunnel.
The opening handshake is parsed by h11; sending masks with the C implementation ``websockets``
ships. It offers no extension and no subprotocol, and implements the :class:`MessageTransport`
interface only: ``recv`` answers each binary frame's payload (the tunnel's byte stream may be
cut anywhere, so frames of a fragmented message need no joining).

Backpressure both ways: ``send`` waits while the socket's write buffer is above ``write_limit``;
reading pauses while more than ``read_limit`` bytes wait for ``recv``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import h11

from alien.protocol.websocket import (
    Close,
    Control,
    Data,
    Event,
    FrameReader,
    Opcode,
    WebSocketError,
    accept_value,
    close_payload,
    frame_header,
)
from alien.tunnel.errors import TunnelClosed
from alien.tunnel.proxy_connect import connect_via, proxy_for
from alien.tunnel.transport import MAX_RECEIVED_MESSAGE, WRITE_LIMIT, MiB

MAX_RESPONSE_HEAD = 64 * 1024
MAX_REFUSAL_BODY = 64 * 1024
CLOSE_TIMEOUT = 2.0


def websocket_url(base_url: str, path: str) -> str:
    """The WebSocket URL of the manager's ``path`` (``https`` → ``wss``, ``http`` → ``ws``)."""
    scheme, sep, rest = base_url.rstrip("/").partition("://")
    return f"{'wss' if scheme == 'https' else 'ws'}{sep}{rest}{path}"


class HandshakeRefused(Exception):
    """The server answered the upgrade with another status (its body, usually our JSON error)."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"the server refused the WebSocket with HTTP {status}")
        self.status = status
        self.body = body


class HandshakeFailed(Exception):
    """The server's answer is not a valid WebSocket handshake."""


async def dial(
    url: str,
    headers: dict[str, str],
    *,
    timeout: float,
    max_frame: int = MAX_RECEIVED_MESSAGE,
    write_limit: int = WRITE_LIMIT,
    read_limit: int = 4 * MiB,
) -> WebSocketClient:
    """Connect to ``url`` (``ws://`` or ``wss://``) and complete the opening handshake.

    Goes through the environment's HTTP proxy when one applies (:mod:`.proxy_connect`). Raises
    ``OSError``/``TimeoutError`` when unreachable, :class:`HandshakeRefused` for a non-101
    answer, :class:`HandshakeFailed` for a broken one."""
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    loop = asyncio.get_running_loop()
    protocol = _Protocol(max_frame, read_limit)
    tls = {"ssl": ssl.create_default_context(), "server_hostname": host} if secure else {}
    async with asyncio.timeout(timeout):
        proxy = proxy_for(secure, host)
        if proxy is None:
            transport, _ = await loop.create_connection(lambda: protocol, host, port, **tls)
        else:
            sock = await connect_via(proxy, host, port)
            transport, _ = await loop.create_connection(lambda: protocol, sock=sock, **tls)
        transport.set_write_buffer_limits(high=write_limit)
        try:
            await protocol.handshake(parts.netloc.rsplit("@", 1)[-1], target, headers)
        except BaseException:
            transport.abort()
            raise
    return WebSocketClient(protocol)


SMALL_PAYLOAD = 8 * 1024
"""Payloads up to this size are masked in Python; larger ones with the C routine ``websockets``
ships, imported on first use: importing ``websockets`` costs ``alien debug`` ~30 ms of its
set-up, and most of what it sends is small requests."""


def _masked(payload: bytes | bytearray | memoryview, mask: bytes) -> bytes:
    """``payload`` XORed with the repeated 4-byte ``mask`` (RFC 6455 5.3)."""
    size = len(payload)
    if size > SMALL_PAYLOAD:
        from websockets.frames import apply_mask  # the C speedup (built on our wheels)

        return apply_mask(payload, mask)
    key = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(
        size, "little"
    )


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, max_frame: int, read_limit: int) -> None:
        self.transport: asyncio.Transport | None = None
        self._reader = FrameReader(max_frame)
        self._read_limit = read_limit
        self._http: h11.Connection | None = h11.Connection(h11.CLIENT)
        self._head = bytearray(MAX_RESPONSE_HEAD)
        self._response: h11.InformationalResponse | None = None
        self._refusal: tuple[int, bytearray] = (0, bytearray())
        self._opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._received: deque[bytes] = deque()
        self._queued = 0
        self._paused_reading = False
        self._wakeup: asyncio.Future[None] | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()
        self.ended: str | None = None  # why the connection is over, once it is
        self.lost = asyncio.get_running_loop().create_future()

    # --- the opening handshake ---------------------------------------------------------------

    async def handshake(self, host: str, target: str, headers: dict[str, str]) -> None:
        assert self._http is not None and self.transport is not None
        key = base64.b64encode(os.urandom(16)).decode()
        request = h11.Request(
            method="GET",
            target=target,
            headers=[
                ("Host", host),
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13"),
                *headers.items(),
            ],
        )
        self.transport.write(self._http.send(request) or b"")
        self._http.send(h11.EndOfMessage())
        await self._opened
        self._check_accept(key)

    def _on_handshake_bytes(self, data: bytes) -> None:
        assert self._http is not None
        self._http.receive_data(data)
        try:
            while True:
                event = self._http.next_event()
                if event is h11.NEED_DATA:
                    return
                if isinstance(event, h11.InformationalResponse) and event.status_code == 101:
                    self._response = event
                    self._switch()
                    return
                if isinstance(event, h11.Response):
                    self._refusal = (event.status_code, bytearray())
                elif isinstance(event, h11.Data):
                    body = self._refusal[1]
                    body += event.data[: MAX_REFUSAL_BODY - len(body)]
                elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                    self._fail_opening(HandshakeRefused(self._refusal[0], bytes(self._refusal[1])))
                    return
        except h11.RemoteProtocolError as exc:
            self._fail_opening(HandshakeFailed(f"not an HTTP answer: {exc}"))

    def _switch(self) -> None:
        assert self._http is not None
        trailing, _ = self._http.trailing_data
        self._http = None
        if not self._opened.done():
            self._opened.set_result(None)
        if trailing:
            view = self._reader.buffer()
            view[: len(trailing)] = trailing
            self._received_bytes(len(trailing))

    def _check_accept(self, key: str) -> None:
        assert self._response is not None
        fields = {name.lower(): value for name, value in self._response.headers}
        problems = [
            fields.get(b"upgrade", b"").lower() != b"websocket" and "Upgrade",
            b"upgrade" not in fields.get(b"connection", b"").lower() and "Connection",
            fields.get(b"sec-websocket-accept", b"").decode("latin-1") != accept_value(key)
            and "Sec-WebSocket-Accept",
            b"sec-websocket-extensions" in fields and "Sec-WebSocket-Extensions",
        ]
        wrong = next((problem for problem in problems if problem), None)
        if wrong:
            raise HandshakeFailed(f"the server's {wrong} header is not a WebSocket handshake")

    def _fail_opening(self, exc: Exception) -> None:
        if not self._opened.done():
            self._opened.set_exception(exc)

    # --- asyncio.BufferedProtocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._http is not None:
            return memoryview(self._head)
        return self._reader.buffer()

    def buffer_updated(self, nbytes: int) -> None:
        if self._http is not None:
            self._on_handshake_bytes(bytes(self._head[:nbytes]))
            return
        self._received_bytes(nbytes)

    def eof_received(self) -> bool | None:
        if self._http is not None:
            self._on_handshake_bytes(b"")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_opening(ConnectionResetError(f"closed during the opening handshake ({exc})"))
        self.end(f"the connection was lost ({exc})" if exc else "the connection closed")
        self._can_write.set()
        if not self.lost.done():
            self.lost.set_result(None)

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # --- frames ------------------------------------------------------------------------------

    def _received_bytes(self, nbytes: int) -> None:
        try:
            self._deliver(self._reader.advance(nbytes))
        except WebSocketError as exc:
            self._fail(f"protocol error: {exc}", code=1002)

    def _deliver(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Data):
                if event.payload:
                    self._received.append(event.payload)
                    self._queued += len(event.payload)
            elif isinstance(event, Control) and event.opcode is Opcode.PING:
                self.write_frame(
                    Opcode.PONG, event.payload
                )  # a PONG needs nothing: we send no PING
            elif isinstance(event, Close):
                self._on_close(event)
        if self._queued > self._read_limit and not self._paused_reading and self.transport:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake()

    def _on_close(self, event: Close) -> None:
        already = self.ended is not None
        self.end(f"the server closed the WebSocket (code {event.code})")
        if not already:  # answer the closing handshake; the server then closes the TCP side
            self.write_frame(Opcode.CLOSE, close_payload(event.code or 1000))

    def _fail(self, why: str, *, code: int) -> None:
        if self.ended is None:
            self.write_frame(Opcode.CLOSE, close_payload(code))
        self.end(why)
        if self.transport is not None:
            self.transport.close()

    def end(self, why: str) -> None:
        """The WebSocket is over (the first reason stays); waiting ``recv`` calls wake up."""
        if self.ended is None:
            self.ended = why
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    def write_frame(self, opcode: Opcode, payload: bytes | bytearray | memoryview) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        mask = os.urandom(4)
        transport.write(frame_header(opcode, len(payload), mask))
        if payload:
            transport.write(_masked(payload, mask))

    async def next_payload(self) -> bytes:
        while not self._received:
            if self.ended is not None:
                raise TunnelClosed(f"the WebSocket closed: {self.ended}")
            self._wakeup = asyncio.get_running_loop().create_future()
            await self._wakeup
        payload = self._received.popleft()
        self._queued -= len(payload)
        if self._paused_reading and self._queued <= self._read_limit // 2 and self.transport:
            self._paused_reading = False
            self.transport.resume_reading()
        return payload

    async def writable(self) -> None:
        await self._can_write.wait()
        if self.ended is not None:
            raise TunnelClosed(f"the WebSocket closed: {self.ended}")


class WebSocketClient:
    """An open client WebSocket as a tunnel :class:`~alien.tunnel.transport.MessageTransport`."""

    def __init__(self, protocol: _Protocol) -> None:
        self._protocol = protocol

    async def send(self, data: bytes | memoryview) -> None:
        await self._protocol.writable()
        self._protocol.write_frame(Opcode.BINARY, data)

    async def recv(self) -> bytes:
        return await self._protocol.next_payload()

    async def close(self) -> None:
        """The closing handshake (briefly: the server's answer is waited for at most
        :data:`CLOSE_TIMEOUT`), then the TCP connection."""
        protocol = self._protocol
        if protocol.transport is None:
            return
        if protocol.ended is None:
            protocol.write_frame(Opcode.CLOSE, close_payload(1000))
            protocol.end("closed by us")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(protocol.lost)
        protocol.transport.close()

    async def abort(self) -> None:
        if self._protocol.transport is not None:
            self._protocol.transport.abort()
