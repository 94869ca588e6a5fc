"""The runtime's HTTP servers bound what unauthenticated callers can hold (loopback fallback)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from alien.sdk.runtime import http_limits
from alien.sdk.runtime.address import ListenAddress
from alien.sdk.runtime.http import HttpServer
from alien.sdk.runtime.http_guard import platform_only

TOKEN = "T" * 40
GOOD = f"GET / HTTP/1.1\r\nHost: x\r\nalien-http-token: {TOKEN}\r\n\r\n".encode()


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
async def port(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[int]:
    monkeypatch.setattr(http_limits, "HEADER_TIMEOUT", 0.5)
    monkeypatch.setattr(http_limits, "CONCURRENCY_LIMIT", 3)
    address = ListenAddress(host="127.0.0.1", port=0)
    server = HttpServer(platform_only(_app, TOKEN), address, variable="ALIEN_HTTP_ADDRESS")
    bound = await server.start()
    yield bound.port
    await server.stop()


async def _closed_after(reader: asyncio.StreamReader) -> float:
    """Seconds until the server closes the connection (it must, within 3 s)."""
    started = time.monotonic()
    async with asyncio.timeout(3):
        while await reader.read(65536):
            pass
    return time.monotonic() - started


async def _status(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GOOD)
    line = await reader.readline()
    writer.close()
    return line


async def test_a_request_head_never_finished_is_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    assert 0.3 < await _closed_after(reader) < 2
    writer.close()


async def test_a_connection_that_sends_nothing_is_cut_off(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert await _closed_after(reader) < 2
    writer.close()


async def test_each_request_on_a_kept_alive_connection_gets_the_deadline(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(GOOD)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    await reader.readuntil(b"\r\n\r\nok")
    await asyncio.sleep(0.6)  # idle between requests: uvicorn's keep-alive timeout (5 s) rules
    writer.write(GOOD[:20])
    await asyncio.sleep(0.1)
    writer.write(GOOD[20:])
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    writer.write(b"GET / HTTP/1.1\r\n")  # a second head, stalled
    assert await _closed_after(reader) < 2
    writer.close()


async def test_connections_beyond_the_limit_get_503(port: int) -> None:
    held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
    assert (await _status(port)).startswith(b"HTTP/1.1 503")
    for _, writer in held:
        writer.close()
    await asyncio.sleep(0.1)
    assert (await _status(port)).startswith(b"HTTP/1.1 200")
