"""``LiteClient``: executes :class:`~alien.client.call.Call` descriptions on asyncio and h11.

``alien debug`` makes a handful of small JSON calls (open the session, look up the push-model
configuration, close) and then moves every byte over its tunnel WebSocket. Importing httpx and
pydantic for those calls cost about a third of the command's start-up, which the engineer waits
for before every debugged command. This client is the same contract as ``AsyncManagerClient.call``
(the manager's error bodies become the matching ``AlienError``, a transport failure
``ManagerUnreachable``, an undecodable 2xx ``BadResponse``) on what the CLI loads anyway: the
HTTP/1.1 state machine is h11's (a well-kept sans-I/O library), the I/O asyncio streams'.

Keep-alive: one idle connection is kept for the next call; calls made while it is busy get their
own connection. The environment's proxy applies as it would to httpx (``HTTPS_PROXY`` for an
``https`` manager, through ``CONNECT``; ``HTTP_PROXY`` for an ``http`` one, in absolute form;
``NO_PROXY``): see :mod:`alien.tunnel.proxy_connect`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, TypeVar
from urllib.parse import urlencode, urlsplit

import h11

from alien.client.call import Call
from alien.client.config import ClientConfig, headers
from alien.client.errors import BadResponse, error_from_body, unreachable
from alien.tunnel.proxy_connect import Proxy, connect_via, proxy_for

T = TypeVar("T")

READ_SIZE = 64 * 1024
MAX_CONNECT = 10.0
PROXY_AUTHENTICATION_REQUIRED = 407


class _Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        origin: str = "",
        proxy_authorization: str | None = None,
    ) -> None:
        """``origin`` (``http://host:port``) when the connection is to a forwarding proxy: each
        request names it in its target, and carries ``proxy_authorization`` if given."""
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(our_role=h11.CLIENT)
        self.origin = origin
        self.proxy_headers = (
            [("Proxy-Authorization", proxy_authorization)] if proxy_authorization else []
        )

    async def exchange(
        self, method: str, target: str, fields: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes]:
        """Send one request, read its whole response: ``(status, body)``."""
        request = h11.Request(
            method=method, target=self.origin + target, headers=[*fields, *self.proxy_headers]
        )
        out = self.http.send(request) or b""
        if body:
            out += self.http.send(h11.Data(data=body)) or b""
        out += self.http.send(h11.EndOfMessage()) or b""
        self.writer.write(out)
        await self.writer.drain()
        status, content = 0, bytearray()
        while True:
            event = self.http.next_event()
            if event is h11.NEED_DATA:
                self.http.receive_data(await self.reader.read(READ_SIZE))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                content += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, bytes(content)
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError("the manager closed the connection mid-response")

    def reusable(self) -> bool:
        """Ready for the next request (both sides done, keep-alive agreed)."""
        if self.http.our_state is not h11.DONE or self.http.their_state is not h11.DONE:
            return False
        self.http.start_next_cycle()
        return True

    def close(self) -> None:
        self.writer.close()


class LiteClient:
    """Calls the manager at ``config.base_url`` with ``config``'s token."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        url = urlsplit(config.base_url)
        self._tls = url.scheme == "https"
        self._host = url.hostname or ""
        self._port = url.port or (443 if self._tls else 80)
        self._prefix = url.path.rstrip("/")
        self._origin = f"{url.scheme}://{url.netloc}"
        self._headers = [
            ("Host", url.netloc),
            *headers(config).items(),
        ]
        self._idle: _Connection | None = None

    def __repr__(self) -> str:
        return f"LiteClient({self.config.base_url!r})"

    async def __aenter__(self) -> LiteClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._idle is not None:
            self._idle.close()
            self._idle = None

    async def call(self, call: Call[T]) -> T:
        target = self._prefix + call.path
        if call.params:
            target += "?" + urlencode(call.params, doseq=True)
        fields = list(self._headers)
        body = b""
        if call.json is not None:
            body = json.dumps(call.json).encode()
            fields.append(("Content-Type", "application/json"))
        fields.append(("Content-Length", str(len(body))))
        timeout = MAX_CONNECT + (call.timeout if call.timeout is not None else self.config.timeout)
        try:
            async with asyncio.timeout(timeout):
                status, content = await self._exchange(call.method, target, fields, body)
        except (OSError, TimeoutError, h11.ProtocolError) as exc:
            raise unreachable(self.config.base_url, exc) from None
        if status == PROXY_AUTHENTICATION_REQUIRED:  # the manager never asks this: a proxy does
            refused = OSError("the proxy refused the call (407: missing or wrong credentials)")
            raise unreachable(self.config.base_url, refused)
        if status >= 400:
            raise error_from_body(status, content)
        return _decoded(call, content)

    async def _exchange(
        self, method: str, target: str, fields: list[tuple[str, str]], body: bytes
    ) -> tuple[int, bytes]:
        connection, self._idle = self._idle, None
        if connection is not None:
            try:
                answer = await connection.exchange(method, target, fields, body)
            except (OSError, h11.ProtocolError):
                connection.close()  # the manager dropped an idle connection: one new try
            else:
                self._keep(connection)
                return answer
        connection = await self._connect()
        try:
            answer = await connection.exchange(method, target, fields, body)
        except BaseException:
            connection.close()
            raise
        self._keep(connection)
        return answer

    async def _connect(self) -> _Connection:
        ssl_context: Any = None
        if self._tls:
            import ssl  # only for an https manager

            ssl_context = ssl.create_default_context()
        proxy = proxy_for(self._tls, self._host, websocket=False)
        async with asyncio.timeout(min(self.config.timeout, MAX_CONNECT)):
            if proxy is None:
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=ssl_context
                )
                return _Connection(reader, writer)
            if self._tls:
                sock = await connect_via(proxy, self._host, self._port)
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=ssl_context, server_hostname=self._host
                )
                return _Connection(reader, writer)
            via = Proxy.parse(proxy)
            reader, writer = await asyncio.open_connection(via.host, via.port)
            return _Connection(
                reader, writer, origin=self._origin, proxy_authorization=via.authorization
            )

    def _keep(self, connection: _Connection) -> None:
        if connection.reusable() and self._idle is None:
            self._idle = connection
        else:
            connection.close()


def _decoded(call: Call[T], content: bytes) -> T:
    try:
        return call.decode(json.loads(content) if content else None)
    except (ValueError, KeyError, TypeError) as exc:
        raise BadResponse(
            f"unexpected answer to {call.method} {call.path}: {type(exc).__name__}",
            field="response",
        ) from None
