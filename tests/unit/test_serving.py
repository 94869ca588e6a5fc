"""``alien.serving``: the writes of one loop turn leave together, large ones at once, nothing is
lost or reordered — checked on the holding transport itself and through a real uvicorn server
(small, streamed and closing responses, keep-alive, a WebSocket upgraded from it)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from alien.serving import JOIN_LIMIT, CoalescingHttp, _HoldingTransport


class _Recording(asyncio.Transport):
    """A transport that keeps what it is asked to write, one entry per write call."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


async def test_small_writes_of_one_turn_leave_in_one_write() -> None:
    real = _Recording()
    holding = _HoldingTransport(real, asyncio.get_running_loop())
    holding.write(b"HTTP/1.1 200 OK\r\n\r\n")
    holding.write(bytearray(b"body"))
    assert real.writes == [] and holding.get_write_buffer_size() == 23
    await asyncio.sleep(0)
    assert real.writes == [b"HTTP/1.1 200 OK\r\n\r\nbody"]


async def test_a_large_write_goes_at_once_after_what_was_held() -> None:
    real = _Recording()
    holding = _HoldingTransport(real, asyncio.get_running_loop())
    big = b"x" * JOIN_LIMIT
    holding.write(big)  # nothing held: straight through
    holding.write(b"head")
    holding.write(big)  # held + big: flushed now, in order, without joining the big one
    assert real.writes == [big, b"head", big]
    await asyncio.sleep(0)
    assert real.writes == [big, b"head", big]


async def test_close_flushes_abort_drops_and_a_closing_transport_gets_nothing() -> None:
    loop = asyncio.get_running_loop()
    real = _Recording()
    holding = _HoldingTransport(real, loop)
    holding.write(b"last words")
    holding.close()
    assert real.writes == [b"last words"] and real.closed
    dropped = _Recording()
    holding = _HoldingTransport(dropped, loop)
    holding.write(b"never")
    dropped.closed = True  # the peer went away before the turn ended
    await asyncio.sleep(0)
    assert dropped.writes == []


async def _stream() -> AsyncIterator[bytes]:
    for n in range(40):
        yield bytes([65 + n % 26]) * 4096
        await asyncio.sleep(0)


async def _echo(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive_bytes()
        await websocket.send_bytes(message)
        await websocket.send_bytes(message[::-1])  # two messages in one turn


app = Starlette(
    routes=[
        Route("/small", lambda _: JSONResponse({"ok": True})),
        Route("/stream", lambda _: StreamingResponse(_stream())),
        Route("/close", lambda _: JSONResponse({"bye": 1}, headers={"connection": "close"})),
        WebSocketRoute("/ws", _echo),
    ]
)


@pytest.fixture
async def server() -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, http=CoalescingHttp, log_config=None, lifespan="off")
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve(sockets=[sock]))
    while not running.started:
        await asyncio.sleep(0.01)
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        running.should_exit = True
        await task


async def test_responses_through_a_real_server_arrive_whole(server: str) -> None:
    async with httpx.AsyncClient(base_url=f"http://{server}") as client:
        for _ in range(3):  # keep-alive: one connection, several answers
            small = await client.get("/small")
            assert small.status_code == 200 and small.json() == {"ok": True}
            assert small.headers["content-length"] == str(len(small.content))
        streamed = await client.get("/stream")
        expected = b"".join(bytes([65 + n % 26]) * 4096 for n in range(40))
        assert streamed.content == expected
        closing = await client.get("/close")
        assert closing.json() == {"bye": 1}
    async with websockets.connect(f"ws://{server}/ws") as ws:
        for size in (5, 70_000):
            payload = bytes(range(256)) * (size // 256) + b"end"
            await ws.send(payload)
            assert await ws.recv() == payload
            assert await ws.recv() == payload[::-1]
