"""The session's HTTP forward proxy on 127.0.0.1: ``HTTP_PROXY``/``HTTPS_PROXY`` of the child.

Pull model only: plain HTTP clients (curl, requests, a browser) reach destinations *inside the
deployment's environment* through it — each request goes through the session's tunnel to the
agent, which forwards it within the customer's allowlist. Two forms arrive here:

* absolute-form requests (``GET http://10.0.0.5:8080/health HTTP/1.1``) for ``http://`` URLs,
  passed on in absolute form (that is what tells the agent "egress", not AWS) with bodies
  streaming both ways;
* ``CONNECT host:443`` for ``https://`` URLs: once the agent has reached the destination the
  client gets ``200 Connection established`` and the connection becomes a raw byte stream
  (TLS end to end between the client and the destination: nothing on the way can read it).

Every request must carry the session token in ``Proxy-Authorization`` (Basic, as clients send
credentials given in the proxy URL); it is removed before anything goes on, while the client's
own ``Authorization`` reaches the destination untouched. HTTP/1.1 framing is h11's: keep-alive,
chunked bodies, ``Expect: 100-continue`` (answered only when the body is first read).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator

import h11

from alien.debug.auth import BearerTokenAuthenticator
from alien.debug.proxy import alien_error_response
from alien.errors import AlienError, Unauthenticated, ValidationError
from alien.protocol.http_exchange import HOP_BY_HOP, RequestHead, Upstream, UpstreamResponse

log = logging.getLogger(__name__)

READ_SIZE = 256 * 1024
MAX_HEAD = 64 * 1024
CLOSE_GRACE = 5.0
"""Seconds a CONNECT destination has to finish after the client closed."""
SHUTDOWN_GRACE = 2.0
"""Seconds exchanges in progress get when the proxy closes."""


def _end_to_end(pairs: tuple[tuple[str, str], ...]) -> list[tuple[bytes, bytes]]:
    """Response headers for the client: hop-by-hop ones dropped (h11 frames the body)."""
    named = {
        token.strip().lower()
        for name, value in pairs
        if name == "connection"
        for token in value.split(",")
    }
    return [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in pairs
        if k not in HOP_BY_HOP and k not in named
    ]


class _Client:
    """One client connection: h11's state plus the socket, read and written as h11 needs."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
        self.reader = reader
        self.writer = writer
        self.busy = False
        """Inside an exchange (not idle between keep-alive requests)."""

    async def next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            self.conn.receive_data(await self.reader.read(READ_SIZE))

    async def send(self, event: h11.Event) -> None:
        data = self.conn.send(event)
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def body(self) -> AsyncIterator[bytes]:
        """The request body, as the upstream reads it."""
        if self.conn.they_are_waiting_for_100_continue:
            await self.send(h11.InformationalResponse(status_code=100, headers=[]))
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ValidationError("the client stopped sending the request body", field="body")

    async def respond(self, response: UpstreamResponse) -> None:
        headers = _end_to_end(response.head.headers)
        await self.send(h11.Response(status_code=response.head.status, headers=headers))
        async for chunk in response.body:
            if chunk:
                await self.send(h11.Data(data=chunk))
        await self.send(h11.EndOfMessage())


