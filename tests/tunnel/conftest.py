"""Fixtures for the tunnel over real WebSockets on 127.0.0.1.

``ws_server(handler)`` starts a ``websockets`` server on a free port whose every connection is a
server-side ``TunnelConnection`` serving streams with ``handler`` (or, without one, queued for
``accept``); ``ws_client(url)`` dials it with our own client (:mod:`alien.tunnel.websocket_client`,
as the CLI and the agent do) and yields the client-side connection.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from alien.tunnel import WEBSOCKET_OPTIONS, TunnelConnection
from alien.tunnel.connection import StreamHandler
from alien.tunnel.websocket_client import dial as dial_websocket
from alien.tunnel.websockets_transport import WebsocketsTransport


class WsTunnelServer:
    def __init__(self, handler: StreamHandler | None, options: dict[str, Any]) -> None:
        self.handler = handler
        self.options = options
        self.url = ""
        self.connections: list[TunnelConnection] = []
        self.sockets: list[ServerConnection] = []

    async def serve_one(self, websocket: ServerConnection) -> None:
        conn = TunnelConnection(
            WebsocketsTransport(websocket), "server", handler=self.handler, **self.options
        )
        self.connections.append(conn)
        self.sockets.append(websocket)
        await conn.start()
        await conn.wait_closed()


@pytest.fixture
def ws_server() -> Callable[..., AbstractAsyncContextManager[WsTunnelServer]]:
    @asynccontextmanager
    async def start(
        handler: StreamHandler | None = None, **options: Any
    ) -> AsyncIterator[WsTunnelServer]:
        server = WsTunnelServer(handler, options)
        async with serve(server.serve_one, "127.0.0.1", 0, **WEBSOCKET_OPTIONS) as listener:
            server.url = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
            yield server
            for conn in server.connections:
                await conn.close(timeout=2)

    return start


@pytest.fixture
def ws_client() -> Callable[..., AbstractAsyncContextManager[TunnelConnection]]:
    @asynccontextmanager
    async def dial(url: str, **options: Any) -> AsyncIterator[TunnelConnection]:
        websocket = await dial_websocket(url, {}, timeout=10)
        try:
            options.setdefault("close_timeout", 2.0)
            async with TunnelConnection(websocket, "client", **options) as conn:
                yield conn
        finally:
            await websocket.close()

    return dial
