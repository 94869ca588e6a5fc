"""Requests that upgrade their connection (``Connection: Upgrade`` — kubectl's ``exec``,
``attach`` and ``port-forward``), carried through a session's loopback endpoint as raw bytes.

uvicorn hands an ASGI app a WebSocket upgrade as messages, and any other upgrade not at all;
the far end (the cluster's API server) expects the client's own handshake and frames. So the
endpoint's HTTP protocol (:func:`upgrading_http`) takes such a request off uvicorn once its head
is parsed and gives the connection to :class:`RawUpgrade`: the request goes the way of any other
(the endpoint's checks, then its upstream — the tunnel), the answer's head is written back, and
after ``101 Switching Protocols`` bytes flow as they are, both ways, until either side ends;
any other answer is written whole and the connection closed. Nothing here parses the upgraded
protocol, so a WebSocket and an SPDY stream are the same to it.
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from alien.errors import AlienError
from alien.protocol.http_exchange import Body, RequestHead, ResponseHead, UpstreamResponse
from alien.serving import CoalescingHttp

log = logging.getLogger(__name__)

Respond = Callable[[RequestHead, Body], Awaitable[UpstreamResponse]]
ErrorResponder = Callable[[RequestHead, AlienError], UpstreamResponse]

READ_LIMIT = 256 * 1024
"""Client bytes queued for the upstream before the socket stops being read."""
END_GRACE = 1.0
"""Seconds the far side has to end once the client closed its connection."""

_RUNNING: set[asyncio.Task[None]] = set()


def upgrading_http(respond: Respond, error_response: ErrorResponder) -> type[CoalescingHttp]:
    """uvicorn's HTTP protocol for an endpoint whose upgrade requests go to ``respond``."""

    class UpgradingHttp(CoalescingHttp):
        def _should_upgrade_to_ws(self) -> bool:
            return True  # every upgrade is taken over here, whatever uvicorn has installed

        def _should_upgrade(self) -> bool:
            return self._get_upgrade() is not None

        def handle_websocket_upgrade(self) -> None:
            self.connections.discard(self)
            target = self.url.decode("latin-1")
            headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.headers]
            head = RequestHead.create(self.scope["method"], target, headers)
            protocol = RawUpgrade(head, respond, error_response)
            self.transport.set_protocol(protocol)
            protocol.connection_made(self.transport)  # type: ignore[arg-type]

    return UpgradingHttp


class RawUpgrade(asyncio.Protocol):
    """One upgraded connection: see the module docstring."""

    def __init__(self, head: RequestHead, respond: Respond, error_response: ErrorResponder):
        self._head = head
        self._respond = respond
        self._error_response = error_response
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue()
        self._queued = 0
        self._reading_paused = False
        self._writable = asyncio.Event()
        self._writable.set()
        self._transport: asyncio.Transport | None = None
        self._task: asyncio.Task[None] | None = None

    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        self._task = asyncio.create_task(self._run(), name="debug-upgrade")
        _RUNNING.add(self._task)
        self._task.add_done_callback(_RUNNING.discard)

    def data_received(self, data: bytes) -> None:
        self._incoming.put_nowait(data)
        self._queued += len(data)
        if self._queued > READ_LIMIT and not self._reading_paused and self._transport:
            self._reading_paused = True
            self._transport.pause_reading()

    def eof_received(self) -> bool:
        """The client closed. Upgraded protocols (WebSocket, SPDY) end with a close handshake
        of their own, so the far side's end is usually a moment behind: it gets
        :data:`END_GRACE` to arrive (the exchange then ends whole), then the connection closes
        (and ``connection_lost`` ends the exchange). Over TLS a connection cannot stay half
        open: it closes at once."""
        self._incoming.put_nowait(None)
        if self._transport is None or self._transport.get_extra_info("sslcontext") is not None:
            return False
        asyncio.get_running_loop().call_later(END_GRACE, self._transport.close)
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        """The client is gone: so is the exchange (the far end's connection is closed with it,
        rather than left open until the session ends)."""
        self._incoming.put_nowait(None)
        self._writable.set()
        if self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    async def _client_bytes(self) -> AsyncIterator[bytes]:
        while (chunk := await self._incoming.get()) is not None:
            self._queued -= len(chunk)
            if self._reading_paused and self._queued < READ_LIMIT // 2 and self._transport:
                self._reading_paused = False
                self._transport.resume_reading()
            yield chunk

    async def _run(self) -> None:
        assert self._transport is not None
        head = self._head
        try:
            response = await self._respond(head, self._client_bytes())
        except AlienError as exc:
            log.info("refused %s %s: %s", head.method, head.target.partition("?")[0], exc)
            response = self._error_response(head, exc)
        except Exception:
            log.exception(
                "debug endpoint failed on %s %s", head.method, head.target.partition("?")[0]
            )
            response = self._error_response(head, AlienError("the debug endpoint failed"))
        try:
            self._transport.write(_head_bytes(response.head))
            async for chunk in response.body:
                self._transport.write(chunk)
                await self._writable.wait()
        except Exception as exc:
            log.info("an upgraded connection ended: %r", exc)
        finally:
            await response.aclose()
            self._transport.close()


def _head_bytes(head: ResponseHead) -> bytes:
    try:
        phrase = http.HTTPStatus(head.status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {head.status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in head.headers if name != "connection"]
    lines.append("connection: upgrade" if head.status == 101 else "connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
