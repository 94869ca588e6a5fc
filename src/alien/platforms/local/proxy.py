"""The ingress's reverse proxy: an ASGI app that forwards each request to the current backend.

Why per request and not a byte relay: clients keep connections alive. A TCP relay pins a client
connection to whichever process it first reached, so replacing that process closes connections
under requests that are already on the wire. Proxying per request keeps the client's connection
on the ingress and picks the backend for each request, so switching backends between two
requests is invisible to the client.

A backend is a function process's app endpoint (``endpoints.Endpoint``): normally a Unix socket
in the area's ``run/``, which only this user can connect to. Every request and WebSocket handshake
carries the endpoint's token (``alien-http-token``), without which the runtime answers nothing,
and a client's own header of that name is dropped like ``X-Forwarded-*``.

The switch protocol that makes updates lose nothing: ``switch(new)`` sends every request from now
on to ``new``; the old backend counts its in-flight requests and ``drain()`` waits for that count
to reach zero, after which nothing can be sent to it any more and it is safe to stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.asyncio.client import unix_connect as ws_unix_connect
from websockets.exceptions import ConnectionClosed

from alien.errors import PlatformError
from alien.platforms.local.endpoints import Endpoint
from alien.protocol.function_http import HTTP_TOKEN_HEADER
from alien.protocol.http_exchange import HOP_BY_HOP as HTTP_HOP_BY_HOP

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

# ASGI carries header names as bytes.
HOP_BY_HOP = frozenset(name.encode() for name in HTTP_HOP_BY_HOP)
TOKEN_HEADER = HTTP_TOKEN_HEADER.encode()


class Backend:
    """One running process's app endpoint, with a count of requests in flight to it."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self.url = endpoint.base_url
        self.token = (TOKEN_HEADER, endpoint.token.encode())
        transport = httpx.AsyncHTTPTransport(
            uds=endpoint.unix_path,
            # Idle connections are dropped well before uvicorn's 5 s keep-alive timeout, so the
            # proxy never sends a request on a connection the backend is closing.
            limits=httpx.Limits(
                max_connections=None, max_keepalive_connections=64, keepalive_expiry=2.0
            ),
        )
        # trust_env=False: never route function traffic through a proxy from the environment.
        self.client = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(connect=5.0, read=None, write=None, pool=None),
            follow_redirects=False,
            trust_env=False,
        )
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def __repr__(self) -> str:
        return f"Backend({self.endpoint.address!r}, inflight={self._inflight})"

    @property
    def inflight(self) -> int:
        return self._inflight

    @contextlib.contextmanager
    def lease(self) -> Any:
        """Count one request (or WebSocket) as in flight for as long as the block runs."""
        self._inflight += 1
        self._idle.clear()
        try:
            yield self
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    async def drain(self, timeout: float) -> bool:
        """Wait until nothing is in flight; ``False`` if ``timeout`` passed first."""
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return False
        return True

    async def aclose(self) -> None:
        await self.client.aclose()


