"""The ingress: a stable port, per-request proxying, switching and draining backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.asyncio.client import connect as ws_connect

from alien.errors import PlatformError
from alien.platforms.local.ingress import Ingress
from alien.platforms.local.proxy import Backend
from alien.sdk.runtime.http import HttpServer


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
async def served(app: Starlette) -> AsyncIterator[str]:
    server = HttpServer(app, "127.0.0.1", 0)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def ingress_for(function: str = "api", port: int = 0) -> AsyncIterator[Ingress]:
    ingress = Ingress(function, port=port)
    await ingress.start()
    try:
        yield ingress
    finally:
        await ingress.close()


async def test_requests_are_forwarded_faithfully() -> None:
    async with served(_backend_app("a")) as url, ingress_for() as ingress:
        ingress.switch(Backend(url))
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
    assert headers["host"] == headers["x-forwarded-host"] == ingress.url.removeprefix("http://")
    assert streamed.text == "chunk0;chunk1;chunk2;"


async def test_a_caller_cannot_choose_the_address_or_scheme_the_app_is_told() -> None:
    async with served(_backend_app("a")) as url, ingress_for() as ingress:
        ingress.switch(Backend(url))
        async with httpx.AsyncClient() as client:
            spoofed = {"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https"}
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
        served(_backend_app("late")) as url,
        ingress_for() as ingress,
        httpx.AsyncClient() as client,
    ):
        pending = asyncio.create_task(client.get(f"{ingress.url}/x"))
        while ingress.proxy.waiting == 0:  # the request is held in the ingress
            await asyncio.sleep(0.005)
        ingress.switch(Backend(url))
        response = await asyncio.wait_for(pending, 10)
    assert response.json()["backend"] == "late"


async def test_a_dead_backend_gives_502_naming_the_function() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    async with ingress_for("worker") as ingress:
        ingress.proxy.unavailable_wait = 0.2
        ingress.switch(Backend(dead))
        async with httpx.AsyncClient() as client:
            response = await client.get(f"{ingress.url}/")
    assert response.status_code == 502 and "function worker" in response.json()["error"]["message"]


async def test_switching_sends_new_requests_to_the_new_backend_while_the_old_drains() -> None:
    release = asyncio.Event()
    async with (
        served(_backend_app("old", release)) as old_url,
        served(_backend_app("new")) as new_url,
        ingress_for() as ingress,
    ):
        old = Backend(old_url)
        ingress.switch(old)
        async with httpx.AsyncClient() as client:
            slow = asyncio.create_task(client.get(f"{ingress.url}/slow"))
            while old.inflight == 0:  # the slow request has reached the old backend
                await asyncio.sleep(0.005)
            port = ingress.port
            assert ingress.switch(Backend(new_url)) is old
            assert (await client.get(f"{ingress.url}/fast")).json()["backend"] == "new"
            assert not await old.drain(0.05)  # still busy with the slow request
            release.set()
            assert await old.drain(5)
            assert (await slow).json()["backend"] == "old"  # finished where it started
            assert ingress.port == port  # the port clients use never changed


async def test_websockets_are_proxied() -> None:
    async with served(_backend_app("a")) as url, ingress_for() as ingress:
        ingress.switch(Backend(url))
        ws_url = ingress.url.replace("http", "ws") + "/ws"
        async with ws_connect(ws_url, subprotocols=["echo"], proxy=None) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "echo"
            await ws.send("ping")
            assert await asyncio.wait_for(ws.recv(), 5) == "a:ping"


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
