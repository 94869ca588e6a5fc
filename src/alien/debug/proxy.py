"""The loopback proxy a debug session's child process talks to.

It listens on 127.0.0.1 (a free port), accepts only requests that prove they hold the session's
secret (the ``Authenticator``: SigV4 with the session's dummy keys for AWS, the bearer token for
other tools), and hands each one to an ``Upstream`` (the tunnel to the manager, or a re-signer).
Request and response bodies stream chunk by chunk in both directions with back-pressure, so a
50 MB ``aws s3 cp`` costs a few hundred kilobytes of memory, not 50 MB.

HTTP parsing is uvicorn's (httptools): it gives the raw path exactly as sent, answers
``Expect: 100-continue`` only when the body is first read (so a refused upload never sends its
body), and applies flow control to both directions. The proxy also checks the ``Host`` header
against its own address: a page in the engineer's browser cannot use it through DNS rebinding,
and it never acts as a forward proxy unless told to (``check_host=False``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import Any

import uvicorn

from alien.debug.upgrades import upgrading_http
from alien.errors import AlienError, Forbidden, ValidationError
from alien.protocol.http_exchange import Authenticator, RequestHead, Upstream, UpstreamResponse
from alien.serving import CoalescingHttp

log = logging.getLogger(__name__)

ErrorResponder = Callable[[RequestHead, AlienError], UpstreamResponse]
Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


def alien_error_response(head: RequestHead, error: AlienError) -> UpstreamResponse:
    """The default error shape: alien's ``{"error": {...}}`` JSON with the error's status."""
    body = json.dumps(error.to_dict()).encode()
    return UpstreamResponse.from_bytes(error.status, [("content-type", "application/json")], body)


async def request_body(receive: Receive) -> AsyncIterator[bytes]:
    """The ASGI request body as chunks; uvicorn pauses the socket while we do not read."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ValidationError("the client disconnected during the request body", field="body")
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


def _encode(headers: Iterable[tuple[str, str]]) -> list[list[bytes]]:
    return [[k.encode("latin-1"), v.encode("latin-1")] for k, v in headers]


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without process-wide side effects: the CLI owns signal handling, and we learn
    that the listener is up from an event instead of polling."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.ready.set()


class LoopbackProxy:
    """A session's local endpoint. ``async with LoopbackProxy(...) as proxy: proxy.url``."""

    def __init__(
        self,
        upstream: Upstream,
        authenticator: Authenticator,
        *,
        error_response: ErrorResponder = alien_error_response,
        ssl_context: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        check_host: bool = True,
        startup_timeout: float = 10.0,
        upgrades: bool = False,
    ) -> None:
        """``upgrades``: carry requests that upgrade their connection as raw bytes
        (:mod:`alien.debug.upgrades`; kubectl's exec, attach and port-forward)."""
        self._upgrades = upgrades
        self._upstream = upstream
        self._auth = authenticator
        self._error_response = error_response
        self._ssl = ssl_context
        self._host = host
        self._port = port
        self._check_host = check_host
        self._startup_timeout = startup_timeout
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._allowed_hosts: frozenset[str] = frozenset()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return self._port

    @property
    def authority(self) -> str:
        """``127.0.0.1:PORT``: how the child's ``NO_PROXY`` names the endpoint."""
        return f"{self._host}:{self.port}"

    @property
    def url(self) -> str:
        """``http(s)://127.0.0.1:PORT``: the endpoint to give the child process."""
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{self.authority}"

    async def start(self) -> None:
        """Bind (port 0 picks a free port) and serve until ``aclose``."""
        # proto must say TCP: asyncio sets TCP_NODELAY on accepted sockets only then, and
        # without it small request/response pairs stall ~40 ms on Nagle + delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            sock.bind((self._host, self._port))
            sock.listen(128)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._port = sock.getsockname()[1]
        self._allowed_hosts = frozenset({f"{self._host}:{self._port}", f"localhost:{self._port}"})
        config = uvicorn.Config(
            self._asgi,
            interface="asgi3",
            # a response's head and first body chunk in one send
            http=upgrading_http(self._respond, self._error_response)
            if self._upgrades
            else CoalescingHttp,
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            server_header=False,
            date_header=False,
            proxy_headers=False,  # X-Forwarded-* mean nothing here; skip the per-request wrapper
            timeout_graceful_shutdown=5,
        )
        config.load()
        config.ssl = self._ssl
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="debug-proxy")
        ready = asyncio.create_task(self._server.ready.wait())
        done, _ = await asyncio.wait(
            {ready, self._task}, timeout=self._startup_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            await self.aclose()
            raise RuntimeError("the debug proxy did not start")

    async def aclose(self) -> None:
        """Stop accepting, let running requests finish (bounded), and release the port."""
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError, SystemExit):
                await self._task
        self._task = None

    async def __aenter__(self) -> LoopbackProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _head(self, scope: Scope) -> RequestHead:
        target = scope.get("raw_path") or scope["path"].encode()
        if scope.get("query_string"):
            target += b"?" + scope["query_string"]
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        return RequestHead.create(scope["method"], target.decode("latin-1"), headers)

    async def _respond(self, head: RequestHead, body: AsyncIterator[bytes]) -> UpstreamResponse:
        if self._check_host and head.get("host") not in self._allowed_hosts:
            raise Forbidden(
                "the debug proxy only serves requests addressed to itself",
                field="host",
                details={"aws_code": "AccessDenied"},
            )
        head, body = await self._auth.authenticate(head, body)
        return await self._upstream.send(head, body)

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        head = self._head(scope)
        try:
            response = await self._respond(head, request_body(receive))
        except AlienError as exc:
            log.info("refused %s %s: %s", head.method, head.target.partition("?")[0], exc)
            response = self._error_response(head, exc)
        except Exception:
            log.exception("debug proxy failed on %s %s", head.method, head.target.partition("?")[0])
            response = self._error_response(head, AlienError("the debug proxy failed"))
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": response.head.status,
                    "headers": _encode(response.head.headers),
                }
            )
            async for chunk in response.body:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            await response.aclose()
