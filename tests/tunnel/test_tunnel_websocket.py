"""The tunnel over a real WebSocket on 127.0.0.1: concurrency, bulk transfer, memory, failures."""

from __future__ import annotations

import asyncio
import time
import tracemalloc
from hashlib import sha256

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from alien.errors import ValidationError
from alien.protocol.frames import Settings
from alien.protocol.http_exchange import RequestHead
from alien.tunnel import WEBSOCKET_OPTIONS, TunnelClosed, TunnelStream
from alien.tunnel.connection import DEFAULT_WRITE_LIMIT
from alien.tunnel.http import TunnelUpstream, http_handler
from alien.tunnel.websockets_transport import WebsocketsTransport
from tunnel.tunnel_support import (
    MiB,
    PatternUpstream,
    expected_sha256,
    generate,
    hash_body,
    wait_until,
)

TOTAL = 200 * MiB


async def test_many_concurrent_http_exchanges(ws_server, ws_client) -> None:
    upstream = PatternUpstream()
    async with ws_server(http_handler(upstream)) as server, ws_client(server.url) as client:
        tunnel = TunnelUpstream(client)

        async def one(i: int) -> None:
            head = RequestHead.create(
                "PUT",
                f"/object/{i}",
                [("content-length", str(i * 997)), ("x-reply-bytes", str(i * 1999))],
            )
            response = await tunnel.send(head, generate(i * 997, 4096))
            assert response.head.get("x-request-sha256") == expected_sha256(i * 997)
            assert await hash_body(response.body) == (i * 1999, expected_sha256(i * 1999))
            await response.aclose()

        await asyncio.gather(*(one(i) for i in range(300)))  # beyond the 128-stream limit
    assert len(upstream.seen) == 300


async def source(stream: TunnelStream, size: int = TOTAL) -> None:
    block = bytes(256 * 1024)
    for _ in range(size // len(block)):
        await stream.send(block)
    await stream.end()


async def count(stream: TunnelStream) -> int:
    return sum([len(chunk) async for chunk in stream])


@pytest.mark.parametrize("direction", ["download", "upload"])
async def test_throughput_of_a_200_mb_transfer(ws_server, ws_client, direction: str) -> None:
    """Printed, not gated: both ends share this process (and its one core)."""

    async def serve_stream(stream: TunnelStream) -> None:
        if direction == "download":
            await source(stream)
            await count(stream)
        else:
            assert await count(stream) == TOTAL
            await stream.end()

    async with ws_server(serve_stream) as server, ws_client(server.url) as client:
        started, cpu = time.perf_counter(), time.process_time()
        stream = await client.open_stream({})
        if direction == "download":
            await stream.end()
            assert await count(stream) == TOTAL
        else:
            await source(stream)
            await count(stream)
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu
    print(
        f"\ntunnel {direction} of {TOTAL // MiB} MiB over a loopback WebSocket: "
        f"{TOTAL / MiB / elapsed:.0f} MiB/s ({elapsed:.2f} s wall, {cpu:.2f} s CPU, both ends)"
    )


async def test_a_slow_consumer_blocks_the_sender_and_memory_stays_bounded(
    ws_server, ws_client
) -> None:
    window = MiB
    settings = Settings(initial_window=window, connection_window=4 * window)
    tracemalloc.start()
    try:
        async with (
            ws_server(settings=settings) as server,
            ws_client(server.url, settings=settings) as client,
        ):
            await client.open_stream({"download": TOTAL})
            await wait_until(lambda: server.connections)
            sender_stream = await server.connections[0].accept()

            async def send_all() -> None:
                async for chunk in generate(TOTAL):
                    await sender_stream.send(chunk)
                await sender_stream.end()

            sender = asyncio.create_task(send_all())
            receiver = client.streams[0]
            digest, consumed = sha256(), 0
            while consumed < 16 * MiB:
                chunk = await receiver.read()
                digest.update(chunk)
                consumed += len(chunk)
            await wait_until(  # stalled for good (see the in-memory version of this test)
                lambda: (
                    sender_stream.send_credit == 0
                    and receiver.buffered == sender_stream.bytes_sent - consumed
                    and receiver.buffered > window * 3 // 4
                )
            )
            stalled_at = sender_stream.bytes_sent
            for _ in range(100):
                await asyncio.sleep(0)
            assert sender_stream.bytes_sent == stalled_at and not sender.done()
            async for chunk in receiver:
                digest.update(chunk)
                consumed += len(chunk)
            await sender
            await receiver.end()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert consumed == TOTAL and digest.hexdigest() == expected_sha256(TOTAL)
    # both ends: a window received, a write buffer queued, the WebSocket's own buffers
    limit = 3 * (window + DEFAULT_WRITE_LIMIT + WEBSOCKET_OPTIONS["write_limit"])
    print(
        f"\ntraced peak {peak / MiB:.1f} MiB for {TOTAL // MiB} MiB over a WebSocket "
        f"(limit {limit / MiB:.0f})"
    )
    assert peak < limit, f"peak {peak / MiB:.1f} MiB"


async def test_a_killed_transport_fails_streams_within_a_second(ws_server, ws_client) -> None:
    async def serve_stream(stream: TunnelStream) -> None:
        await source(stream, 1024 * MiB)  # far more than will ever be read

    async with ws_server(serve_stream) as server, ws_client(server.url) as client:
        streams = [await client.open_stream({"i": i}) for i in range(3)]
        assert await streams[0].read()
        readers = [asyncio.create_task(count(s)) for s in streams]
        websocket: ServerConnection = server.sockets[0]
        started = time.monotonic()
        websocket.transport.abort()
        async with asyncio.timeout(1):
            for reader in readers:
                with pytest.raises(TunnelClosed):
                    await reader
            await client.wait_closed()
            await server.connections[0].wait_closed()
        assert time.monotonic() - started < 1
        with pytest.raises(TunnelClosed):
            await client.open_stream({})


async def test_a_graceful_close_is_clean_on_both_ends(ws_server, ws_client) -> None:
    async def serve_stream(stream: TunnelStream) -> None:
        await stream.send(await stream.read())
        await stream.end()

    async with ws_server(serve_stream) as server:
        async with ws_client(server.url) as client:
            stream = await client.open_stream({})
            await stream.send(b"hi")
            await stream.end()
            assert await count(stream) == 2
        assert client.close_error is None
        async with asyncio.timeout(5):
            await server.connections[0].wait_closed()
        assert server.connections[0].close_error is None


async def test_a_websocket_with_compression_is_refused() -> None:
    async def hold(websocket: ServerConnection) -> None:
        await websocket.wait_closed()

    async with serve(hold, "127.0.0.1", 0, compression="deflate") as listener:
        url = f"ws://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        async with connect(url, compression="deflate") as websocket:
            with pytest.raises(ValidationError) as info:
                WebsocketsTransport(websocket)
            assert info.value.field == "compression"