async def _send_error(send: Send, status: int, message: str) -> None:
    body = json.dumps(PlatformError(message, code="FUNCTION_UNAVAILABLE").to_dict()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def _forward_headers(scope: Scope) -> list[tuple[bytes, bytes]]:
    """The client's headers minus hop-by-hop ones, plus the ``X-Forwarded-*`` trio."""
    headers = [(k.lower(), v) for k, v in scope.get("headers", [])]
    drop = set(HOP_BY_HOP)
    for key, value in headers:  # "Connection: foo" names more headers to drop
        if key == b"connection":
            drop.update(token.strip().lower() for token in value.split(b","))
    drop.add(TOKEN_HEADER)  # only the proxy speaks for the platform
    kept = [(k, v) for k, v in headers if k not in drop and not k.startswith(b"x-forwarded-")]
    client = scope.get("client")
    if client:
        kept.append((b"x-forwarded-for", client[0].encode()))
    kept.append((b"x-forwarded-proto", scope.get("scheme", "http").encode()))
    host = next((v for k, v in headers if k == b"host"), None)
    if host is not None:
        kept.append((b"x-forwarded-host", host))
    return kept


def _target(scope: Scope) -> bytes:
    raw = scope.get("raw_path") or quote(scope["path"]).encode()
    query = scope.get("query_string") or b""
    return raw + (b"?" + query if query else b"")


class ProxyApp:
    """ASGI app forwarding HTTP requests and WebSockets to whichever backend is current."""

    def __init__(self, name: str, *, unavailable_wait: float = 10.0) -> None:
        self.name = name
        self.unavailable_wait = unavailable_wait
        self._backend: Backend | None = None
        self._available = asyncio.Event()
        self.waiting = 0
        """Requests holding on for a backend to (re)appear."""

    @property
    def backend(self) -> Backend | None:
        return self._backend

    def switch(self, backend: Backend | None) -> Backend | None:
        """Route every request from now on to ``backend``; return the previous one to drain."""
        previous, self._backend = self._backend, backend
        if backend is None:
            self._available.clear()
        else:
            self._available.set()
        return previous

    async def current(self, not_this: Backend | None = None) -> Backend | None:
        """The backend to use, waiting a little while a function (re)starts."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.unavailable_wait
        self.waiting += 1
        try:
            while self._backend is None or self._backend is not_this:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                if self._backend is not None:  # only not_this is available: give it a moment
                    await asyncio.sleep(min(0.05, remaining))
                    continue
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(remaining):
                        await self._available.wait()
            return self._backend
        finally:
            self.waiting -= 1

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "websocket":
            await _websocket_proxy(self, scope, receive, send)
        elif scope["type"] == "lifespan":
            await _lifespan(receive, send)

    # --- HTTP ---------------------------------------------------------------------------------

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        backend = await self.current()
        if backend is None:
            await _send_error(send, 503, f"function {self.name} is not running")
            return
        headers = _forward_headers(scope)
        body = _request_body(receive)
        for attempt in range(2):
            try:
                with backend.lease():
                    request = backend.client.build_request(
                        scope["method"],
                        httpx.URL(backend.url).copy_with(raw_path=_target(scope)),
                        headers=[*headers, backend.token],
                        content=body,
                    )
                    response = await backend.client.send(request, stream=True)
                    await _relay_response(response, send)
                    return
            except httpx.ConnectError as exc:
                # Nothing reached the backend (it crashed or is being replaced): retrying on the
                # next one cannot run the request twice. (Outside the lease: a drain of the dead
                # backend must not wait for this.)
                retry = await self.current(not_this=backend) if attempt == 0 else None
                if retry is None:
                    await _send_error(send, 502, f"function {self.name}: {exc}")
                    return
                backend = retry
            except httpx.HTTPError as exc:
                log.warning("ingress %s: upstream error %s", self.name, exc)
                await _send_error(send, 502, f"function {self.name} failed to answer")
                return


async def _relay_response(response: httpx.Response, send: Send) -> None:
    try:
        headers = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in HOP_BY_HOP]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        async for chunk in response.aiter_raw():
            if chunk:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    except (httpx.HTTPError, OSError) as exc:
        # The backend died mid-body or the client went away; either way the exchange is over.
        log.info("ingress: response relay ended early: %s", exc)
    finally:
        await response.aclose()


async def _request_body(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunk = message.get("body", b"")
        if chunk:
            yield chunk
        if not message.get("more_body", False):
            return


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# --- WebSocket --------------------------------------------------------------------------------


async def _websocket_proxy(proxy: ProxyApp, scope: Scope, receive: Receive, send: Send) -> None:
    if (await receive())["type"] != "websocket.connect":
        return
    backend = await proxy.current()
    if backend is None:
        await send({"type": "websocket.close", "code": 1013})  # try again later
        return
    url = "ws" + backend.url[len("http") :] + _target(scope).decode("latin-1")
    skip = HOP_BY_HOP | {b"host", b"sec-websocket-key", b"sec-websocket-version"}
    skip |= {b"sec-websocket-extensions", b"sec-websocket-protocol"}
    headers = [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in [*_forward_headers(scope), backend.token]
        if k not in skip
    ]
    with backend.lease():
        try:
            upstream = await _ws_open(backend.endpoint, url, headers, scope)
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("ingress %s: websocket upstream failed: %s", proxy.name, exc)
            await send({"type": "websocket.close", "code": 1011})
            return
        async with upstream:
            await send({"type": "websocket.accept", "subprotocol": upstream.subprotocol})
            await _pump_websocket(upstream, receive, send)


async def _ws_open(
    endpoint: Endpoint, url: str, headers: list[tuple[str, str]], scope: Scope
) -> ClientConnection:
    """The WebSocket to the backend, over its Unix socket when it has one."""
    options: dict[str, Any] = {
        "additional_headers": headers,
        "subprotocols": scope.get("subprotocols") or None,
        "open_timeout": 5,
        "max_size": None,
        "compression": None,
        "user_agent_header": None,
    }
    if endpoint.unix_path is not None:
        return await ws_unix_connect(endpoint.unix_path, url, **options)
    return await ws_connect(url, proxy=None, **options)


async def _pump_websocket(upstream: ClientConnection, receive: Receive, send: Send) -> None:
    async def client_to_upstream() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                await upstream.close(message.get("code", 1000))
                return
            data = message.get("bytes")
            await upstream.send(data if data is not None else message.get("text", ""))

    async def upstream_to_client() -> None:
        try:
            async for data in upstream:
                key = "bytes" if isinstance(data, bytes) else "text"
                await send({"type": "websocket.send", key: data})
        except ConnectionClosed:
            pass
        code = upstream.close_code or 1000
        with contextlib.suppress(OSError, RuntimeError):
            await send({"type": "websocket.close", "code": code})

    tasks = [
        asyncio.ensure_future(client_to_upstream()),
        asyncio.ensure_future(upstream_to_client()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
