"""The ingress: a stable port, per-request proxying, switching and draining backends.

Backends are real runtime servers behind the runtime's token guard, on a Unix socket as the
platform grants them (or on the loopback port a too-deep area falls back to)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from alien.errors import PlatformError
from alien.platforms.local.endpoints import Endpoint
from alien.platforms.local.ingress import Ingress
from alien.platforms.local.proxy import Backend
from alien.sdk.runtime.address import ListenAddress
from alien.sdk.runtime.http import HttpServer
from alien.sdk.runtime.http_guard import platform_only

TOKEN = "backend-" + "t" * 40


def _backend_app(name: str, release: asyncio.Event | None = None) -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        if release is not None and request.url.path.endswith("/slow"):
            await release.wait()
        return JSONResponse(
            {
                "backend": name,
                "method": request.method,
                "raw_path": request.scope["raw_path"].decode(),
                "query": request.url.query,
                "body": (await request.body()).decode(),
                "headers": dict(request.headers),
                "client": request.client.host if request.client else None,
            },
            headers={"x-backend": name},
        )

    async def stream(request: Request) -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for i in range(3):
                yield f"chunk{i};".encode()

        return StreamingResponse(chunks(), media_type="text/plain")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="echo")
        async for text in websocket.iter_text():
            await websocket.send_text(f"{name}:{text}")

    return Starlette(
        routes=[
            Route("/stream", stream),
            WebSocketRoute("/ws", ws),
            Route("/{path:path}", echo, methods=["GET", "PUT", "POST", "DELETE"]),
        ]
    )


@contextlib.asynccontextmanager
async def served(app: Starlette, transport: str = "unix") -> AsyncIterator[Backend]:
    """``app`` served as the runtime serves a function's app, and a backend for it."""
    with tempfile.TemporaryDirectory() as tmp:
        unix = ListenAddress(path=Path(tmp) / "app.http.sock")
        address = unix if transport == "unix" else ListenAddress(host="127.0.0.1")
        server = HttpServer(platform_only(app, TOKEN), address, variable="ALIEN_HTTP_ADDRESS")
        backend = Backend(Endpoint(str(await server.start()), TOKEN))
        try:
            yield backend
        finally:
            await backend.aclose()
            await server.stop()


@contextlib.asynccontextmanager
async def ingress_for(function: str = "api", port: int = 0) -> AsyncIterator[Ingress]:
    ingress = Ingress(function, port=port)
    await ingress.start()
    try:
        yield ingress
    finally:
        await ingress.close()


@pytest.mark.parametrize("transport", ["unix", "tcp"])
async def test_requests_are_forwarded_faithfully(transport: str) -> None:
    async with served(_backend_app("a"), transport) as backend, ingress_for() as ingress:
        ingress.switch(backend)
        async with httpx.AsyncClient() as client:
            response = await client.put(
                f"{ingress.url}/pages/a%2Fb?x=1&y=%20",
                content=b"hello",
                headers={"Connection": "keep-alive, X-Hop", "X-Hop": "1", "X-Custom": "kept"},
            )
            streamed = await client.get(f"{ingress.url}/stream")
    body = response.json()
    assert response.status_code == 200 and response.headers["x-backend"] == "a"
    assert body["method"] == "PUT" and body["raw_path"] == "/pages/a%2Fb"
    assert body["query"] == "x=1&y=%20" and body["body"] == "hello"
    headers = body["headers"]
    assert headers["x-custom"] == "kept" and "x-hop" not in headers  # hop-by-hop, by name
    assert headers["x-forwarded-proto"] == "http" and headers["x-forwarded-for"] == "127.0.0.1"
    assert body["client"] == "127.0.0.1"  # the ingress's X-Forwarded-For is trusted
    assert headers["host"] == headers["x-forwarded-host"] == ingress.url.removeprefix("http://")
    assert "alien-http-token" not in headers  # the runtime took it off before the app
    assert streamed.text == "chunk0;chunk1;chunk2;"


