"""The manager's side of the tunnel: a FastAPI WebSocket route served by uvicorn, dialled with
the ``websockets`` client (StarletteTransport on one end, WebsocketsTransport on the other)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import pytest
import uvicorn
from fastapi import FastAPI, WebSocket
from websockets.asyncio.client import connect

from alien.debug.proxy import _EmbeddedServer
from alien.protocol.http_exchange import RequestHead
from alien.tunnel import WEBSOCKET_OPTIONS, TunnelClosed, TunnelConnection, WebsocketsTransport
from alien.tunnel.http import TunnelUpstream, http_handler
from alien.tunnel.starlette_transport import StarletteTransport
from tunnel.tunnel_support import MiB, PatternUpstream, expected_sha256, generate, hash_body


class App:
    def __init__(self) -> None:
        self.upstream = PatternUpstream()
        self.connections: list[TunnelConnection] = []
        self.api = FastAPI()
        self.api.add_api_websocket_route("/v1/tunnel", self.tunnel)

    async def tunnel(self, websocket: WebSocket) -> None:
        await websocket.accept()
        transport = StarletteTransport(websocket)
        handler = http_handler(self.upstream)
        async with TunnelConnection(transport, "server", handler=handler) as conn:
            self.connections.append(conn)
            await conn.wait_closed()


@pytest.fixture
async def manager() -> AsyncIterator[tuple[App, str]]:
    app = App()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(app.api, lifespan="off", log_config=None, access_log=False)
    server = _EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await asyncio.wait_for(server.ready.wait(), 10)
    yield app, f"ws://127.0.0.1:{sock.getsockname()[1]}/v1/tunnel"
    server.should_exit = True
    await task


async def test_http_exchanges_through_a_starlette_websocket(manager: tuple[App, str]) -> None:
    app, url = manager
    async with (
        connect(url, **WEBSOCKET_OPTIONS) as websocket,
        TunnelConnection(WebsocketsTransport(websocket), "client") as client,
    ):
        tunnel = TunnelUpstream(client)
        size = 20 * MiB

        async def one(i: int, body: int, reply: int) -> None:
            head = RequestHead.create(
                "PUT", f"/o/{i}", [("content-length", str(body)), ("x-reply-bytes", str(reply))]
            )
            response = await tunnel.send(head, generate(body))
            assert response.head.get("x-request-sha256") == expected_sha256(body)
            assert await hash_body(response.body) == (reply, expected_sha256(reply))
            await response.aclose()

        await asyncio.gather(one(0, size, size), *(one(i, i * 100, i * 50) for i in range(1, 50)))
    assert len(app.upstream.seen) == 50


async def test_a_vanished_client_closes_the_managers_connection_promptly(
    manager: tuple[App, str],
) -> None:
    app, url = manager
    async with connect(url, **WEBSOCKET_OPTIONS) as websocket:
        client = await TunnelConnection(WebsocketsTransport(websocket), "client").start()
        await client.ping()
        started = time.monotonic()
        websocket.transport.abort()
        async with asyncio.timeout(1):
            await app.connections[0].wait_closed()
            await client.wait_closed()
        assert time.monotonic() - started < 1
        assert isinstance(app.connections[0].close_error, TunnelClosed)