class ForwardProxy:
    """``async with ForwardProxy(upstream, token) as proxy:`` — ``proxy.url`` is the proxy URL
    (without credentials) to put in ``HTTP_PROXY``."""

    def __init__(
        self, upstream: Upstream, token: str, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self._upstream = upstream
        self._auth = BearerTokenAuthenticator(token, headers=("proxy-authorization",))
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], _Client] = {}

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def host(self) -> str:
        return self._host

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def start(self) -> None:
        # IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted sockets (no Nagle stalls).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind((self._host, self._port))
        except OSError:
            sock.close()
            raise
        self._server = await asyncio.start_server(self._accept, sock=sock, limit=READ_SIZE)
        self._port = sock.getsockname()[1]

    async def aclose(self, grace: float = SHUTDOWN_GRACE) -> None:
        """Stop accepting; give exchanges in progress up to ``grace`` seconds (a CONNECT whose
        client has just closed is still finishing), drop idle keep-alive connections at once."""
        if self._server is not None:
            self._server.close()
        busy = {task for task, client in self._clients.items() if client.busy}
        for task in set(self._clients) - busy:
            task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=grace)
        tasks = list(self._clients)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> ForwardProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client = _Client(reader, writer)
        task = asyncio.create_task(self._serve(client), name="forward-proxy")
        self._clients[task] = client
        task.add_done_callback(lambda done: self._clients.pop(done, None))

    async def _serve(self, client: _Client) -> None:
        try:
            while await self._exchange(client):
                client.conn.start_next_cycle()
        except (h11.ProtocolError, ConnectionError, ValidationError) as exc:
            log.debug("forward proxy client dropped: %r", exc)
        except Exception:
            log.exception("the forward proxy failed")
        finally:
            client.writer.close()
            with contextlib.suppress(Exception):
                await client.writer.wait_closed()

    async def _exchange(self, client: _Client) -> bool:
        """Serve one request; whether the connection may carry another."""
        client.busy = False
        event = await client.next_event()
        if not isinstance(event, h11.Request):
            return False
        client.busy = True
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers]
        head = RequestHead.create(
            event.method.decode("ascii"), event.target.decode("latin-1"), headers
        )
        try:
            head, _ = await self._auth.authenticate(head, _nothing())
        except Unauthenticated as exc:
            await self._refuse(client, head, 407, exc)
            return False
        if head.method == "CONNECT":
            if not isinstance(await client.next_event(), h11.EndOfMessage):
                return False  # h11 gives CONNECT no body: this cannot happen
            await self._tunnel(client, head)
            return False
        if not head.target.startswith(("http://", "https://")):
            error = ValidationError(
                "this is a forward proxy: send absolute-form requests (or CONNECT)",
                field="target",
            )
            await self._refuse(client, head, 400, error)
            return False
        response = await self._ask(head, client.body())
        try:
            await client.respond(response)
        finally:
            await response.aclose()
        return client.conn.our_state is h11.DONE and client.conn.their_state is h11.DONE

    async def _ask(self, head: RequestHead, body: AsyncIterator[bytes]) -> UpstreamResponse:
        try:
            return await self._upstream.send(head, body)
        except AlienError as exc:
            log.info("refused %s %s: %s", head.method, head.target.partition("?")[0], exc)
            return alien_error_response(head, exc)

    async def _refuse(
        self, client: _Client, head: RequestHead, status: int, error: AlienError
    ) -> None:
        response = alien_error_response(head, error)
        headers = [*_end_to_end(response.head.headers), (b"connection", b"close")]
        if status == 407:
            headers.append((b"proxy-authenticate", b'Basic realm="alien debug session"'))
        await client.send(h11.Response(status_code=status, headers=headers))
        async for chunk in response.body:
            await client.send(h11.Data(data=chunk))
        await client.send(h11.EndOfMessage())

    async def _tunnel(self, client: _Client, head: RequestHead) -> None:
        """CONNECT: ask the agent to reach the destination; on success relay raw bytes."""
        switched = asyncio.Event()

        async def from_client() -> AsyncIterator[bytes]:
            await switched.wait()  # the client sends nothing before its 200 anyway
            early, _ = client.conn.trailing_data
            if early:
                yield bytes(early)
            while chunk := await client.reader.read(READ_SIZE):
                yield chunk

        response = await self._ask(head, from_client())
        try:
            if response.head.status != 200:
                await client.respond(response)
                return
            await client.send(
                h11.Response(status_code=200, headers=[], reason=b"Connection established")
            )
            switched.set()
            await _to_client(response.body, client.writer)
        finally:
            await response.aclose()


async def _to_client(body: AsyncIterator[bytes], writer: asyncio.StreamWriter) -> None:
    """Relay the destination's bytes. A client that closes first (the usual end of a CONNECT:
    its EOF has gone on to the destination) is not an abandonment: the destination's last bytes
    are read and dropped for a moment so the stream ends cleanly rather than being cut."""
    iterator = aiter(body)
    async for chunk in iterator:
        try:
            writer.write(chunk)
            await writer.drain()
        except ConnectionError:
            break
    else:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CLOSE_GRACE):
            async for _ in iterator:
                pass


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield  # an empty async generator
