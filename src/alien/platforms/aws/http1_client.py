"""The asyncio side of :mod:`alien.platforms.aws.http1`: connections, a keep-alive pool, streams.

One :class:`Connection` (an ``asyncio.Protocol``) carries one exchange at a time; a response's
body is handed out as it arrives, and reading from the socket pauses while more than
:data:`HIGH_WATER` bytes wait for the reader (a slow tunnel stops the upstream instead of
filling memory). :class:`Pool` keeps connections that ended their exchange cleanly, per origin,
for the next request. Request bodies are written as they come, with ``Content-Length`` when the
caller sent one and chunked otherwise; the socket's write buffer is waited on like a stream's
``drain``.

Connections go through the environment's HTTP proxy when httpx's would
(:func:`~alien.tunnel.proxy_connect.http_proxy`): to an ``https`` origin through a ``CONNECT``
tunnel, TLS inside it naming the origin's host; to an ``http`` origin (an emulator, a private
endpoint) to the proxy itself, each request in absolute form — ``origin`` followed by the target
byte for byte, the ``Host`` header untouched: a SigV4 signature covers both.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from alien.errors import ValidationError
from alien.platforms.aws.http1 import LAST_CHUNK, ResponseError, ResponseParser, chunk, request_head
from alien.protocol.http_exchange import Body
from alien.tunnel.proxy_connect import Proxy, http_proxy

HIGH_WATER = 1024 * 1024
"""Body bytes received but not yet taken, above which reading from the socket pauses."""
LOW_WATER = 256 * 1024
MAX_IDLE = 16
"""Idle connections kept per origin."""

PROXY_AUTHENTICATION_REQUIRED = 407

Origin = tuple[str, str, int]


def _declared_length(headers: Sequence[tuple[str, str]]) -> int | None:
    for name, value in headers:
        if name == "content-length":
            return int(value) if value.isdigit() else -1  # -1: no body can match it
    return None


def _length_mismatch(declared: int, what: str) -> ValidationError:
    """A body that is not as long as its ``content-length`` says: what a server would read as
    the next request (or wait for), so the exchange is abandoned and its connection closed."""
    return ValidationError(
        f"the request body has {what} bytes than its content-length ({declared})",
        field="content-length",
    )


class UpstreamError(ConnectionError):
    """The upstream could not be reached, or broke off the exchange."""


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: AsyncIterator[bytes]
    release: Callable[[], Awaitable[None]]


class Connection(asyncio.Protocol):
    def __init__(
        self, read_timeout: float, *, proxy: Proxy | None = None, origin: str = ""
    ) -> None:
        """``proxy``: the forwarding proxy this connection is to, which gets each request for
        ``origin`` (``scheme://host[:port]``) in absolute form."""
        self._read_timeout = read_timeout
        self._proxy = proxy
        self._origin = origin
        self._transport: asyncio.Transport | None = None
        self._parser: ResponseParser | None = None
        self._wakeup: asyncio.Future[None] | None = None
        self._can_write = asyncio.Event()
        self._can_write.set()
        self._paused = False
        self._error: Exception | None = None
        self.closed = False

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # bytes while idle: the connection is not in a known state
            self._fail(ResponseError("the upstream sent bytes without a request"))
            return
        try:
            parser.feed(data)
        except ResponseError as exc:
            self._fail(exc)
            return
        if parser.pending > HIGH_WATER and not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        if self._parser is not None:
            try:
                self._parser.feed_eof()
            except ResponseError as exc:
                self._error = exc
        self.closed = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self._parser.complete and self._error is None:
            self._error = UpstreamError(f"the upstream closed the connection: {exc!r}")
        self._can_write.set()
        self._wake()

    def pause_writing(self) -> None:
        self._can_write.clear()

    def resume_writing(self) -> None:
        self._can_write.set()

    # --- the exchange ---

    def _fail(self, exc: Exception) -> None:
        self._error = exc
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self._wakeup is not None and not self._wakeup.done():
            self._wakeup.set_result(None)

    async def _wait(self) -> None:
        self._wakeup = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout(self._read_timeout):
                await self._wakeup
        finally:
            self._wakeup = None

    def _check(self) -> None:
        if self._error is not None:
            raise self._error
        if self.closed and (self._parser is None or not self._parser.complete):
            raise UpstreamError("the upstream closed the connection")

    async def _write(self, data: bytes) -> None:
        assert self._transport is not None
        self._check()
        self._transport.write(data)
        if not self._can_write.is_set():
            await self._can_write.wait()

    async def exchange(
        self, method: str, target: str, headers: Sequence[tuple[str, str]], body: Body | None
    ) -> ResponseParser:
        """Send the request; return the parser once the response head is in (raises
        :class:`~alien.tunnel.proxy_connect.ProxyError` if the proxy wants credentials)."""
        parser = self._parser = ResponseParser(head_only=method == "HEAD")
        declared = _declared_length(headers)
        chunked = body is not None and declared is None
        extra = [("transfer-encoding", "chunked")] if chunked else []
        if self._proxy is not None:
            target, extra = self._origin + target, [*extra, *self._proxy.headers]
        await self._write(request_head(method, target, [*headers, *extra]))
        if body is not None:
            sent = 0
            async for data in body:
                sent += len(data)
                if declared is not None and sent > declared:  # the rest would be a request
                    raise _length_mismatch(declared, "more")
                if data:
                    await self._write(chunk(data) if chunked else data)
            if chunked:
                await self._write(LAST_CHUNK)
            elif sent != declared:
                raise _length_mismatch(declared, "fewer")
        while not parser.head_done:
            self._check()
            await self._wait()
        if self._proxy is not None and parser.status == PROXY_AUTHENTICATION_REQUIRED:
            raise self._proxy.refused(
                f"the request to {self._origin}", "407 Proxy Authentication Required"
            )
        return parser

    async def body(self, parser: ResponseParser) -> AsyncIterator[bytes]:
        while True:
            data = parser.take()
            if data is not None:
                if self._paused and parser.pending < LOW_WATER and self._transport is not None:
                    self._paused = False
                    self._transport.resume_reading()
                yield data
            elif parser.complete:
                return
            else:
                self._check()
                await self._wait()

    def finish(self) -> bool:
        """End the exchange; whether the connection can carry another one."""
        parser, self._parser = self._parser, None
        reusable = parser is not None and parser.reusable and not self.closed and not self._error
        if not reusable:
            self.close()
        return reusable

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class Pool:
    """Connections to upstream origins (``scheme://host[:port]``), reused while they last."""

    def __init__(self, *, connect_timeout: float = 30.0, read_timeout: float = 300.0) -> None:
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._idle: dict[Origin, list[Connection]] = {}
        self._tls: ssl.SSLContext | None = None

    async def request(
        self,
        origin: str,
        method: str,
        target: str,
        headers: Sequence[tuple[str, str]],
        body: Body | None,
    ) -> Response:
        """Send one request; the response's body streams, and ``release`` must be awaited
        after it (the connection goes back to the pool only if the response ended cleanly)."""
        key = _origin(origin)
        connection = self._take(key)
        if connection is not None and body is None:
            try:
                parser = await connection.exchange(method, target, headers, None)
            except (OSError, ResponseError):
                connection.close()  # closed by the upstream while idle: one fresh try
                connection = None
        elif connection is not None:
            connection.close()  # a body can be sent once: only on a fresh connection
            connection = None
        if connection is None:
            connection = await self._connect(key)
            try:
                parser = await connection.exchange(method, target, headers, body)
            except BaseException:
                connection.close()
                raise
        return self._response(key, connection, parser)

    def _response(self, key: Origin, connection: Connection, parser: ResponseParser) -> Response:
        async def release() -> None:
            if connection.finish():
                idle = self._idle.setdefault(key, [])
                if len(idle) < MAX_IDLE:
                    idle.append(connection)
                else:
                    connection.close()

        return Response(parser.status, parser.headers, connection.body(parser), release)

    def _take(self, key: Origin) -> Connection | None:
        idle = self._idle.get(key, [])
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, key: Origin) -> Connection:
        scheme, host, port = key
        tls = None
        if scheme == "https":
            if self._tls is None:
                self._tls = ssl.create_default_context()
            tls = self._tls
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self._connect_timeout):
            proxy = http_proxy(tls is not None, host, port)
            if proxy is None:
                _, connection = await loop.create_connection(
                    lambda: Connection(self._read_timeout), host, port, ssl=tls
                )
            elif tls is not None:
                _, connection = await loop.create_connection(
                    lambda: Connection(self._read_timeout),
                    sock=await proxy.connect(host, port),
                    ssl=tls,
                    server_hostname=host,
                )
            else:
                _, connection = await loop.create_connection(
                    lambda: Connection(self._read_timeout, proxy=proxy, origin=_netloc(key)),
                    sock=await proxy.open(),
                )
        return connection

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()


def _netloc(key: Origin) -> str:
    """``scheme://host[:port]`` of ``key`` (the port only when not the scheme's default)."""
    scheme, host, port = key
    name = f"[{host}]" if ":" in host else host
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{name}" if port == default else f"{scheme}://{name}:{port}"


def _origin(origin: str) -> Origin:
    parts = urlsplit(origin)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"not an http(s) origin: {origin!r}")
    return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
