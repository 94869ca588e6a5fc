"""Our WebSocket client's opening and closing against servers that misbehave or refuse, on real
loopback sockets (a hand-written server answers exactly what each case needs)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from alien.protocol.websocket import accept_value
from alien.tunnel.errors import TunnelClosed
from alien.tunnel.websocket_client import HandshakeFailed, HandshakeRefused, dial

Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter, dict[str, str]], Awaitable[None]]


@asynccontextmanager
async def raw_server(answer: Answer) -> AsyncIterator[str]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode().split("\r\n")[1:]
        headers = {
            k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)
        }
        await answer(reader, writer, headers)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/tunnel"


def switching(headers: dict[str, str], accept: str | None = None) -> bytes:
    value = accept if accept is not None else accept_value(headers["sec-websocket-key"])
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {value}\r\n\r\n"
    ).encode()


async def test_a_refusal_carries_its_status_and_body() -> None:
    body = b'{"error": {"code": "UNAUTHENTICATED"}}'

    async def refuse(_r: asyncio.StreamReader, w: asyncio.StreamWriter, h: dict[str, str]) -> None:
        assert h["authorization"] == "Bearer ax_test"
        w.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body))
        await w.drain()

    async with raw_server(refuse) as url:
        with pytest.raises(HandshakeRefused) as caught:
            await dial(url, {"Authorization": "Bearer ax_test"}, timeout=5)
    assert (caught.value.status, caught.value.body) == (401, body)


async def test_a_wrong_accept_value_is_not_a_websocket() -> None:
    async def wrong(_r: asyncio.StreamReader, w: asyncio.StreamWriter, h: dict[str, str]) -> None:
        w.write(switching(h, accept="bm90IHRoZSByaWdodCB2YWx1ZQ=="))
        await w.drain()

    async with raw_server(wrong) as url:
        with pytest.raises(HandshakeFailed, match="Sec-WebSocket-Accept"):
            await dial(url, {}, timeout=5)


async def test_garbage_and_silence_fail_the_opening() -> None:
    async def garbage(
        _r: asyncio.StreamReader, w: asyncio.StreamWriter, _h: dict[str, str]
    ) -> None:
        w.write(b"SSH-2.0-OpenSSH\r\n\r\n")
        await w.drain()

    async def silent(r: asyncio.StreamReader, _w: asyncio.StreamWriter, _h: dict[str, str]) -> None:
        await r.read()

    async with raw_server(garbage) as url:
        with pytest.raises(HandshakeFailed):
            await dial(url, {}, timeout=5)
    async with raw_server(silent) as url:
        with pytest.raises(TimeoutError):
            await dial(url, {}, timeout=0.3)


async def test_nobody_listening_is_an_os_error() -> None:
    async with raw_server(lambda r, w, h: asyncio.sleep(0)) as url:
        pass  # the server is gone: its port refuses
    with pytest.raises(OSError):
        await dial(url, {}, timeout=5)


async def test_frames_sent_with_the_answer_pings_and_the_close_handshake() -> None:
    """Frames right behind the 101 are not lost; a ping is answered; the server's close is
    answered and ends ``recv``."""
    pong = asyncio.get_running_loop().create_future()

    async def chatty(r: asyncio.StreamReader, w: asyncio.StreamWriter, h: dict[str, str]) -> None:
        w.write(switching(h) + b"\x82\x05hello" + b"\x89\x02hi")
        await w.drain()
        first, second = await r.readexactly(2)
        mask = await r.readexactly(4)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(await r.readexactly(second & 0x7F)))
        pong.set_result((first, data))
        w.write(b"\x88\x02" + struct.pack("!H", 1000))
        await w.drain()
        await r.read()  # the client's close, then its end of the connection

    async with raw_server(chatty) as url:
        websocket = await dial(url, {}, timeout=5)
        assert await websocket.recv() == b"hello"
        assert await asyncio.wait_for(pong, 5) == (0x8A, b"hi")
        with pytest.raises(TunnelClosed, match="code 1000"):
            await websocket.recv()
        await websocket.close()


@asynccontextmanager
async def connect_proxy(seen: list[bytes], *, refuse: bool = False) -> AsyncIterator[str]:
    """A minimal HTTP CONNECT proxy on loopback (what a customer's egress proxy does)."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if refuse:
            writer.write(b"HTTP/1.1 407 Proxy Authentication Required\r\ncontent-length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
            return
        host, _, port = head.split(b" ")[1].decode().rpartition(":")
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield f"http://user:s%40cret@127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def test_the_environments_proxy_is_used_and_no_proxy_honoured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def echo_once(
        r: asyncio.StreamReader, w: asyncio.StreamWriter, h: dict[str, str]
    ) -> None:
        w.write(switching(h) + b"\x82\x02ok")
        await w.drain()
        await r.read()

    seen: list[bytes] = []
    async with raw_server(echo_once) as url, connect_proxy(seen) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        websocket = await dial(url, {}, timeout=5)
        assert await websocket.recv() == b"ok"
        await websocket.abort()
        port = url.split(":")[2].split("/")[0]
        assert seen[0].startswith(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n".encode())
        assert b"Proxy-Authorization: Basic dXNlcjpzQGNyZXQ=" in seen[0]  # user:s@cret

        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        websocket = await dial(url, {}, timeout=5)
        assert await websocket.recv() == b"ok"
        await websocket.abort()
        assert len(seen) == 1  # went direct


async def test_a_refusing_proxy_is_an_os_error(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []
    async with connect_proxy(seen, refuse=True) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with pytest.raises(OSError, match="407"):
            await dial("wss://127.0.0.1:9/v1/tunnel", {}, timeout=5)
    assert seen
