"""The manager's side of the tunnel: a FastAPI WebSocket route served by uvicorn, dialled with
our WebSocket client as the CLI and the agent do (StarletteTransport on one end,
:mod:`alien.tunnel.websocket_client` on the other)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn
import uvloop
from fastapi import FastAPI, WebSocket

from alien.debug.proxy import _EmbeddedServer
from alien.debug.tls import SessionCertificate
from alien.protocol.http_exchange import RequestHead
from alien.tunnel import TunnelClosed, TunnelConnection
from alien.tunnel.http import TunnelUpstream, http_handler
from alien.tunnel.starlette_transport import StarletteTransport
from alien.tunnel.websocket_client import dial
from tunnel.tunnel_support import (
    MiB,
    PatternUpstream,
    echo_both_ways,
    expected_sha256,
    generate,
    hash_body,
)


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
    websocket = await dial(url, {}, timeout=10)
    async with TunnelConnection(websocket, "client") as client:
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
    websocket = await dial(url, {}, timeout=10)
    client = await TunnelConnection(websocket, "client").start()
    await client.ping()
    started = time.monotonic()
    await websocket.abort()
    async with asyncio.timeout(1):
        await app.connections[0].wait_closed()
        await client.wait_closed()
    assert time.monotonic() - started < 1
    assert isinstance(app.connections[0].close_error, TunnelClosed)


def test_a_tls_manager_under_uvloop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``wss://``, as a real manager is reached: our client's buffered reads through uvloop's
    TLS transport, against uvicorn serving TLS; the CA comes from ``SSL_CERT_FILE``."""
    certificate = SessionCertificate.generate()
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_file.write_bytes(certificate.cert_pem)
    key_file.write_bytes(certificate.key_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert_file))

    async def main() -> None:
        app, sock = App(), socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        config = uvicorn.Config(
            app.api,
            lifespan="off",
            log_config=None,
            access_log=False,
            ssl_certfile=str(cert_file),
            ssl_keyfile=str(key_file),
        )
        server = _EmbeddedServer(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        async with asyncio.timeout(10):
            await server.ready.wait()
        websocket = await dial(f"wss://127.0.0.1:{sock.getsockname()[1]}/v1/tunnel", {}, timeout=10)
        async with TunnelConnection(websocket, "client") as client:
            await echo_both_ways(TunnelUpstream(client), 8 * MiB, "/o/tls")
        await websocket.close()
        server.should_exit = True
        await task

    uvloop.run(main())