async def test_a_caller_cannot_choose_the_address_or_scheme_the_app_is_told() -> None:
    async with served(_backend_app("a")) as backend, ingress_for() as ingress:
        ingress.switch(backend)
        async with httpx.AsyncClient() as client:
            spoofed = {
                "X-Forwarded-For": "6.6.6.6",
                "X-Forwarded-Proto": "https",
                "Alien-Http-Token": "guessed",  # dropped: only the proxy speaks for the platform
            }
            response = await client.get(f"{ingress.url}/x", headers=spoofed)
    headers = response.json()["headers"]
    assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-proto"] == "http"


async def test_without_a_backend_the_answer_is_a_clear_503() -> None:
    async with ingress_for() as ingress:
        ingress.proxy.unavailable_wait = 0.2
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{ingress.url}/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "FUNCTION_UNAVAILABLE"


async def test_a_request_waits_for_a_backend_that_is_starting() -> None:
    async with (
        served(_backend_app("late")) as backend,
        ingress_for() as ingress,
        httpx.AsyncClient() as client,
    ):
        pending = asyncio.create_task(client.get(f"{ingress.url}/x"))
        while ingress.proxy.waiting == 0:  # the request is held in the ingress
            await asyncio.sleep(0.005)
        ingress.switch(backend)
        response = await asyncio.wait_for(pending, 10)
    assert response.json()["backend"] == "late"


async def test_a_dead_backend_gives_502_naming_the_function(tmp_path: Path) -> None:
    dead = Endpoint(f"unix:{tmp_path / 'gone.http.sock'}", TOKEN)  # nobody listens there
    async with ingress_for("worker") as ingress:
        ingress.proxy.unavailable_wait = 0.2
        ingress.switch(Backend(dead))
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{ingress.url}/")
    assert response.status_code == 502 and "function worker" in response.json()["error"]["message"]


async def test_switching_sends_new_requests_to_the_new_backend_while_the_old_drains() -> None:
    release = asyncio.Event()
    async with (
        served(_backend_app("old", release)) as old,
        served(_backend_app("new")) as new,
        ingress_for() as ingress,
    ):
        ingress.switch(old)
        async with httpx.AsyncClient() as client:
            slow = asyncio.create_task(client.get(f"{ingress.url}/slow"))
            while old.inflight == 0:  # the slow request has reached the old backend
                await asyncio.sleep(0.005)
            port = ingress.port
            assert ingress.switch(new) is old
            assert (await client.get(f"{ingress.url}/fast")).json()["backend"] == "new"
            assert not await old.drain(0.05)  # still busy with the slow request
            release.set()
            assert await old.drain(5)
            assert (await slow).json()["backend"] == "old"  # finished where it started
            assert ingress.port == port  # the port clients use never changed


@pytest.mark.parametrize("transport", ["unix", "tcp"])
async def test_websockets_are_proxied(transport: str) -> None:
    async with served(_backend_app("a"), transport) as backend, ingress_for() as ingress:
        ingress.switch(backend)
        ws_url = ingress.url.replace("http", "ws") + "/ws"
        async with ws_connect(ws_url, subprotocols=["echo"], proxy=None) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "echo"
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), 5) == "a:ping"


async def test_a_backend_answers_no_caller_without_its_token() -> None:
    """On the loopback port a too-deep area falls back to, any local process can connect."""
    async with served(_backend_app("a"), "tcp") as backend:
        async with httpx.AsyncClient(base_url=backend.url) as client:
            assert (await client.get("/x")).status_code == 401
            wrong = {"alien-http-token": "w" * 45}
            assert (await client.get("/x", headers=wrong)).status_code == 401
        ws_url = backend.url.replace("http", "ws") + "/ws"
        with pytest.raises(InvalidStatus, match="403"):
            await ws_connect(ws_url, proxy=None)


async def test_a_busy_port_is_a_clear_error_and_closing_frees_the_port() -> None:
    async with ingress_for() as first:
        taken = first.port
        with pytest.raises(PlatformError, match="already in use") as info:
            await Ingress("other", port=taken).start()
        assert info.value.field == "port"
    async with ingress_for(port=taken) as again:  # released by close()
        assert again.port == taken


def test_error_bodies_are_json() -> None:
    body = PlatformError("x", code="FUNCTION_UNAVAILABLE").to_dict()
    assert json.loads(json.dumps(body))["error"]["code"] == "FUNCTION_UNAVAILABLE"
